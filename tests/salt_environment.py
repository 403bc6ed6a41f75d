"""An Environment as MetalK8s's tools made it, object for object, on the local cluster.

``scripts/solutions.sh create-env`` (kubectl create namespace, label, annotate, create configmap)
and ``add-solution`` (kubectl patch of ``metalk8s-environment``, then the Salt orchestrate
``metalk8s.orchestrate.solutions.prepare-environment``) leave, in each namespace running solution
``S`` version ``V``:

- ServiceAccount ``S-operator``;
- each document of the archive's ``operator/deploy/role.yaml`` as it is (a Role gets the
  namespace; a ClusterRole is cluster-wide, shared by every environment running ``S``), each
  bound by RoleBinding ``S-operator-<kind in lower case>-<role name>`` (63 characters at most);
- ConfigMap ``S-operator-config`` (key ``operator.yaml``, the OperatorConfig);
- Deployment ``S-operator`` selecting its pods by ``app: S-operator`` (immutable).

Labels are Salt's (``app`` and ``app.kubernetes.io/*`` without ``managed-by``; the pod template
has ``managed-by: salt`` and ``heritage: salt``), the objects are plain creations (Salt's
``metalk8s_kubernetes.object_present`` creates, kubectl too), nothing carries a label of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import yaml

ENV_LABEL = "solutions.metalk8s.scality.com/environment"
ENV_DESCRIPTION = "solutions.metalk8s.scality.com/environment-description"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _create(http: httpx.Client, path: str, body: Mapping[str, Any], manager: str) -> None:
    response = http.post(path, params={"fieldManager": manager}, json=dict(body))
    if response.status_code == 409 and body.get("kind") in ("ClusterRole", "ClusterRoleBinding"):
        # object_present on an existing ClusterRole (another environment made it): replaced.
        name = body["metadata"]["name"]
        current = http.get(f"{path}/{name}").json()
        replaced = {**body, "metadata": {**body["metadata"], **_version_of(current)}}
        response = http.put(f"{path}/{name}", params={"fieldManager": manager}, json=replaced)
    response.raise_for_status()


def _version_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": obj["metadata"]["resourceVersion"]}


def _labels(solution: str, version: str) -> dict[str, str]:
    name = f"{solution}-operator"
    return {
        "app": name,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": "operator",
        "app.kubernetes.io/part-of": solution,
    }


def create_env(http: httpx.Client, env: str, namespace: str, description: str = "") -> None:
    """``solutions.sh create-env --name ENV --namespace NS --description D``."""
    _create(
        http,
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        "kubectl-create",
    )
    patch = {
        "metadata": {"labels": {ENV_LABEL: env}, "annotations": {ENV_DESCRIPTION: description}}
    }
    response = http.patch(
        f"/api/v1/namespaces/{namespace}",
        params={"fieldManager": "kubectl-label"},
        json=patch,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    _create(
        http,
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "metalk8s-environment"}},
        "kubectl-create",
    )


def add_solution(
    http: httpx.Client,
    namespace: str,
    solution: str,
    version: str,
    *,
    roles: Sequence[Mapping[str, Any]],
    images: Mapping[str, Sequence[str]],
    operator_image: str,
    registry: str = "metalk8s-registry-from-config.invalid:8080",
    metrics_port: int | None = None,
    cert_manager: bool = False,
    ui: bool = False,
) -> None:
    """``solutions.sh add-solution --name ENV --namespace NS --solution S --version V``.

    ``images`` maps each imported version of ``solution`` to its ``spec.images`` (the
    OperatorConfig lists them all); ``roles`` are the documents of its ``role.yaml``.
    """
    response = http.patch(
        f"/api/v1/namespaces/{namespace}/configmaps/metalk8s-environment",
        params={"fieldManager": "kubectl-patch"},
        json={"data": {solution: version}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    labels = _labels(solution, version)
    name = f"{solution}-operator"
    ns_path = f"/api/v1/namespaces/{namespace}"
    _create(
        http,
        f"{ns_path}/serviceaccounts",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        },
        "salt",
    )
    for role in roles:
        doc = yaml.safe_load(yaml.safe_dump(dict(role)))
        kind = doc["kind"]
        if kind == "Role":
            doc["metadata"]["namespace"] = namespace
            _create(http, f"{RBAC}/namespaces/{namespace}/roles", doc, "salt")
        else:
            _create(http, f"{RBAC}/clusterroles", doc, "salt")
        role_name = doc["metadata"]["name"]
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": f"{solution}-operator-{kind.lower()}-{role_name}"[:63],
                "namespace": namespace,
                "labels": labels,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name}],
            "roleRef": {"kind": kind, "name": role_name, "apiGroup": "rbac.authorization.k8s.io"},
        }
        _create(http, f"{RBAC}/namespaces/{namespace}/rolebindings", binding, "salt")
    repositories = {
        v: [{"endpoint": f"{registry}/{solution}-{v}", "images": list(imgs)}]
        for v, imgs in images.items()
    }
    operator_yaml = yaml.safe_dump(
        {
            "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
            "kind": "OperatorConfig",
            "repositories": repositories,
        }
    )
    _create(
        http,
        f"{ns_path}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-config", "namespace": namespace, "labels": labels},
            "data": {"operator.yaml": operator_yaml},
        },
        "salt",
    )
    if metrics_port is not None:
        _metrics(http, namespace, solution, labels, metrics_port, cert_manager=cert_manager)
    if ui:
        _admin_ui(http, namespace, solution, version)
    pod_labels = {**labels, "app.kubernetes.io/managed-by": "salt", "heritage": "salt"}
    env = [
        {"name": "WATCH_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "OPERATOR_NAME", "value": name},
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [
                        {
                            "name": name,
                            "image": f"{registry}/{solution}-{version}/{operator_image}",
                            "command": [name, "--config=/etc/config/operator.yaml"],
                            "imagePullPolicy": "Always",
                            "env": env,
                            "volumeMounts": [
                                {"name": "operator-config", "mountPath": "/etc/config"}
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "operator-config", "configMap": {"name": f"{name}-config"}}
                    ],
                },
            },
        },
    }
    _create(http, f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment, "salt")


def _metrics(
    http: httpx.Client,
    namespace: str,
    solution: str,
    labels: Mapping[str, str],
    port: int,
    *,
    cert_manager: bool = False,
) -> None:
    """MetalK8s 129's operator metrics objects (PR #4813) that need no CRD: the metrics Service,
    and the ClusterRole and ClusterRoleBinding ``S-operator-metrics-auth``; with
    ``cert_manager``, its self-signed Issuer ``S-operator-metrics-issuer``, the Certificate
    ``S-operator-metrics-cert`` and the Secret cert-manager writes for it (its controller does
    not run here)."""
    name = f"{solution}-operator"
    if cert_manager:
        _cert_manager_objects(http, namespace, name, labels)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{name}-metrics", "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": "https", "port": port, "protocol": "TCP", "targetPort": port}],
            "selector": {"app.kubernetes.io/name": name},
        },
    }
    _create(http, f"/api/v1/namespaces/{namespace}/services", service, "salt")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{name}-metrics-auth", "labels": dict(labels)},
        "rules": [
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["tokenreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["subjectaccessreviews"],
                "verbs": ["create"],
            },
        ],
    }
    _create(http, f"{RBAC}/clusterroles", role, "salt")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{name}-metrics-auth", "labels": dict(labels)},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        "roleRef": {
            "kind": "ClusterRole",
            "name": f"{name}-metrics-auth",
            "apiGroup": "rbac.authorization.k8s.io",
        },
    }
    _create(http, f"{RBAC}/clusterrolebindings", binding, "salt")


def _cert_manager_objects(
    http: httpx.Client, namespace: str, name: str, labels: Mapping[str, str]
) -> None:
    api = f"/apis/cert-manager.io/v1/namespaces/{namespace}"
    issuer, cert = f"{name}-metrics-issuer", f"{name}-metrics-cert"
    meta = {"namespace": namespace, "labels": dict(labels)}
    _create(
        http,
        f"{api}/issuers",
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": issuer, **meta},
            "spec": {"selfSigned": {}},
        },
        "salt",
    )
    _create(
        http,
        f"{api}/certificates",
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": cert, **meta},
            "spec": {
                "secretName": cert,
                "issuerRef": {"kind": "Issuer", "name": issuer},
                "dnsNames": [f"{name}-metrics.{namespace}.svc"],
            },
        },
        "salt",
    )
    secret = {  # as cert-manager's controller writes it: no label, no owner, annotated
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": cert,
            "namespace": namespace,
            "annotations": {
                "cert-manager.io/certificate-name": cert,
                "cert-manager.io/issuer-name": issuer,
                "cert-manager.io/issuer-kind": "Issuer",
            },
        },
        "data": {"tls.crt": "", "tls.key": "", "ca.crt": ""},
    }
    _create(http, f"/api/v1/namespaces/{namespace}/secrets", secret, "cert-manager")


def _admin_ui(http: httpx.Client, namespace: str, solution: str, version: str) -> None:
    """The admin UI MetalK8s 2.x deployed in each environment namespace (``files/ui/``):
    ConfigMap, Deployment, Service and Ingress ``S-ui``."""
    name = f"{solution}-ui"
    labels = {
        "app": name,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": "ui",
        "app.kubernetes.io/part-of": solution,
    }
    meta = {"name": name, "namespace": namespace, "labels": labels}
    ns_path = f"/api/v1/namespaces/{namespace}"
    _create(
        http,
        f"{ns_path}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"config.json": "{}"}},
        "salt",
    )
    pod_labels = {**labels, "app.kubernetes.io/managed-by": "salt"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {"name": name, "image": f"registry.invalid/{solution}-{version}/ui:1"}
                    ]
                },
            },
        },
    }
    _create(http, f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment, "salt")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": name}},
    }
    _create(http, f"{ns_path}/services", service, "salt")
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": f"/env/{namespace}/{solution}",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": name, "port": {"number": 80}}},
                            }
                        ]
                    }
                }
            ]
        },
    }
    _create(http, f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses", ingress, "salt")
