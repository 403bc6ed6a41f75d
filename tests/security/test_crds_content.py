"""Adversarial archive content: monitoring objects that would turn Prometheus against the cluster
(SOL095, stripped again at deploy time) and dashboards nested deeply enough to exhaust the stack."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SOLUTIONS, make_source
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.monitoring import (
    MAX_JSON_DEPTH,
    check_monitoring_object,
    parse_dashboard,
    unsafe_endpoint_fields,
)
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.signing import generate_key
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.monitoring import MonitoringTarget, bind_object
from metalk8s_solutions.errors import InvalidInput

OWN = {"matchLabels": {"app.kubernetes.io/part-of": "example-solution"}}

UNSAFE_ENDPOINT: dict[str, Any] = {
    "port": "metrics",
    "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
    "tlsConfig": {
        "caFile": "/etc/prometheus/certs/ca.crt",
        "certFile": "/etc/prometheus/certs/tls.crt",
        "keyFile": "/etc/prometheus/certs/tls.key",
        "insecureSkipVerify": False,
    },
    "proxyUrl": "http://attacker.invalid:3128",
    "relabelings": [
        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
        {"targetLabel": "__address__", "replacement": "kubernetes.default.svc:443"},
        {"action": "Replace", "targetLabel": "${1}", "regex": "(.*)", "replacement": "x"},
        {"action": "labelmap", "regex": "__meta_kubernetes_pod_annotation_(.+)"},
        {"action": "drop", "sourceLabels": ["__address__"], "regex": "10\\..*"},
    ],
}


def service_monitor(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "web"},
        "spec": {"selector": OWN, "endpoints": [endpoint]},
    }


def test_sol095_refuses_what_reads_prometheus_files_or_redirects_its_scrapes() -> None:
    found = check_monitoring_object(service_monitor(UNSAFE_ENDPOINT), "monitoring/sm.yaml", None)
    messages = sorted(f.message for f in found if f.rule == "SOL095")
    assert all(f.level is Severity.ERROR for f in found)
    for needle in (
        "spec.endpoints[0].bearerTokenFile reads a file of Prometheus",
        "spec.endpoints[0].tlsConfig.caFile reads a file of Prometheus",
        "spec.endpoints[0].tlsConfig.certFile reads a file of Prometheus",
        "spec.endpoints[0].tlsConfig.keyFile reads a file of Prometheus",
        "spec.endpoints[0].proxyUrl redirects the scrape",
        "spec.endpoints[0].relabelings[1]: it rewrites __address__",
        "spec.endpoints[0].relabelings[2]: its targetLabel '${1}' is computed",
        "spec.endpoints[0].relabelings[3]: a labelmap action can write any label",
    ):
        assert any(needle in m for m in messages), (needle, messages)
    assert len(messages) == 8, messages  # relabelings[0] and [4] are harmless
    pod = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "pods"},
        "spec": {
            "selector": OWN,
            "podMetricsEndpoints": [{"port": "m", "relabelings": UNSAFE_ENDPOINT["relabelings"]}],
        },
    }
    assert [f.rule for f in check_monitoring_object(pod, "p.yaml", None)] == ["SOL095"] * 3
    safe = {"port": "metrics", "tlsConfig": {"insecureSkipVerify": True}, "relabelings": []}
    assert check_monitoring_object(service_monitor(safe), "sm.yaml", "example-solution") == []


def test_deploying_strips_the_unsafe_fields_of_an_already_imported_archive() -> None:
    target = MonitoringTarget(
        solution="example-solution", version="1.0.0", environment="prod", namespace="prod-ns"
    )
    bound = bind_object(service_monitor(UNSAFE_ENDPOINT), target)
    endpoint = bound["spec"]["endpoints"][0]
    assert unsafe_endpoint_fields(endpoint) == []
    assert endpoint == {
        "port": "metrics",
        "tlsConfig": {"insecureSkipVerify": False},
        "relabelings": [UNSAFE_ENDPOINT["relabelings"][0], UNSAFE_ENDPOINT["relabelings"][4]],
    }


def deep(depth: int) -> bytes:
    return b'{"title": "t", "uid": "u", "x": ' + b"[" * depth + b"]" * depth + b"}"


def test_a_deeply_nested_dashboard_is_a_finding() -> None:
    board, found = parse_dashboard(deep(100_000), "monitoring/deep.json")
    assert board is None
    assert [f.rule for f in found] == ["SOL093"]
    assert f"nested more than {MAX_JSON_DEPTH} levels" in found[0].message
    # Brackets inside strings do not count; an ordinary dashboard passes.
    text = b'{"title": "t", "uid": "u", "expr": "' + b"[" * 500 + b'\\"{"}'
    assert parse_dashboard(text, "ok.json")[1] == []
    assert parse_dashboard(deep(MAX_JSON_DEPTH - 1), "ok.json")[1] == []


@pytest.fixture(scope="module")
def deep_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A signed archive into which a deep dashboard and an unsafe ServiceMonitor were slipped
    after signing (``build`` itself refuses them)."""
    base = tmp_path_factory.mktemp("deep")
    src = make_source(base / "src")
    private, public = generate_key()
    (base / "vendor.key").write_bytes(private)
    (base / "vendor.pub").write_bytes(public)
    signed = base / "signed.iso"
    build(BuildOptions(src, signed, key=base / "vendor.key", epoch=1_700_000_000))
    with IsoReader(signed) as reader:
        files = {name: reader.read_bytes(name) for name in reader.files()}
    files["monitoring/deep.json"] = deep(200_000)
    files["monitoring/sm.yaml"] = yaml.safe_dump(service_monitor(UNSAFE_ENDPOINT)).encode()
    iso = base / "example-solution-1.0.0.iso"
    write_iso(
        iso,
        [IsoFile(p, len(d), (lambda d=d: io.BytesIO(d))) for p, d in files.items()],
        volume_id="EXAMPLE",
        epoch=1_700_000_000,
    )
    return iso, base / "vendor.pub"


@pytest.mark.parametrize("verb", ["validate", "inspect"])
def test_cli_reports_deep_dashboards_and_unsafe_monitors_without_a_traceback(
    deep_archive: tuple[Path, Path], verb: str
) -> None:
    iso, pub = deep_archive
    result = subprocess.run(
        [SOLUTIONS, verb, str(iso), "--key", str(pub)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "RecursionError" not in out, out
    assert "SOL093" in out and "nested more than" in out, out
    if verb == "validate":
        assert result.returncode == 1
        assert "SOL095" in out
        assert "SOL072" in out  # and the files added after signing are caught as such


def test_build_refuses_a_source_tree_with_them(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    (src / "monitoring").mkdir()
    (src / "monitoring" / "deep.json").write_bytes(deep(200_000))
    with pytest.raises(InvalidInput, match="SOL093"):
        build(BuildOptions(src, tmp_path / "x.iso", epoch=1_700_000_000))
    (src / "monitoring" / "deep.json").unlink()
    (src / "monitoring" / "sm.yaml").write_text(yaml.safe_dump(service_monitor(UNSAFE_ENDPOINT)))
    with pytest.raises(InvalidInput, match="SOL095"):
        build(BuildOptions(src, tmp_path / "x.iso", epoch=1_700_000_000))
