"""The local control plane is a real Kubernetes: objects persist, schemas are enforced, controllers
run, pods land on KWOK nodes, RBAC denies."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster


def client_for(kubeconfig: Path) -> Client:
    return Client(config=KubeConfig.from_file(kubeconfig), field_manager="tests")


@pytest.fixture
def admin(local_cluster: LocalCluster) -> Client:
    return client_for(local_cluster.kubeconfig)


def wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def test_reports_the_pinned_version(local_cluster: LocalCluster) -> None:
    with local_cluster.admin_http() as http:
        assert http.get("/version").json()["gitVersion"] == "v1.35.4"


def test_nodes_are_ready(admin: Client, local_cluster: LocalCluster) -> None:
    nodes = list(admin.list(Node))
    assert len(nodes) == local_cluster.info.nodes >= 1
    for node in nodes:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"


def test_configmap_round_trip(admin: Client, kube_namespace: str) -> None:
    admin.create(
        ConfigMap(
            metadata=ObjectMeta(name="settings", namespace=kube_namespace),
            data={"solution": "1.0.0"},
        )
    )
    got = admin.get(ConfigMap, "settings", namespace=kube_namespace)
    assert got.data == {"solution": "1.0.0"}


CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.solutions.local"},
    "spec": {
        "group": "test.solutions.local",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {"replicas": {"type": "integer", "minimum": 0}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_schema_is_enforced(admin: Client, kube_namespace: str) -> None:
    admin.apply(CustomResourceDefinition.from_dict(CRD), force=True)

    def established() -> bool:
        crd = admin.get(CustomResourceDefinition, CRD["metadata"]["name"])
        conditions = crd.status.conditions if crd.status else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    wait_for(established, what="the CRD to be Established")
    widget = create_namespaced_resource("test.solutions.local", "v1", "Widget", "widgets")
    ok = widget.from_dict(  # type: ignore[attr-defined]
        {"metadata": {"name": "good", "namespace": kube_namespace}, "spec": {"replicas": 2}}
    )
    admin.create(ok)
    assert admin.get(widget, "good", namespace=kube_namespace).spec["replicas"] == 2
    bad = widget.from_dict(  # type: ignore[attr-defined]
        {"metadata": {"name": "bad", "namespace": kube_namespace}, "spec": {"replicas": "many"}}
    )
    with pytest.raises(ApiError) as err:
        admin.create(bad)
    assert err.value.status.code == 422
    assert "spec.replicas" in (err.value.status.message or "")


def deployment(namespace: str, name: str = "web", replicas: int = 2) -> Deployment:
    labels = {"app": name}
    return Deployment.from_dict(
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": name, "image": "example/web:1.0"}]},
                },
            },
        }
    )


def available(client: Client, namespace: str, name: str) -> bool:
    dep = client.get(Deployment, name, namespace=namespace)
    conditions = dep.status.conditions if dep.status else None
    return any(c.type == "Available" and c.status == "True" for c in conditions or []) and (
        dep.status.readyReplicas == dep.spec.replicas
    )


def test_deployment_becomes_available_on_kwok_nodes(admin: Client, kube_namespace: str) -> None:
    admin.create(deployment(kube_namespace))
    wait_for(lambda: available(admin, kube_namespace, "web"), what="Deployment web Available")
    pods = list(admin.list(Pod, namespace=kube_namespace))
    assert len(pods) == 2
    assert all(p.spec.nodeName and p.spec.nodeName.startswith("kwok-node-") for p in pods)
    assert all(p.status.phase == "Running" for p in pods)


def test_namespace_with_pods_is_deleted(admin: Client, local_cluster: LocalCluster) -> None:
    name = "t-delete-with-pods"
    admin.create(Namespace(metadata=ObjectMeta(name=name)))
    wait_for(
        lambda: any(True for _ in admin.list(ConfigMap, namespace=name)),
        what="the namespace to be provisioned",
    )
    admin.create(deployment(name, replicas=1))
    wait_for(lambda: available(admin, name, "web"), what="Deployment web Available")
    admin.delete(Namespace, name)

    def gone() -> bool:
        try:
            admin.get(Namespace, name)
        except ApiError as err:
            return err.status.code == 404
        return False

    wait_for(gone, timeout=90, what="the namespace deletion to complete")


def test_rbac_denies_a_user_without_rights(
    admin: Client, kube_namespace: str, mint_kubeconfig: Callable[..., Path]
) -> None:
    alice = client_for(mint_kubeconfig("alice", groups=("solutions-viewers",)))
    with pytest.raises(ApiError) as err:
        list(alice.list(ConfigMap, namespace=kube_namespace))
    assert err.value.status.code == 403
    # Grant read access through the aggregated 'view' role: reads pass, writes are still denied.
    admin.create(
        RoleBinding.from_dict(
            {
                "metadata": {"name": "viewers", "namespace": kube_namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Group",
                        "name": "solutions-viewers",
                    }
                ],
            }
        )
    )

    def can_list() -> bool:
        try:
            list(alice.list(ConfigMap, namespace=kube_namespace))
        except ApiError:
            return False
        return True

    wait_for(can_list, what="the 'view' ClusterRole to be aggregated and bound")
    with pytest.raises(ApiError) as err:
        alice.create(ConfigMap(metadata=ObjectMeta(name="nope", namespace=kube_namespace), data={}))
    assert err.value.status.code == 403
