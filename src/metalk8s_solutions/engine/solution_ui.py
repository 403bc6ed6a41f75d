"""A Solution's own web UI in one environment namespace: PURE, no I/O.

When a version declares ``spec.ui`` (or carries the MetalK8s default image ``<name>-ui:<version>``,
see :class:`~metalk8s_solutions.api.manifest.UiSpec`), the environment engine deploys beside its
operator, in each namespace that runs it:

- ConfigMap ``<sol>-ui-config`` with ``config.json``: the environment, the namespace, the base
  path and the Kubernetes API paths the UI may call (its CRDs' collections in this namespace);
- Deployment ``<sol>-ui`` of the UI image, pulled from the registry endpoint by digest, the
  configuration mounted at ``/etc/solution-ui/``; no ServiceAccount token is mounted: the UI acts
  with the rights of the user who calls it, never its own;
- Service ``<sol>-ui`` (ClusterIP, port ``http``);
- Ingress ``<sol>-ui`` under :func:`base_path` when the cluster has an Ingress controller
  (:func:`choose_ingress`); otherwise ``solutions ui`` reaches the Service through the API
  server's service proxy, with the logged-in user's rights, under the very same path.

The UI is served under its full base path (``/env/<env>/<namespace>/<solution>/``) by both
routes, so its pages work the same either way provided they use relative URLs.  Every object
carries the environment's labels with ``app.kubernetes.io/component: ui``, so the engine plans,
diffs, prunes and awaits them with the operator: an upgrade, a downgrade or a removal moves both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.api.manifest import UiSpec
from metalk8s_solutions.engine.desired import (
    GROUP,
    IngressTarget,
    VersionContent,
    deployment_object,
    image_reference,
    labels_for,
    pod_selector,
)
from metalk8s_solutions.errors import command

Obj = dict[str, Any]
COMPONENT = "ui"
CONFIG_DIR = "/etc/solution-ui"
CONFIG_FILE = "config.json"
PORT_NAME = "http"
SERVICE_PORT = 80
CONFIG_HASH = f"{GROUP}/ui-config-hash"
DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_PREFIX = "api/kubernetes"  # below the base path: the UI's window on the Kubernetes API


def ui_name(solution: str) -> str:
    """The name of the UI's Deployment, Service and Ingress (MetalK8s's ``<solution>-ui``)."""
    return f"{solution}-ui"


def ui_config_name(solution: str) -> str:
    return f"{solution}-ui-config"


def base_path(env: str, namespace: str, solution: str) -> str:
    """Where the UI is served, through the Ingress and through ``solutions ui`` alike."""
    return f"/env/{env}/{namespace}/{solution}/"


def api_base(env: str, namespace: str, solution: str) -> str:
    """Where the UI's pages call the Kubernetes API (answered by ``solutions ui`` as the user)."""
    return base_path(env, namespace, solution) + API_PREFIX


def ui_labels(env: str, solution: str, version: str) -> dict[str, str]:
    """The labels of the UI objects: the environment's, with the ``ui`` component."""
    return labels_for(env, solution, version, COMPONENT)


def api_paths(content: VersionContent, namespace: str) -> list[str]:
    """The collections of the version's namespaced CRDs in ``namespace``, newest version first."""
    paths: list[str] = []
    for crd in content.crds:
        spec = crd.get("spec") or {}
        if spec.get("scope") != "Namespaced":
            continue
        group = spec.get("group")
        plural = (spec.get("names") or {}).get("plural")
        versions = [str(v.get("name")) for v in spec.get("versions") or [] if v.get("served", True)]
        for version in reversed(versions):  # CRDs list versions oldest first by convention
            paths.append(f"/apis/{group}/{version}/namespaces/{namespace}/{plural}")
    return paths


def is_allowed_api_path(path: str, allowed: Sequence[str]) -> bool:
    """``path`` is one of ``allowed`` or a resource under it (no ``..``, no other prefix)."""
    if "/../" in path or path.endswith("/..") or "//" in path:
        return False
    return any(path == a or path.startswith(a + "/") for a in allowed)


def runtime_config(env: str, namespace: str, content: VersionContent) -> dict[str, Any]:
    """The document mounted as ``/etc/solution-ui/config.json``."""
    sol = content.name
    return {
        "solution": sol,
        "version": content.version,
        "displayName": content.manifest.display_name,
        "environment": env,
        "namespace": namespace,
        "basePath": base_path(env, namespace, sol),
        "api": {
            "kubernetes": api_base(env, namespace, sol),
            "paths": api_paths(content, namespace),
        },
    }


@dataclass(frozen=True)
class IngressChoice:
    """The Ingress to create (None: none), and the one line that says why when there is none."""

    target: IngressTarget | None
    message: str | None = None


