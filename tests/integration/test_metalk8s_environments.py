"""Environments MetalK8s deployed (``solutions.sh`` + Salt) are adopted: shown, upgraded, removed.

The objects are created on the local control plane exactly as MetalK8s's tools create them
(``tests/salt_environment.py``); the installed ``solutions`` command then reads, upgrades and
removes them as a MetalK8s user would, and nothing of MetalK8s's is left behind.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import salt_environment as salt
from env_support import Api, build_solution, cli, crd_document, write_config
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "saltsol"
GROUP = "saltsol.test.solutions"
#: role.yaml as MetalK8s Solutions ship it: a Role and a ClusterRole (bound per namespace).
ROLES: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"{SOL}-manager"},
        "rules": [{"apiGroups": [GROUP], "resources": ["gadgets"], "verbs": ["get", "list"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{SOL}-leader-election"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create"]}],
    },
]
IMAGES = {v: [f"base-server:{v}", f"{SOL}-operator:{v}"] for v in ("1.0.0", "1.1.0")}
NAMESPACED = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
}
#: What an environment namespace holds with no solution in it.
EMPTY = {
    "ServiceAccount/default",
    "ConfigMap/kube-root-ca.crt",
    "ConfigMap/metalk8s-environment",
    "ConfigMap/metalk8s-solutions-history",
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("salt-archives")
    return {
        "1.0.0": build_solution(out, SOL, "1.0.0", group=GROUP, roles=ROLES),
        "1.1.0": build_solution(out, SOL, "1.1.0", group=GROUP, roles=ROLES),
    }


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        yield api


@pytest.fixture
def names(admin: Api) -> Iterator[list[str]]:
    """Two fresh environment names (their namespaces and Salt's ClusterRole go afterwards)."""
    found = [f"salt-{secrets.token_hex(3)}" for _ in range(2)]
    yield found
    for name in found:
        for ns in admin.items("/api/v1/namespaces", f"{salt.ENV_LABEL}={name}"):
            admin.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
    for path in (
        f"clusterroles/{SOL}-leader-election",
        f"clusterroles/{SOL}-operator-metrics-auth",
        f"clusterrolebindings/{SOL}-operator-metrics-auth",
    ):
        admin.delete(f"/apis/rbac.authorization.k8s.io/v1/{path}")


def salt_env(
    admin: Api,
    env: str,
    ns: str,
    version: str,
    metrics_port: int | None = None,
    ui: bool = False,
) -> None:
    salt.create_env(admin.http, env, ns, "made by MetalK8s")
    salt.add_solution(
        admin.http,
        ns,
        SOL,
        version,
        roles=ROLES,
        images=IMAGES,
        operator_image=f"{SOL}-operator:{version}",
        metrics_port=metrics_port,
        ui=ui,
    )


def inventory(admin: Api, ns: str) -> set[str]:
    """kind/name of every namespaced object we or Salt may create in ``ns``."""
    return {
        f"{kind}/{obj['metadata']['name']}"
        for kind, path in NAMESPACED.items()
        for obj in admin.items(path.format(ns=ns))
    }


def salt_cluster_role(admin: Api) -> dict[str, Any] | None:
    return admin.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{SOL}-leader-election")


def test_a_salt_environment_is_shown_upgraded_and_removed_without_orphans(
    tmp_path: Path,
    archives: dict[str, Path],
    admin: Api,
    local_cluster: LocalCluster,
    names: list[str],
) -> None:
    config = write_config(tmp_path / "solutions.yaml", list(archives.values()))

    def run(*args: str) -> Any:
        done = cli(config, local_cluster.kubeconfig, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    env, other = names
    ns, other_ns = f"{env}-ns", f"{other}-ns"
    salt_env(admin, env, ns, "1.0.0", metrics_port=8443)  # as MetalK8s 129 with metrics on
    # As MetalK8s 2.x, with an admin UI; it shares Salt's ClusterRole (MetalK8s names it so).
    salt_env(admin, other, other_ns, "1.0.0", ui=True)
    unrelated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-salts"}}
    admin.post(f"/api/v1/namespaces/{ns}/configmaps", unrelated)

    # env list / show read MetalK8s's environment as it is.
    listed = json.loads(run("env", "list", "-o", "json").stdout)
    mine = next(e for e in listed if e["name"] == env)
    assert mine["description"] == "made by MetalK8s"
    assert mine["namespaces"] == {ns: {"config": {SOL: "1.0.0"}}}
    shown = json.loads(run("env", "show", env, "-o", "json").stdout)
    assert shown["namespaces"][ns]["solutions"][SOL]["version"] == "1.0.0"
    assert shown["namespaces"][ns]["solutions"][SOL]["operator"].startswith("Available")
    assert shown["namespaces"][ns]["solutions"][SOL]["deployedBy"] == "MetalK8s"
    human = run("env", "show", env).stdout
    assert f"{SOL} 1.0.0: Available: 1/1 replicas available (deployed by MetalK8s" in human, human

    # The plan names what is taken over; a dry run changes nothing.
    dry = run("env", "upgrade", env, SOL, "1.1.0", "--dry-run")
    assert f"would replace Deployment {ns}/{SOL}-operator" in dry.stdout, dry.stdout
    assert f"would delete RoleBinding {ns}/{SOL}-operator-role-{SOL}-manager" in dry.stdout
    before = admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{SOL}-operator")
    assert before is not None and before["spec"]["selector"] == {
        "matchLabels": {"app": f"{SOL}-operator"}
    }

    # upgrade: the Deployment (immutable selector) is replaced, its rollout awaited.
    upgraded = run("env", "upgrade", env, SOL, "1.1.0", "--timeout", "60")
    assert f"replace Deployment {ns}/{SOL}-operator" in upgraded.stdout, upgraded.stdout
    assert "replicas available" in upgraded.stderr
    dep = admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{SOL}-operator")
    assert dep is not None and dep["metadata"]["uid"] != before["metadata"]["uid"]
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
    assert dep["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    assert "app" not in dep["spec"]["selector"]["matchLabels"]
    left = inventory(admin, ns)
    assert not {o for o in left if "-operator-role-" in o or "-operator-clusterrole-" in o}, left
    for key in (f"ServiceAccount/{SOL}-operator", f"ConfigMap/{SOL}-operator-config"):
        obj = admin.get(NAMESPACED[key.split("/")[0]].format(ns=ns) + "/" + key.split("/")[1])
        assert obj is not None
        labels = obj["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/managed-by") == "metalk8s-solutions", key
        assert "app" not in labels, key
    assert f"Service/{SOL}-operator-metrics" not in left
    for kind in ("clusterroles", "clusterrolebindings"):
        path = f"/apis/rbac.authorization.k8s.io/v1/{kind}/{SOL}-operator-metrics-auth"
        assert admin.get(path) is None, path
    assert "ConfigMap/not-salts" in left  # unrelated objects are never touched
    # Salt's ClusterRole still serves the other MetalK8s environment.
    assert salt_cluster_role(admin) is not None
    after = json.loads(run("env", "show", env, "-o", "json").stdout)["namespaces"][ns]
    assert after["solutions"][SOL]["version"] == "1.1.0"
    assert after["solutions"][SOL]["deployedBy"] == "Solutions"

    # delete-solution: nothing of the solution is left in the namespace.
    run("env", "delete-solution", env, SOL, "--timeout", "60")
    assert inventory(admin, ns) - {"ConfigMap/not-salts"} == EMPTY

    # delete-solution straight from Salt's objects, then env delete: no orphan, cluster-wide.
    dry = run("env", "delete-solution", other, SOL, "--dry-run")
    assert f"would delete Ingress {other_ns}/{SOL}-ui: made by MetalK8s" in dry.stdout, dry.stdout
    run("env", "delete-solution", other, SOL, "--timeout", "60")
    assert inventory(admin, other_ns) == EMPTY
    assert salt_cluster_role(admin) is None, "the last user of Salt's ClusterRole is gone"
    salt.add_solution(
        admin.http,
        other_ns,
        SOL,
        "1.0.0",
        roles=ROLES,
        images=IMAGES,
        operator_image=f"{SOL}-operator:1.0.0",
    )
    run("env", "delete", other, "--timeout", "60")
    assert admin.get(f"/api/v1/namespaces/{other_ns}") is None
    assert salt_cluster_role(admin) is None
    # env converge takes over what MetalK8s deployed and awaits the replaced operator.
    salt.add_solution(
        admin.http,
        ns,
        SOL,
        "1.0.0",
        roles=ROLES,
        images=IMAGES,
        operator_image=f"{SOL}-operator:1.0.0",
    )
    converged = json.loads(run("env", "converge", env, "-o", "json").stdout)
    replaced = [s["target"] for s in converged["steps"] if s["action"] == "replace"]
    assert f"Deployment {ns}/{SOL}-operator" in replaced, converged["steps"]
    assert converged["rollouts"] == {f"Deployment {ns}/{SOL}-operator": "1/1 replicas available"}
    run("env", "delete", env, "--timeout", "60")
    for kind in ("clusterroles", "clusterrolebindings"):
        left_cluster = [
            o["metadata"]["name"]
            for o in admin.items(f"/apis/rbac.authorization.k8s.io/v1/{kind}")
            if SOL in o["metadata"]["name"]
        ]
        assert left_cluster == [], (kind, left_cluster)


def test_environment_names_metalk8s_accepts(
    tmp_path: Path, archives: dict[str, Path], admin: Api, local_cluster: LocalCluster
) -> None:
    """solutions.sh takes any label value as the environment name when a namespace is given."""
    config = write_config(tmp_path / "solutions.yaml", list(archives.values()))
    env = f"Team_A.{secrets.token_hex(2)}"
    ns = f"team-a-{secrets.token_hex(2)}"
    salt_env(admin, env, ns, "1.0.0")
    try:
        shown = cli(config, local_cluster.kubeconfig, "env", "show", env, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["namespaces"][ns]["solutions"][SOL]["version"] == "1.0.0"
        added = cli(config, local_cluster.kubeconfig, "env", "create", env, "-N", f"{ns}-2")
        assert added.returncode == 0, added.stderr
        labels = admin.get(f"/api/v1/namespaces/{ns}-2")["metadata"]["labels"]  # type: ignore[index]
        assert labels[salt.ENV_LABEL] == env
        bad = cli(config, local_cluster.kubeconfig, "env", "create", "Team_B")
        assert bad.returncode == 1 and "--namespace" in bad.stderr + bad.stdout
        removed = cli(config, local_cluster.kubeconfig, "env", "delete", env, "--timeout", "60")
        assert removed.returncode == 0, removed.stderr
        assert admin.items("/api/v1/namespaces", f"{salt.ENV_LABEL}={env}") == [] or all(
            n["status"].get("phase") == "Terminating"
            for n in admin.items("/api/v1/namespaces", f"{salt.ENV_LABEL}={env}")
        )
    finally:
        for item in admin.items("/api/v1/namespaces", f"{salt.ENV_LABEL}={env}"):
            admin.delete(f"/api/v1/namespaces/{item['metadata']['name']}")


def test_a_metalk8s_2_4_environment_is_removed_without_orphans(
    tmp_path: Path, archives: dict[str, Path], admin: Api, local_cluster: LocalCluster
) -> None:
    """MetalK8s 2.4's formula: a fixed Role and RoleBinding both named ``S-operator`` (from
    ``customApiGroups``), and an OperatorConfig ConfigMap without labels."""
    config = write_config(tmp_path / "solutions.yaml", list(archives.values()))
    env = f"salt24-{secrets.token_hex(3)}"
    ns = env
    salt.create_env(admin.http, env, ns)
    salt.add_solution(
        admin.http,
        ns,
        SOL,
        "1.0.0",
        roles=[],
        images=IMAGES,
        operator_image=f"{SOL}-operator:1.0.0",
    )
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    labels = {"app": f"{SOL}-operator", "app.kubernetes.io/part-of": SOL}
    meta = {"name": f"{SOL}-operator", "namespace": ns, "labels": labels}
    admin.post(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{"apiGroups": [GROUP], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    admin.post(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "subjects": [{"kind": "ServiceAccount", "name": f"{SOL}-operator"}],
            "roleRef": {
                "kind": "Role",
                "name": f"{SOL}-operator",
                "apiGroup": "rbac.authorization.k8s.io",
            },
        },
    )
    response = admin.http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/{SOL}-operator-config",
        json={"metadata": {"labels": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    try:
        done = cli(config, local_cluster.kubeconfig, "env", "delete-solution", env, SOL)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"delete RoleBinding {ns}/{SOL}-operator: made by MetalK8s" in done.stdout
        assert inventory(admin, ns) == EMPTY
    finally:
        admin.delete(f"/api/v1/namespaces/{ns}")
