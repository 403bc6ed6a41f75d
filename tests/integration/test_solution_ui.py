"""A Solution's own UI per environment, against the real local control plane (issue 11).

Three versions of one solution: 1.0.0 has no UI, 2.0.0 declares ``spec.ui`` (default image
``uitest-ui:2.0.0``, port 8080), 3.0.0 another port.  The UI objects (ConfigMap, Deployment,
Service, and an Ingress when the cluster has an IngressClass) appear with the operator, carry
the environment's labels, follow upgrades and downgrades, disappear on removal, and two
environments get two separate sets.  The route of ``solutions ui`` to the UI is tested in
``tests/web/test_solution_ui_route.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from env_support import Api, build_solution, cli, crd_document, wait_for, write_config
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "uitest"
GROUP = "uitest.test.solutions"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"
CLASS = "uitest-class"
INGRESS_CLASSES = "/apis/networking.k8s.io/v1/ingressclasses"
UI_KINDS = {
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("ui-archives")
    return [
        build_solution(out, SOL, "1.0.0", group=GROUP),
        build_solution(out, SOL, "2.0.0", group=GROUP, ui={"port": 8080}),
        build_solution(out, SOL, "3.0.0", group=GROUP, ui={"port": 9090}),
    ]


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        yield api
        api.delete(f"{INGRESS_CLASSES}/{CLASS}")  # cluster-wide: never outlives this module


@pytest.fixture
def ctx(tmp_path: Path, archives: list[Path], local_cluster: LocalCluster) -> Context:
    config = write_config(tmp_path / "solutions.yaml", archives)
    return Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))


def ui_objects(admin: Api, ns: str) -> dict[str, dict[str, Any]]:
    """kind/name -> object of everything labelled as the UI of SOL in ``ns``."""
    selector = f"app.kubernetes.io/component=ui,app.kubernetes.io/part-of={SOL}"
    return {
        f"{kind}/{obj['metadata']['name']}": obj
        for kind, path in UI_KINDS.items()
        for obj in admin.items(path.format(ns=ns), selector)
    }


def check_ui(admin: Api, env: str, version: str, port: int, *, ingress: bool) -> None:
    found = ui_objects(admin, env)
    expected = {f"ConfigMap/{SOL}-ui-config", f"Deployment/{SOL}-ui", f"Service/{SOL}-ui"}
    if ingress:
        expected.add(f"Ingress/{SOL}-ui")
    assert set(found) == expected
    for obj in found.values():
        labels = obj["metadata"]["labels"]
        assert labels[ENV_LABEL] == env
        assert labels["app.kubernetes.io/version"] == version
        assert labels["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
        assert labels["app.kubernetes.io/name"] == f"{SOL}-ui"
    dep = found[f"Deployment/{SOL}-ui"]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].startswith(f"registry.test:5000/{SOL}-{version}/{SOL}-ui@sha256:")
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert pod["automountServiceAccountToken"] is False
    config = json.loads(found[f"ConfigMap/{SOL}-ui-config"]["data"]["config.json"])
    assert config["environment"] == env and config["namespace"] == env
    assert config["version"] == version
    assert config["basePath"] == f"/env/{env}/{env}/{SOL}/"
    assert config["api"]["paths"] == [f"/apis/{GROUP}/v1alpha1/namespaces/{env}/gadgets"]
    service = found[f"Service/{SOL}-ui"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": f"{SOL}-ui",
        "app.kubernetes.io/instance": f"{SOL}-ui",
    }


async def test_ui_follows_the_lifecycle_without_an_ingress_controller(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api, local_cluster: LocalCluster
) -> None:
    assert not admin.items(INGRESS_CLASSES), "an IngressClass was left in the cluster"
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)

    # 1.0.0 has no UI: nothing of it, and no line about Ingresses.
    outcome = await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", timeout=60), connection=kube
    )
    assert ui_objects(admin, env) == {}
    assert not [w for w in outcome.warnings if "Ingress" in w]

    # Upgrade to 2.0.0: the UI appears with the operator, awaited like it; one line says why
    # there is no Ingress.
    outcome = await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "2.0.0", timeout=60), connection=kube
    )
    check_ui(admin, env, "2.0.0", 8080, ingress=False)
    assert f"Deployment {env}/{SOL}-ui" in outcome.rollouts
    lines = [w for w in outcome.warnings if "Ingress" in w]
    assert len(lines) == 1 and "no Ingress controller" in lines[0] and "solutions ui" in lines[0]
    created = [s.target for s in outcome.steps if s.action == "create"]
    # Its ConfigMap and Service before its Deployment.
    assert created.index(f"ConfigMap {env}/{SOL}-ui-config") < created.index(
        f"Deployment {env}/{SOL}-ui"
    )

    # The environment shows where the UI is and that it is up.
    shown = await envs.show_environment(ctx, env, connection=kube)
    ui = shown["namespaces"][env]["solutions"][SOL]["ui"]
    assert ui["path"] == f"/env/{env}/{env}/{SOL}/" and ui["url"] is None
    assert ui["status"].startswith("Available"), ui
    human = cli(ctx.config_path, local_cluster.kubeconfig, "env", "show", env)
    assert f"open 'solutions ui' at /env/{env}/{env}/{SOL}/" in human.stdout, human.stdout

    # Upgrade to 3.0.0: the same objects, changed in place (new version, port, image).
    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "3.0.0", timeout=60), connection=kube
    )
    check_ui(admin, env, "3.0.0", 9090, ingress=False)
    # Downgrade to 2.0.0 and to 1.0.0: back, then gone.
    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "2.0.0", timeout=60), connection=kube
    )
    check_ui(admin, env, "2.0.0", 8080, ingress=False)
    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "1.0.0", timeout=60), connection=kube
    )
    wait_for(lambda: ui_objects(admin, env) == {}, what="UI objects pruned on downgrade")
    assert admin.get(f"/apis/apps/v1/namespaces/{env}/deployments/{SOL}-operator") is not None

    # A converge with nothing to do writes nothing.
    await envs.upgrade_solution(
        ctx, envs.UpgradeOptions(env, SOL, "2.0.0", timeout=60), connection=kube
    )
    before = kube.counter.mutating
    again = await envs.converge_environments(ctx, envs.ConvergeOptions((env,)), connection=kube)
    assert again.steps == [] and kube.counter.mutating == before

    # Removal takes the UI with the operator.
    await envs.delete_solution(ctx, envs.DeleteSolutionOptions(env, SOL), connection=kube)
    wait_for(lambda: ui_objects(admin, env) == {}, what="UI objects removed with the solution")
    assert admin.get(f"/apis/apps/v1/namespaces/{env}/deployments/{SOL}-operator") is None


async def test_two_environments_two_uis_and_an_ingress_each(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api, local_cluster: LocalCluster
) -> None:
    admin.apply(
        INGRESS_CLASSES + f"/{CLASS}",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": CLASS,
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "example.com/uitest-controller"},
        },
    )
    for env in env_names:
        await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
        outcome = await envs.add_solution(
            ctx, envs.AddSolutionOptions(env, SOL, "2.0.0", timeout=60), connection=kube
        )
        assert not [w for w in outcome.warnings if "Ingress" in w], outcome.warnings
        check_ui(admin, env, "2.0.0", 8080, ingress=True)
    first, second = (ui_objects(admin, env) for env in env_names)
    uids = {o["metadata"]["uid"] for o in first.values()}
    assert uids.isdisjoint(o["metadata"]["uid"] for o in second.values())
    for env, found in zip(env_names, (first, second), strict=True):
        ingress = found[f"Ingress/{SOL}-ui"]["spec"]
        assert ingress["ingressClassName"] == CLASS
        path = ingress["rules"][0]["http"]["paths"][0]
        assert path["path"] == f"/env/{env}/{env}/{SOL}"
        assert path["pathType"] == "Prefix"
        assert path["backend"]["service"] == {"name": f"{SOL}-ui", "port": {"name": "http"}}
    # Nothing cluster-wide is made for a UI: only namespaced objects, one set per namespace.
    cluster_roles = admin.items(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles", "app.kubernetes.io/component=ui"
    )
    assert cluster_roles == []

    # The Ingress's address, once the controller publishes it, becomes the UI's link.
    env = env_names[0]
    status_path = f"/apis/networking.k8s.io/v1/namespaces/{env}/ingresses/{SOL}-ui/status"
    response = admin.http.patch(
        status_path,
        json={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.80"}]}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    shown = await envs.show_environment(ctx, env, connection=kube)
    ui = shown["namespaces"][env]["solutions"][SOL]["ui"]
    assert ui["url"] == f"http://192.0.2.80/env/{env}/{env}/{SOL}/"

    # Someone who may not list IngressClasses (cluster-scoped) converges: the Ingresses stay.
    await converge_as_a_namespace_admin(admin, local_cluster, ctx, env_names[1], set(second))

    # Removing it from one environment leaves the other's UI untouched.
    await envs.delete_solution(ctx, envs.DeleteSolutionOptions(env, SOL), connection=kube)
    assert ui_objects(admin, env) == {}
    assert set(ui_objects(admin, env_names[1])) == set(second)


async def converge_as_a_namespace_admin(
    admin: Api, local_cluster: LocalCluster, ctx: Context, env: str, expected: set[str]
) -> None:
    """``admin`` of ``env``'s namespace, who may read what a converge reads cluster-wide
    (namespaces, environment ConfigMaps, our ClusterRoles and admission policies) but not
    IngressClasses, converges: nothing changes."""
    user = f"ns-admin-{env}"
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    admin.apply(
        f"{rbac}/clusterroles/{user}",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "configmaps"],
                    "verbs": ["get", "list"],
                },
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles", "clusterrolebindings"],
                    "verbs": ["get", "list"],
                },
                {  # the environment's image admission policy (engine/admission.py)
                    "apiGroups": ["admissionregistration.k8s.io"],
                    "resources": [
                        "validatingadmissionpolicies",
                        "validatingadmissionpolicybindings",
                    ],
                    "verbs": ["get", "list"],
                },
            ],
        },
    )
    for kind, path, role in (
        ("ClusterRoleBinding", f"{rbac}/clusterrolebindings/{user}", ("ClusterRole", user)),
        ("RoleBinding", f"{rbac}/namespaces/{env}/rolebindings/{user}", ("ClusterRole", "admin")),
    ):
        meta: dict[str, Any] = {"name": user}
        if kind == "RoleBinding":
            meta["namespace"] = env
        admin.apply(
            path,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": kind,
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": role[0],
                    "name": role[1],
                },
                "subjects": [
                    {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
                ],
            },
        )
    # The authorizer reads bindings from a cache: wait until it knows both of them.
    admin.wait_allowed(user, "list", "clusterroles", group="rbac.authorization.k8s.io")
    admin.wait_allowed(
        user, "list", "validatingadmissionpolicies", group="admissionregistration.k8s.io"
    )
    admin.wait_allowed(user, "patch", "deployments", group="apps", namespace=env)
    try:
        kubeconfig = local_cluster.user_kubeconfig(user)
        as_user = Context(ctx.config_path, ClusterTarget(kubeconfig=kubeconfig))
        done = await envs.converge_environments(as_user, envs.ConvergeOptions((env,)))
        assert done.steps == [], done.steps
        assert not [w for w in done.warnings if "Ingress" in w], done.warnings
        assert set(ui_objects(admin, env)) == expected
    finally:
        admin.delete(f"{rbac}/clusterrolebindings/{user}")
        admin.delete(f"{rbac}/clusterroles/{user}")
