"""Issue #20 item 8, the small ones, as a user meets them: the exact CLI commands on a real cluster.

- ``env create`` of a system namespace is refused; a namespace we did not create is never
  offered for deletion;
- creating an instance that exists is a one-line refusal naming the command that changes it;
- going back to a version whose CRD no longer serves a version listed in ``storedVersions`` is
  allowed when no object exists (and the refusal names the objects when some do).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from env_support import Api, build_solution, cli, write_config
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "smalltest"
GROUP = "smalltest.test.solutions"
CRD = f"gadgets.{GROUP}"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smalls-archives")
    archives = [
        build_solution(out, SOL, "1.0.0", group=GROUP),
        build_solution(
            out, SOL, "2.0.0", group=GROUP, served=("v1alpha1", "v1beta1"), storage="v1beta1"
        ),
    ]
    return write_config(out / "solutions.yaml", archives)


@pytest.fixture(scope="module")
def admin(config: Path, local_cluster: LocalCluster) -> Iterator[Api]:
    """Admin calls; afterwards SOL leaves the cluster (its CRD and its import records)."""
    with local_cluster.admin_http() as http:
        yield Api(http)
    run(config, local_cluster, "deactivate", SOL, "--force")
    for version in ("1.0.0", "2.0.0"):
        run(config, local_cluster, "unimport", f"{SOL}-{version}")


def run(config: Path, cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(config, cluster.kubeconfig, *args)


def ok(config: Path, cluster: LocalCluster, *args: str) -> str:
    result = run(config, cluster, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def refused(config: Path, cluster: LocalCluster, *args: str) -> str:
    result = run(config, cluster, *args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return " ".join((result.stdout + result.stderr).split())


# -- system namespaces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("kube-system",),
        ("default",),
        ("kube-node-lease",),
        ("metalk8s-solutions",),
        ("team", "-N", "kube-public"),
        ("Team_A.prod", "-N", "ok-ns", "-N", "kube-system"),
    ],
)
def test_system_namespaces_are_refused(
    config: Path, admin: Api, local_cluster: LocalCluster, args: tuple[str, ...]
) -> None:
    said = refused(config, local_cluster, "env", "create", *args)
    assert "is a system namespace" in said, said
    assert "delete" not in said, said
    assert admin.get("/api/v1/namespaces/ok-ns") is None
    kube_system = admin.get("/api/v1/namespaces/kube-system")
    assert kube_system is not None
    assert "solutions.metalk8s.scality.com/environment" not in (
        kube_system["metadata"].get("labels") or {}
    )


def test_a_namespace_we_did_not_create_is_never_offered_for_deletion(
    config: Path, admin: Api, local_cluster: LocalCluster
) -> None:
    name = f"theirs-{secrets.token_hex(3)}"
    admin.post("/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        said = refused(config, local_cluster, "env", "create", "mine", "-N", name)
        assert f"namespace {name} already exists and is not part of an environment" in said
        assert "delete that namespace" not in said and "never taken over nor deleted" in said
    finally:
        admin.delete(f"/api/v1/namespaces/{name}")


# -- an instance that exists ----------------------------------------------------------------


@pytest.fixture
def env(config: Path, admin: Api, local_cluster: LocalCluster) -> Iterator[str]:
    """A fresh environment where SOL 1.0.0 is active and deployed (not awaited)."""
    name = f"sm-{secrets.token_hex(3)}"
    ok(config, local_cluster, "activate", SOL, "--version", "1.0.0")
    ok(config, local_cluster, "env", "create", name)
    ok(config, local_cluster, "env", "add-solution", name, SOL, "1.0.0", "--no-wait")
    yield name
    run(config, local_cluster, "env", "delete", name, "--timeout", "120")


def test_creating_an_existing_instance_is_a_refusal_naming_edit(
    config: Path, env: str, admin: Api, local_cluster: LocalCluster
) -> None:
    create = ("instance", "create", env, SOL, "--kind", "Gadget", "--name", "web")
    ok(config, local_cluster, *create, "--set", "spec.size=1")
    for extra in ((), ("--dry-run",)):
        said = refused(config, local_cluster, *create, "--set", "spec.size=2", *extra)
        assert f"Gadget web already exists in {env}/{env}" in said, said
        assert f"solutions instance edit {env} {SOL} Gadget/web --set" in said, said
        assert "AlreadyExists" not in said and "409" not in said, said
    web = admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{env}/gadgets/web")
    assert web is not None and web["spec"] == {"size": 1}


# -- env upgrade: a summary by default, the diff on request ----------------------------------


def test_env_upgrade_summarises_changes_and_shows_the_diff_on_request(
    config: Path, env: str, local_cluster: LocalCluster
) -> None:
    ok(config, local_cluster, "activate", SOL, "--version", "2.0.0")
    upgrade = ("env", "upgrade", env, SOL, "2.0.0", "--no-wait")
    deployment = f"Deployment {env}/{SOL}-operator"
    said = ok(config, local_cluster, *upgrade, "--dry-run")
    # the plan, then what the new archive changes (solutions diff, tests/integration/test_diff.py)
    said, _, changes = said.partition("\nWhat changes from 1.0.0 to 2.0.0 (solutions diff ")
    assert "CRDs:" in changes, changes
    lines = said.splitlines()
    assert not [line for line in lines if line.startswith(" ")], said  # no diff
    (line,) = [line for line in lines if line.startswith(f"would change {deployment}")]
    assert "metadata.labels" in line and "containers[operator].image" in line, line
    assert "fields)" in line, line
    assert len(lines) < 20, said

    with_diff = ok(config, local_cluster, *upgrade, "--dry-run", "--diff")
    images = [x for x in with_diff.splitlines() if x.strip().startswith("+") and "image:" in x]
    assert "@@" in with_diff and f"/{SOL}-2.0.0/" in " ".join(images), with_diff
    assert len(with_diff.splitlines()) > len(lines) + 10

    data = json.loads(ok(config, local_cluster, *upgrade, "--dry-run", "-o", "json"))
    assert "@@" in data["diffs"][deployment]
    assert "containers[operator].image" in data["summaries"][deployment]

    done = ok(config, local_cluster, *upgrade)
    assert f"change {deployment}: " in done and "@@" not in done, done
    assert f"{SOL} runs 2.0.0 in {env}" in done


# -- stored versions without objects ------------------------------------------------------


def crd(admin: Api) -> dict[str, Any]:
    found = admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
    assert found is not None
    return found


def test_going_back_to_a_version_with_nothing_stored_in_the_dropped_version(
    config: Path, admin: Api, local_cluster: LocalCluster
) -> None:
    ok(config, local_cluster, "activate", SOL, "--version", "2.0.0")
    assert crd(admin)["status"]["storedVersions"] == ["v1beta1"]
    said = ok(config, local_cluster, "activate", SOL, "--version", "1.0.0")
    assert "objects are stored" not in said, said
    live = crd(admin)
    assert [v["name"] for v in live["spec"]["versions"]] == ["v1alpha1"]
    assert live["status"]["storedVersions"] == ["v1alpha1"]

    # With an object stored in v1beta1, the refusal names it.
    ok(config, local_cluster, "activate", SOL, "--version", "2.0.0")
    admin.post("/api/v1/namespaces", {"metadata": {"name": "smalls-data"}})
    try:
        admin.post(
            f"/apis/{GROUP}/v1beta1/namespaces/smalls-data/gadgets",
            {
                "apiVersion": f"{GROUP}/v1beta1",
                "kind": "Gadget",
                "metadata": {"name": "kept"},
                "spec": {"size": 1},
            },
        )
        said = refused(config, local_cluster, "activate", SOL, "--version", "1.0.0")
        assert "stored in version(s) v1beta1" in said and "smalls-data/kept" in said, said
    finally:
        admin.delete(f"/apis/{GROUP}/v1beta1/namespaces/smalls-data/gadgets/kept")
        admin.delete("/api/v1/namespaces/smalls-data")
