"""Roles as MetalK8s grants them, on the real local control plane (issue 17 item 3): a role.yaml
shaped as the upstream example's (ClusterRoles for the manager, metrics auth and reader, admin/
editor/viewer) deploys with no flag, each role bound by RoleBindings in the environment's
namespaces only; two environments side by side never collide; upgrade and removal leave no
ClusterRole or RoleBinding behind."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from env_support import Api, build_solution, cli, crd_document, write_config
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from roles_support import metalk8s_example_roles

pytestmark = pytest.mark.cluster

SOL = "mkroles"
GROUP = "mkroles.test.solutions"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"
ROLES = metalk8s_example_roles(GROUP)
CLUSTER_ROLES = sorted(d["metadata"]["name"] for d in ROLES if d["kind"] == "ClusterRole")


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("mkroles-archives")
    return [build_solution(out, SOL, v, group=GROUP, roles=ROLES) for v in ("1.0.3", "1.1.2-dev")]


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        yield api
        api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{GROUP}")


@pytest.fixture
def ctx(tmp_path: Path, archives: list[Path], local_cluster: LocalCluster) -> Context:
    config = write_config(tmp_path / "solutions.yaml", archives)
    return Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))


@pytest.fixture
def names(admin: Api) -> Iterator[tuple[str, str]]:
    """Two fresh environment names; their namespaces and cluster roles are deleted afterwards."""
    pair = (f"mkr-{secrets.token_hex(3)}", f"mkr-{secrets.token_hex(3)}")
    yield pair
    for env in pair:
        for ns in admin.items("/api/v1/namespaces", f"{ENV_LABEL}={env}"):
            admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
        for kind in ("clusterroles", "clusterrolebindings"):
            for obj in admin.items(f"{RBAC}/{kind}", f"{ENV_LABEL}={env}"):
                admin.delete(f"{RBAC}/{kind}/{obj['metadata']['name']}")


def ours(admin: Api, path: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in admin.items(path, f"app.kubernetes.io/part-of={SOL}")}


def allowed(admin: Api, ns: str, attributes: dict[str, Any]) -> bool:
    """What the API server's authorizer answers for the operator's ServiceAccount of ``ns``."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{ns}:{SOL}-operator", **attributes},
    }
    answer = admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def gadgets(ns: str, verb: str = "create") -> dict[str, Any]:
    attrs = {"namespace": ns, "group": GROUP, "resource": "gadgets", "verb": verb}
    return {"resourceAttributes": attrs}


async def test_example_roles_deploy_with_no_flag_bound_only_in_the_namespaces(
    ctx: Context, admin: Api, names: tuple[str, str]
) -> None:
    a, b = names
    async with Kube(ctx.target) as kube:
        await envs.create_environment(ctx, envs.CreateEnvOptions(a), connection=kube)
        await envs.create_environment(
            ctx, envs.CreateEnvOptions(b, namespaces=(b, f"{b}-2")), connection=kube
        )
        added = await envs.add_solution(
            ctx, envs.AddSolutionOptions(a, SOL, "1.0.3", wait=False), connection=kube
        )
        cannot = [w for w in added.warnings if "cannot grant" in w]
        assert len(cannot) == 3, added.warnings
        assert all("--allow-cluster-scope" in w for w in cannot)
        await envs.add_solution(
            ctx, envs.AddSolutionOptions(b, SOL, "1.1.2-dev", wait=False), connection=kube
        )

        cluster_roles = ours(admin, f"{RBAC}/clusterroles")
        assert sorted(cluster_roles) == sorted(
            [f"solutions:{a}:{SOL}-1.0.3:{n}" for n in CLUSTER_ROLES]
            + [f"solutions:{b}:{SOL}-1.1.2-dev:{n}" for n in CLUSTER_ROLES]
        )
        assert ours(admin, f"{RBAC}/clusterrolebindings") == {}
        for ns, env, version in ((a, a, "1.0.3"), (b, b, "1.1.2-dev"), (f"{b}-2", b, "1.1.2-dev")):
            bindings = ours(admin, f"{RBAC}/namespaces/{ns}/rolebindings")
            for name in CLUSTER_ROLES:
                ref = bindings[f"{SOL}-{version}-{name}"]["roleRef"]
                assert ref["kind"] == "ClusterRole"
                assert ref["name"] == f"solutions:{env}:{SOL}-{version}:{name}"
            assert bindings[f"{SOL}-leader-election-role"]["roleRef"]["kind"] == "Role"
            assert allowed(admin, ns, gadgets(ns))  # the manager role, in its namespace
        # Granted in the environment's namespaces only, never cluster-wide.
        assert not allowed(admin, a, gadgets(b))
        assert not allowed(admin, b, gadgets(a))
        review = {"group": "authentication.k8s.io", "resource": "tokenreviews", "verb": "create"}
        assert not allowed(admin, a, {"resourceAttributes": review})
        assert not allowed(admin, a, {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}})

        # An upgrade replaces the version's roles and bindings; nothing of 1.0.3 is left.
        await envs.upgrade_solution(
            ctx, envs.UpgradeOptions(a, SOL, "1.1.2-dev", wait=False), connection=kube
        )
        mine = sorted(
            n for n in ours(admin, f"{RBAC}/clusterroles") if n.startswith(f"solutions:{a}:")
        )
        assert mine == [f"solutions:{a}:{SOL}-1.1.2-dev:{n}" for n in CLUSTER_ROLES]
        assert not [n for n in ours(admin, f"{RBAC}/namespaces/{a}/rolebindings") if "1.0.3" in n]
        assert allowed(admin, a, gadgets(a))

        # Removal leaves no ClusterRole or RoleBinding behind, and the other environment intact.
        await envs.delete_solution(ctx, envs.DeleteSolutionOptions(a, SOL), connection=kube)
        assert ours(admin, f"{RBAC}/namespaces/{a}/rolebindings") == {}
        assert sorted(ours(admin, f"{RBAC}/clusterroles")) == [
            f"solutions:{b}:{SOL}-1.1.2-dev:{n}" for n in CLUSTER_ROLES
        ]
        assert not allowed(admin, a, gadgets(a))
        await envs.delete_solution(ctx, envs.DeleteSolutionOptions(b, SOL), connection=kube)
        assert ours(admin, f"{RBAC}/clusterroles") == {}
        for ns in (b, f"{b}-2"):
            assert ours(admin, f"{RBAC}/namespaces/{ns}/rolebindings") == {}


def test_the_cli_warns_at_validate_and_at_plan_time_and_deploys_with_no_flag(
    ctx: Context, local_cluster: LocalCluster, archives: list[Path], names: tuple[str, str]
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(ctx.config_path, local_cluster.kubeconfig, *args)

    checked = run("validate", str(archives[1]))
    assert checked.returncode == 0, checked.stderr
    assert (checked.stdout + checked.stderr).count("SOL053") == 3
    env = names[0]
    assert run("env", "create", env).returncode == 0
    plan = run("env", "add-solution", env, SOL, "1.1.2-dev", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    said = plan.stdout + plan.stderr
    warned = [line for line in said.splitlines() if "cannot grant" in line]
    assert len(warned) == 3 and all(w.startswith("warning: ") for w in warned), said
    assert "ClusterRole metrics-reader: rule nonResourceURLs=/metrics" in said
    done = run("env", "add-solution", env, SOL, "1.1.2-dev", "--no-wait")
    assert done.returncode == 0, done.stderr
    assert "--allow-cluster-scope" in done.stdout + done.stderr
