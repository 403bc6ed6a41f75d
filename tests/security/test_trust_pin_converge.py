"""Converge, activation, environments and the UI after an imported archive was swapped.

Each reads the archive again (its manifest, CRDs, roles): what it reads is checked against the
pin recorded at import, and a changed file ends in one clear error, with nothing changed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import CRD, SolutionsCli
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from security.trust_support import (
    admin_token,
    build_archive,
    keypair,
    running_ui,
    ui_client,
    write_trust_config,
)

pytestmark = pytest.mark.cluster
CRD_NAME = "examples.example.com"
RECORD = "/api/v1/namespaces/metalk8s-solutions/configmaps/metalk8s-solutions"


@pytest.fixture(autouse=True)
def _clean(local_cluster: LocalCluster) -> Iterator[None]:
    """Each test starts with no cluster record and no CRD of the test Solution."""
    with local_cluster.admin_http() as http:
        http.delete(RECORD)
        http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")
    yield
    with local_cluster.admin_http() as http:
        http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")


def crd_exists(cluster: LocalCluster) -> bool:
    with cluster.admin_http() as http:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
        return http.get(path).status_code == 200


def swap(target: Path, replacement: Path) -> None:
    staged = target.with_name(f".{target.name}.new")
    staged.write_bytes(replacement.read_bytes())
    staged.replace(target)


@pytest.fixture
def imported(cli: SolutionsCli, tmp_path: Path) -> tuple[Path, Path]:
    """A signed archive imported under policy required; returns (archive, an evil twin)."""
    vendor_key, vendor_pub = keypair(tmp_path / "keys", "vendor")
    good = build_archive(tmp_path / "good", key=vendor_key)
    evil = build_archive(
        tmp_path / "evil", key=None, layer=b"evil", crd=CRD.replace("integer", "string")
    )
    write_trust_config(cli.config, [vendor_pub], "required")
    done = cli("import", str(good))
    assert done.returncode == 0, done.stderr
    return good, evil


def test_activation_and_apply_refuse_a_swapped_archive(
    cli: SolutionsCli, imported: tuple[Path, Path], local_cluster: LocalCluster
) -> None:
    good, evil = imported
    config_before = cli.config.read_text()
    swap(good, evil)
    for command in (("activate", "example-solution"), ("apply",)):
        refused = cli(*command)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        assert f"archive {good}" in refused.stderr, refused.stderr
        assert "changed since it was imported" in refused.stderr, refused.stderr
        assert "put the original file back, or unimport it" in refused.stderr
    assert not crd_exists(local_cluster)  # nothing was changed
    assert cli.config.read_text() == config_before
    listed = json.loads(cli.ok("list", "-o", "json"))
    (entry,) = listed["solutions"]["example-solution"]
    assert "changed since it was imported" in entry["problem"]
    # An environment cannot deploy it either.
    env = f"t-{secrets.token_hex(3)}"
    cli.ok("env", "create", env)
    try:
        added = cli("env", "add-solution", env, "example-solution", "1.0.0")
        assert added.returncode == 1, added.stdout + added.stderr
        assert "changed since it was imported" in added.stderr, added.stderr
    finally:
        cli("env", "delete", env, "--yes")
    # Unimporting it is allowed, and importing the new file is a fresh, checked import.
    cli.ok("unimport", str(good))
    again = cli("import", str(good))
    assert again.returncode == 1 and "SOL080" in again.stderr  # unsigned: refused by policy


def test_activation_refuses_a_crd_changed_in_place(
    cli: SolutionsCli, imported: tuple[Path, Path], local_cluster: LocalCluster
) -> None:
    """SHA256SUMS kept, one CRD rewritten in place (same size): the file check catches it."""
    good, _ = imported
    data = bytearray(good.read_bytes())
    at = data.find(b"replicas: {type: integer}")
    assert at > 0
    data[at : at + 25] = b"replicas: {type: number }"  # still a valid CRD
    with good.open("r+b") as handle:
        handle.write(bytes(data))
    refused = cli("activate", "example-solution")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "operator/deploy/crds/example.yaml does not match its SHA256SUMS line" in (
        refused.stderr
    ), refused.stderr
    assert not crd_exists(local_cluster)


def test_entries_recorded_without_a_pin_are_verified_and_pinned(
    cli: SolutionsCli, imported: tuple[Path, Path], local_cluster: LocalCluster
) -> None:
    """As MetalK8s or an older version left them: the next converge checks and pins them."""
    good, evil = imported
    doc = yaml.safe_load(cli.config.read_text())
    pin = doc.pop("pins")[str(good)]
    cli.config.write_text(yaml.safe_dump(doc))
    with local_cluster.admin_http() as http:
        record = http.get(RECORD).json()
        entries = json.loads(record["data"]["example-solution"])
        for entry in entries:
            entry.pop("pin")
        record["data"]["example-solution"] = json.dumps(entries)
        assert http.put(RECORD, json=record).status_code == 200
    applied = cli("apply")
    assert applied.returncode == 0, applied.stderr
    assert "pin example-solution-1.0.0" in applied.stdout, applied.stdout
    with local_cluster.admin_http() as http:
        entries = json.loads(http.get(RECORD).json()["data"]["example-solution"])
    assert entries[0]["pin"] == pin
    assert "nothing to do" in cli.ok("apply")
    swap(good, evil)
    refused = cli("apply")
    assert refused.returncode == 1 and "changed since it was imported" in refused.stderr


def test_a_pin_edited_in_the_cluster_record_is_refused(
    cli: SolutionsCli, imported: tuple[Path, Path], local_cluster: LocalCluster
) -> None:
    with local_cluster.admin_http() as http:
        record = http.get(RECORD).json()
        entries = json.loads(record["data"]["example-solution"])
        entries[0]["pin"]["sha256sums"] = "sha256:" + "0" * 64
        record["data"]["example-solution"] = json.dumps(entries)
        assert http.put(RECORD, json=record).status_code == 200
    refused = cli("activate", "example-solution")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "differs from the one in the cluster record" in refused.stderr, refused.stderr


def test_the_ui_shows_the_problem_not_the_new_content(
    cli: SolutionsCli, imported: tuple[Path, Path], local_cluster: LocalCluster, tmp_path: Path
) -> None:
    good, evil = imported
    swap(good, evil)
    token = admin_token(local_cluster, "trust-admin")
    with running_ui(local_cluster, cli.config, tmp_path) as url, ui_client(url, token) as http:
        listed = http.get("/api/solutions")
        assert listed.status_code == 200, listed.text
        (entry,) = listed.json()["solutions"]["example-solution"]
        assert "changed since it was imported" in entry["problem"]
        assert "signature" not in entry["details"]  # the swapped file's content is not shown
        answer = http.post("/api/solutions/example-solution/activate", json={})
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["kind"] == "archive-changed"
        assert "changed since it was imported" in answer.json()["error"]["message"]
        metrics = http.get("/metrics").text
        assert 'solutions_ui_refusals_total{kind="archive-changed",status="409"} 1' in metrics
    with contextlib.suppress(Exception):
        cli("unimport", str(good))
