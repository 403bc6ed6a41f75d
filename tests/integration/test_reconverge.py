"""Archive changes reach the environments: an import or unimport re-converges them (the
OperatorConfig lists every imported version), and ``apply`` restores operator objects deleted by
hand."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SolutionsCli
from env_support import Api, build_solution
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        yield Api(http)


def repositories(api: Api, env: str, solution: str) -> list[str]:
    cm = api.get(f"/api/v1/namespaces/{env}/configmaps/{solution}-operator-config")
    assert cm is not None
    return sorted(yaml.safe_load(cm["data"]["operator.yaml"])["repositories"])


def test_operator_config_follows_imports_and_apply_repairs(
    cli: SolutionsCli, api: Api, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    name, env, group = f"recon-{suffix}", f"recon-{suffix}", f"recon{suffix}.test.solutions"
    v1 = build_solution(tmp_path, name, "1.0.0", group=group)
    v2 = build_solution(tmp_path, name, "1.1.0", group=group)
    try:
        cli.ok("import", str(v1))
        cli.ok("activate", name, "--version", "1.0.0")
        cli.ok("env", "create", env)
        cli.ok("env", "add-solution", env, name, "1.0.0", "--timeout", "60")
        assert repositories(api, env, name) == ["1.0.0"]

        out = cli.ok("import", str(v2))
        assert f"ConfigMap {env}/{name}-operator-config" in out
        assert repositories(api, env, name) == ["1.0.0", "1.1.0"]

        # Someone deletes the operator by hand: apply puts it back and says so.
        api.delete(f"/apis/apps/v1/namespaces/{env}/deployments/{name}-operator")
        repaired = cli.ok("apply")
        assert f"Deployment {env}/{name}-operator" in repaired
        dep: dict[str, Any] | None = api.get(
            f"/apis/apps/v1/namespaces/{env}/deployments/{name}-operator"
        )
        assert dep is not None
        assert "nothing to do" in cli.ok("apply")

        cli.ok("unimport", f"{name}-1.1.0")
        assert repositories(api, env, name) == ["1.0.0"]
    finally:
        cli("env", "delete", env, "--timeout", "60")
        cli("deactivate", name, "--force")
        cli("unimport", f"{name}-1.0.0", f"{name}-1.1.0")