def choose_ingress(
    classes: Sequence[Mapping[str, Any]],
    *,
    enabled: bool = True,
    class_name: str | None = None,
    host: str | None = None,
    tls_secret: str | None = None,
) -> IngressChoice:
    """Pick the IngressClass for Solution UIs from the cluster's ``classes`` and the settings."""
    fallback = f"Solution UIs are reachable through '{command('ui')}' only"
    if not enabled:
        return IngressChoice(None)
    names = sorted(str((c.get("metadata") or {}).get("name")) for c in classes)
    if class_name is not None:
        if class_name in names:
            return IngressChoice(IngressTarget(class_name, host, tls_secret))
        return IngressChoice(
            None,
            f"IngressClass {class_name} (ingress.className in the configuration) is not in the "
            f"cluster (it has: {', '.join(names) or 'none'}): {fallback}",
        )
    defaults = [
        str(c["metadata"]["name"])
        for c in classes
        if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS) == "true"
    ]
    if len(defaults) == 1:
        return IngressChoice(IngressTarget(defaults[0], host, tls_secret))
    if len(names) == 1:
        return IngressChoice(IngressTarget(names[0], host, tls_secret))
    if not names:
        return IngressChoice(None, f"the cluster has no Ingress controller: {fallback}")
    return IngressChoice(
        None,
        f"the cluster has several IngressClasses ({', '.join(names)}) and none is the default: "
        f"{fallback}; set ingress.className in the configuration",
    )


def _deployment(
    solution: str, namespace: str, labels: Mapping[str, str], image: str, ui: UiSpec, path: str
) -> Obj:
    container: Obj = {
        "name": "ui",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": ui.port, "protocol": "TCP"}],
        "env": [
            {"name": "SOLUTION_UI_CONFIG", "value": f"{CONFIG_DIR}/{CONFIG_FILE}"},
            {"name": "SOLUTION_UI_PORT", "value": str(ui.port)},
            {"name": "SOLUTION_UI_BASE_PATH", "value": path},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "readinessProbe": {"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "ui-config", "mountPath": CONFIG_DIR, "readOnly": True},
            # The API server's CA only: the UI forwards its callers' tokens, never its own.
            {"name": "api-ca", "mountPath": SA_DIR, "readOnly": True},
        ],
    }
    ca = {
        "configMap": {
            "name": "kube-root-ca.crt",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
            "optional": True,
        }
    }
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {"name": "ui-config", "configMap": {"name": ui_config_name(solution)}},
            {"name": "api-ca", "projected": {"sources": [ca]}},
        ],
    }
    return deployment_object(ui_name(solution), namespace, labels, pod_spec)


def _ingress(
    name: str, namespace: str, labels: Mapping[str, str], path: str, target: IngressTarget
) -> Obj:
    rule: Obj = {
        "http": {
            "paths": [
                {
                    "path": path.rstrip("/"),
                    "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"name": PORT_NAME}}},
                }
            ]
        }
    }
    if target.host:
        rule["host"] = target.host
    spec: Obj = {"ingressClassName": target.class_name, "rules": [rule]}
    if target.tls_secret:
        tls: Obj = {"secretName": target.tls_secret}
        if target.host:
            tls["hosts"] = [target.host]
        spec["tls"] = [tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def ui_objects(
    env: str,
    namespace: str,
    content: VersionContent,
    endpoint: str,
    ingress: IngressTarget | None,
) -> list[Obj]:
    """ConfigMap, Deployment, Service (and Ingress) of the version's UI; [] when it has none."""
    ui = content.manifest.ui
    if ui is None:
        return []
    sol = content.name
    name = ui_name(sol)
    labels = ui_labels(env, sol, content.version)
    path = base_path(env, namespace, sol)
    config = json.dumps(runtime_config(env, namespace, content), indent=2, sort_keys=True) + "\n"
    objects: list[Obj] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": ui_config_name(sol),
                "namespace": namespace,
                "labels": dict(labels),
            },
            "data": {CONFIG_FILE: config},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "type": "ClusterIP",
                "selector": pod_selector(labels),
                "ports": [
                    {
                        "name": PORT_NAME,
                        "port": SERVICE_PORT,
                        "targetPort": PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        },
    ]
    deployment = _deployment(
        sol, namespace, labels, image_reference(endpoint, content, ui.image), ui, path
    )
    # A new configuration (another path, new API versions) rolls the pods.
    digest = hashlib.sha256(config.encode()).hexdigest()[:16]
    deployment["spec"]["template"]["metadata"]["annotations"] = {CONFIG_HASH: digest}
    objects.append(deployment)
    if ingress is not None:
        objects.append(_ingress(name, namespace, labels, path, ingress))
    return objects


def ingress_url(ingress: Mapping[str, Any]) -> str | None:
    """The browser URL of a live UI Ingress, when its host or its controller's address is known."""
    spec = ingress.get("spec") or {}
    rules = spec.get("rules") or [{}]
    paths = ((rules[0].get("http") or {}).get("paths")) or [{}]
    path = str(paths[0].get("path") or "/")
    host = rules[0].get("host")
    if not host:
        balancers = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        first = balancers[0] if balancers else {}
        host = first.get("hostname") or first.get("ip")
    if not host:
        return None
    secure = any(
        not t.get("hosts") or host in (t.get("hosts") or []) for t in spec.get("tls") or []
    )
    return f"{'https' if secure else 'http'}://{host}{path.rstrip('/')}/"


__all__ = [
    "API_PREFIX",
    "COMPONENT",
    "IngressChoice",
    "IngressTarget",
    "api_base",
    "api_paths",
    "base_path",
    "choose_ingress",
    "ingress_url",
    "is_allowed_api_path",
    "runtime_config",
    "ui_config_name",
    "ui_labels",
    "ui_name",
    "ui_objects",
]
