"""Versions that are not semantic versions (MetalK8s accepted any): validated with a warning,
imported, activated (``latest`` in the one order) and deployed, upgraded and downgraded."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from env_support import Api, build_solution, cli, wait_for
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "vorder"
GROUP = "vorder.test.solutions"
VERSIONS = ("1.1.2-dev", "1.1.2", "1.1.2.1")


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("version-order")
    return {v: build_solution(out, SOL, v, group=GROUP) for v in VERSIONS}


def test_non_semver_versions_import_activate_deploy_and_upgrade(
    archives: dict[str, Path], local_cluster: LocalCluster, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "solutions.yaml"
    env = f"ver-{secrets.token_hex(3)}"

    def run(*args: str) -> Any:
        return cli(config, local_cluster.kubeconfig, *args)

    def ok(*args: str) -> str:
        result = run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return str(result.stdout + result.stderr)

    checked = ok("validate", str(archives["1.1.2.1"]))
    assert "SOL013" in checked and "'1.1.2.1' is not a semantic version" in checked, checked
    with local_cluster.admin_http() as http:
        admin = Api(http)
        try:
            # Imported in the order that a string sort or a first-wins loop would get wrong.
            for version in ("1.1.2.1", "1.1.2-dev", "1.1.2"):
                ok("import", str(archives[version]))
            listed = json.loads(ok_stdout(run("list", "-o", "json")))["solutions"][SOL]
            assert [e["version"] for e in listed] == ["1.1.2-dev", "1.1.2", "1.1.2.1"], listed
            ok("activate", SOL)  # latest
            listed = json.loads(ok_stdout(run("list", "-o", "json")))["solutions"][SOL]
            assert [e["version"] for e in listed if e["active"]] == ["1.1.2.1"], listed
            crd = admin.get(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{GROUP}"
            )
            assert crd is not None
            assert crd["metadata"]["labels"]["solutions.metalk8s.scality.com/version"] == (
                "1.1.2.1"
            )
            ok("env", "create", env)
            ok("env", "add-solution", env, SOL, "1.1.2", "--timeout", "60")
            dep_path = f"/apis/apps/v1/namespaces/{env}/deployments/{SOL}-operator"

            def version_label() -> str:
                dep = admin.get(dep_path)
                assert dep is not None
                return str(dep["metadata"]["labels"]["app.kubernetes.io/version"])

            assert version_label() == "1.1.2"
            up = ok("env", "upgrade", env, SOL, "1.1.2.1", "--timeout", "60")
            assert "upgrade" in up and "1.1.2 -> 1.1.2.1" in up, up
            assert "downgrade" not in up, up
            wait_for(lambda: version_label() == "1.1.2.1", what="the upgraded Deployment")
            down = ok("env", "upgrade", env, SOL, "1.1.2-dev", "--timeout", "60")
            assert "downgrade" in down and "1.1.2.1 -> 1.1.2-dev" in down, down
            wait_for(lambda: version_label() == "1.1.2-dev", what="the downgraded Deployment")
            ok("env", "delete-solution", env, SOL, "--timeout", "60")
            assert admin.get(dep_path) is None
        finally:
            run("env", "delete", env, "--timeout", "120")
            run("deactivate", SOL, "--force")
            for version in VERSIONS:
                run("unimport", f"{SOL}-{version}")


def ok_stdout(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)
