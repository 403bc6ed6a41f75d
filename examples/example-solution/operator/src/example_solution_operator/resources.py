"""What a VersionServer should become, as plain data: no I/O, so every rule is unit-tested.

A VersionServer ``spec: {version, replicas[, logLevel]}`` becomes a Deployment and a Service of
base-server, both named after it and controlled by it (owner reference: the garbage collector
deletes them with it, so the operator needs no finalizer).  The image comes from the
OperatorConfig entry of ``spec.version``; its status says what is deployed and whether it is
ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from example_solution_operator.config import OperatorConfig

GROUP = "example-solution.metalk8s.scality.com"
KIND = "VersionServer"
PLURAL = "versionservers"
SOLUTION = "example-solution"
OPERATOR = "example-solution-operator"
APP = "base-server"
APP_PORT = 8080
SERVICE_PORT = 80
OWNER_LABEL = f"{GROUP}/versionserver"
APP_UID = 65534  # nobody: base-server needs no privilege

# Condition reasons (stable: tests, the UI and users match on them).
AVAILABLE = "Available"
PROGRESSING = "Progressing"
UNKNOWN_VERSION = "UnknownVersion"
IMAGE_NOT_LISTED = "ImageNotListed"
NAME_CONFLICT = "NameConflict"


@dataclass(frozen=True)
class VersionServer:
    """The fields of a VersionServer the operator reads (from any served API version)."""

    api_version: str
    name: str
    namespace: str
    uid: str
    generation: int
    version: str
    replicas: int
    log_level: str | None
    status: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> VersionServer:
        meta = body.get("metadata", {})
        spec = body.get("spec") or {}
        return cls(
            api_version=str(body.get("apiVersion", f"{GROUP}/v1alpha1")),
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation", 1)),
            version=str(spec.get("version", "")),
            replicas=int(spec.get("replicas", 1)),
            log_level=spec.get("logLevel"),
            status=body.get("status") or {},
        )


@dataclass(frozen=True)
class Resolution:
    """The image to deploy for a version, or why there is none."""

    image: str | None
    reason: str = ""
    message: str = ""


def resolve_image(config: OperatorConfig, version: str) -> Resolution:
    """The base-server image of ``version``: the first repository of that version listing it."""
    repositories = config.repositories.get(version)
    if not repositories:
        known = ", ".join(config.versions())
        return Resolution(
            None,
            UNKNOWN_VERSION,
            f"version {version!r} is not available in this environment "
            f"(the operator config lists: {known}); import that version of {SOLUTION} and "
            "add it to the environment, or choose a listed version",
        )
    for repository in repositories:
        image = repository.find(APP)
        if image is not None:
            return Resolution(image.pull_reference(repository.endpoint))
    return Resolution(
        None,
        IMAGE_NOT_LISTED,
        f"the operator config lists version {version!r} without a {APP} image; "
        "the Solution archive of that version is incomplete",
    )


def selector_labels(vs: VersionServer) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": vs.name}


def labels(vs: VersionServer) -> dict[str, str]:
    return {
        **selector_labels(vs),
        "app.kubernetes.io/version": vs.version,
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": SOLUTION,
        "app.kubernetes.io/managed-by": OPERATOR,
        OWNER_LABEL: vs.name,
    }


def owner_reference(vs: VersionServer) -> dict[str, Any]:
    return {
        "apiVersion": vs.api_version,
        "kind": KIND,
        "name": vs.name,
        "uid": vs.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: Mapping[str, Any], vs: VersionServer) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == vs.uid and ref.get("controller") for ref in refs)


def controller_of(obj: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(apiVersion, name, uid) of the VersionServer controlling ``obj``, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        api_version = str(ref.get("apiVersion", ""))
        if ref.get("controller") and ref.get("kind") == KIND and api_version.startswith(GROUP):
            return api_version, str(ref["name"]), str(ref["uid"])
    return None


def deployment_manifest(vs: VersionServer, image: str) -> dict[str, Any]:
    args = [f"--port={APP_PORT}"]
    if vs.log_level:
        args.append(f"--log-level={vs.log_level}")
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": vs.name,
            "namespace": vs.namespace,
            "labels": labels(vs),
            "ownerReferences": [owner_reference(vs)],
        },
        "spec": {
            "replicas": vs.replicas,
            "selector": {"matchLabels": selector_labels(vs)},
            "template": {
                "metadata": {"labels": labels(vs)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": APP_UID,
                        "runAsGroup": APP_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": APP,
                            "image": image,
                            "args": args,
                            "ports": [{"name": "http", "containerPort": APP_PORT}],
                            "readinessProbe": probe,
                            "livenessProbe": probe,
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"memory": "64Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def service_manifest(vs: VersionServer) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": vs.name,
            "namespace": vs.namespace,
            "labels": labels(vs),
            "ownerReferences": [owner_reference(vs)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(vs),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }


def _rollout(deployment: Mapping[str, Any], want: int) -> tuple[bool, int, str]:
    """(complete, ready replicas, message) of a Deployment's rollout towards ``want`` replicas."""
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return False, ready, "the Deployment controller has not seen the latest change yet"
    if updated < want:
        return False, ready, f"{updated} of {want} replicas updated"
    if total > want:
        return False, ready, f"{total - want} old replicas still terminating"
    if available < want:
        return False, ready, f"{available} of {want} replicas available"
    return True, ready, f"{ready} of {want} replicas ready"


def _condition(
    previous: Mapping[str, Any], status: bool, reason: str, message: str, generation: int, now: str
) -> dict[str, Any]:
    value = "True" if status else "False"
    before = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    changed = before is None or before.get("status") != value
    since = now if changed or not before else before.get("lastTransitionTime", now)
    return {
        "type": "Ready",
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def compute_status(
    vs: VersionServer,
    resolution: Resolution,
    deployment: Mapping[str, Any] | None,
    now: str,
    *,
    conflict: str | None = None,
) -> dict[str, Any]:
    """The status of ``vs`` once its generation was converged (``deployment``: as it is now).

    ``version`` and ``image`` say what is deployed, which differs from the spec while a refused
    version keeps the previous Deployment running.
    """
    deployed_version = None
    deployed_image = None
    ready = 0
    if deployment is not None and conflict is None:
        deployed_version = (
            deployment.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/version")
        )
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {})
        deployed_image = (containers.get("containers") or [{}])[0].get("image")
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    if conflict is not None:
        condition = (False, NAME_CONFLICT, conflict)
    elif resolution.image is None:
        condition = (False, resolution.reason, resolution.message)
    elif deployment is None:
        condition = (False, PROGRESSING, "creating the Deployment")
    else:
        complete, ready, message = _rollout(deployment, vs.replicas)
        condition = (complete, AVAILABLE if complete else PROGRESSING, message)
    status: dict[str, Any] = {
        "observedGeneration": vs.generation,
        "replicas": vs.replicas,
        "readyReplicas": ready,
        "version": deployed_version,
        "image": deployed_image,
        "conditions": [_condition(vs.status, *condition, vs.generation, now)],
    }
    return status
