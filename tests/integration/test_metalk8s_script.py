"""A whole ``scripts/solutions.sh`` session, run as ``solutions metalk8s …`` on the local cluster.

The lines are those a MetalK8s administrator's script holds (flags unchanged); each must leave the
cluster as the native verb would, with MetalK8s's defaults (the namespace is the environment's
name, ``activate`` picks the latest version, ``add-solution`` of another version changes it).
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from env_support import Api, build_solution, cli, wait_for, write_config
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "scripttest"
GROUP = "scripttest.test.solutions"
CRD = f"gadgets.{GROUP}"


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("script-archives")
    return {
        "1.0.0": build_solution(out, SOL, "1.0.0", group=GROUP),
        "1.1.0": build_solution(out, SOL, "1.1.0", group=GROUP, served=("v1alpha1", "v1beta1")),
    }


@pytest.fixture
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        yield Api(http)


@pytest.fixture
def env_name(admin: Api) -> Iterator[str]:
    name = f"e-{secrets.token_hex(3)}"
    yield name
    for ns in admin.items("/api/v1/namespaces", f"{ENV_LABEL}={name}"):
        admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
    admin.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")


def test_a_solutions_sh_session_runs_unchanged(
    tmp_path: Path,
    archives: dict[str, Path],
    admin: Api,
    env_name: str,
    local_cluster: LocalCluster,
) -> None:
    config = write_config(tmp_path / "solutions.yaml", [])
    log = tmp_path / "log" / "solutions.log"
    a, b = archives["1.0.0"], archives["1.1.0"]

    def sh(line: str) -> Any:
        """One solutions.sh line, with 'solutions.sh' spelled 'solutions metalk8s'."""
        args = ["metalk8s", *shlex.split(line), "-l", str(log)]
        result = cli(config, local_cluster.kubeconfig, *args)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def listed() -> list[tuple[str, bool]]:
        data = json.loads(cli(config, local_cluster.kubeconfig, "list", "-o", "json").stdout)
        return [(e["version"], e["active"]) for e in data["solutions"].get(SOL, [])]

    def operator_version() -> str | None:
        dep = admin.get(f"/apis/apps/v1/namespaces/{env_name}/deployments/{SOL}-operator")
        return None if dep is None else dep["metadata"]["labels"]["app.kubernetes.io/version"]

    sh(f"import --archive {a} --archive {b}")
    assert listed() == [("1.0.0", False), ("1.1.0", False)]
    again = sh(f"import --archive {a}")  # MetalK8s: an imported archive stays as it is
    assert "nothing to do" in again.stdout
    assert yaml.safe_load(config.read_text())["archives"] == [str(a), str(b)]

    sh(f"activate --name {SOL}")  # no --version: the latest
    assert listed() == [("1.0.0", False), ("1.1.0", True)]
    assert admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")

    sh(f"create-env --name {env_name} --description 'Team A'")
    ns = admin.get(f"/api/v1/namespaces/{env_name}")  # the namespace is the environment's name
    assert ns is not None
    assert ns["metadata"]["labels"][ENV_LABEL] == env_name
    assert (
        ns["metadata"]["annotations"]["solutions.metalk8s.scality.com/environment-description"]
        == "Team A"
    )

    plan = sh(f"add-solution --name {env_name} --solution {SOL} --version 1.0.0 --dry-run")
    assert f"would create Deployment {env_name}/{SOL}-operator" in plan.stdout
    assert operator_version() is None
    added = sh(f"-v add-solution --name {env_name} --solution {SOL} --version 1.0.0")
    assert f"{SOL} 1.0.0 is deployed in {env_name}" in added.stdout
    assert "replicas available" in added.stderr  # -v: the progress lines
    assert operator_version() == "1.0.0"
    changed = sh(f"add-solution -n {env_name} -s {SOL} -V 1.1.0")  # MetalK8s: changes it
    assert f"upgrade {SOL} in {env_name}/{env_name}" in changed.stdout
    assert "replicas available" not in changed.stderr  # no -v: results only
    assert operator_version() == "1.1.0"

    sh(f"delete-solution --name {env_name} --solution {SOL}")
    wait_for(lambda: operator_version() is None, what="the operator gone")
    sh(f"delete-env --name {env_name}")
    assert admin.get(f"/api/v1/namespaces/{env_name}") is None

    sh(f"deactivate --name {SOL}")
    assert listed() == [("1.0.0", False), ("1.1.0", False)]
    assert admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}") is None

    sh(f"unimport --archive {a} --archive {b}")
    assert listed() == []
    skipped = sh(f"unimport --archive {a}")  # MetalK8s: not imported, nothing to do
    assert f"warning: {a} is not imported; skipped" in skipped.stderr

    text = log.read_text()
    for verb in (
        "import",
        "activate",
        "create-env",
        "add-solution",
        "delete-solution",
        "delete-env",
        "deactivate",
        "unimport",
    ):
        assert f" solutions metalk8s {verb} " in text
    assert f"{SOL} 1.0.0 is deployed in {env_name}" in text

    refused = cli(config, local_cluster.kubeconfig, "metalk8s", "activate", "--name", "nope")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1
