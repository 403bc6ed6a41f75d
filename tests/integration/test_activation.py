"""Activation against the real API server: the example's CRD path, storage migration, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SolutionsCli, make_source
from crd_versions import CRD_NAME, GROUP, build_version
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("versions")
    src = make_source(out / "src")
    return {v: build_version(src, out, v) for v in ("1.0.0", "1.1.0", "2.0.0")}


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Any]:
    with local_cluster.admin_http() as http:
        yield http
        http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")


def crd_state(api: Any) -> tuple[str, list[str], list[str]]:
    crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}").json()
    storage = next(v["name"] for v in crd["spec"]["versions"] if v["storage"])
    served = sorted(v["name"] for v in crd["spec"]["versions"] if v["served"])
    return storage, served, crd["status"]["storedVersions"]


def test_activation_path_of_the_example(
    cli: SolutionsCli,
    archives: dict[str, Path],
    api: Any,
    kube_namespace: str,
) -> None:
    def ok(*args: str) -> str:
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ok("import", *map(str, archives.values()))

    plan = ok("activate", "example-solution", "--version", "1.0.0", "--dry-run")
    assert f"would crd {CRD_NAME}: create (storage v1alpha1)" in plan
    assert "+- name: v1alpha1" in plan
    assert (
        api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}").status_code
        == 404
    )

    ok("activate", "example-solution", "--version", "1.0.0")
    assert crd_state(api) == ("v1alpha1", ["v1alpha1"], ["v1alpha1"])
    assert yaml.safe_load(cli.config.read_text())["active"] == {"example-solution": "1.0.0"}
    listed = json.loads(ok("list", "-o", "json"))["solutions"]["example-solution"]
    assert [(v["version"], v["active"]) for v in listed] == [
        ("1.0.0", True),
        ("1.1.0", False),
        ("2.0.0", False),
    ]

    widgets = f"/apis/{GROUP}/v1alpha1/namespaces/{kube_namespace}/widgets"
    for name, replicas in (("alpha", 1), ("beta", 3)):
        created = api.post(
            widgets,
            json={
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"version": "1.0.0", "replicas": replicas},
            },
        )
        assert created.status_code == 201, created.text

    ok("activate", "example-solution", "--version", "1.1.0")
    assert crd_state(api) == ("v1alpha1", ["v1alpha1", "v1beta1"], ["v1alpha1"])

    migrated = ok("activate", "example-solution", "--version", "2.0.0")
    assert "storage v1alpha1 -> v1beta1, migrate 2 object(s)" in migrated
    assert crd_state(api) == ("v1beta1", ["v1alpha1", "v1beta1"], ["v1beta1"])

    # Down to 1.1.0: v1beta1 stays served, objects migrate back to v1alpha1: allowed.
    ok("activate", "example-solution", "--version", "1.1.0")
    assert crd_state(api) == ("v1alpha1", ["v1alpha1", "v1beta1"], ["v1alpha1"])

    # Back to 2.0.0 (latest), then 2.0.0 -> 1.0.0 is the unsafe case: refused, precisely.
    ok("activate", "example-solution")
    assert yaml.safe_load(cli.config.read_text())["active"] == {"example-solution": "latest"}
    before = cli.config.read_bytes()
    refused = cli("activate", "example-solution", "--version", "1.0.0")
    assert refused.returncode == 1
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith("error: activating example-solution 1.0.0 is unsafe: ")
    assert (
        f"{CRD_NAME}: objects are stored in version(s) v1beta1 that the new CRD no longer serves"
        in message
    )
    assert f"[{kube_namespace}/alpha, {kube_namespace}/beta]" in message
    assert crd_state(api) == ("v1beta1", ["v1alpha1", "v1beta1"], ["v1beta1"])
    assert cli.config.read_bytes() == before

    # The objects survived every allowed step, with their data.
    got = api.get(f"/apis/{GROUP}/v1beta1/namespaces/{kube_namespace}/widgets/beta").json()
    assert got["spec"] == {"version": "1.0.0", "replicas": 3}

    # Deactivation is refused while objects exist, and says which.
    refused = cli("deactivate", "example-solution")
    assert refused.returncode == 1
    assert (
        f"2 {CRD_NAME} object(s) exist: {kube_namespace}/alpha, {kube_namespace}/beta"
        in refused.stderr
    )
    assert crd_state(api)[0] == "v1beta1"

    plan = ok("deactivate", "example-solution", "--force", "--dry-run")
    assert f"would crd {CRD_NAME}: delete, with its 2 object(s)" in plan
    for name in ("alpha", "beta"):
        api.delete(f"{widgets}/{name}")
    ok("deactivate", "example-solution")
    assert api.get(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    ).status_code in (404, 200)
    assert yaml.safe_load(cli.config.read_text())["active"] == {}
    again = ok("deactivate", "example-solution")
    assert "nothing to do" in again


def test_activating_what_is_not_imported(cli: SolutionsCli, archives: dict[str, Path]) -> None:
    missing = cli("activate", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: solution nope is not imported; import its archive first (solutions import "
        "<archive>); see 'solutions list'"
    )
    assert cli("import", str(archives["1.0.0"])).returncode == 0
    wrong = cli("activate", "example-solution", "--version", "3.0.0")
    assert wrong.returncode == 1
    assert "example-solution 3.0.0 is not imported (imported: 1.0.0)" in wrong.stderr
    assert cli("unimport", str(archives["1.0.0"])).returncode == 0
