"""The environment objects themselves: labelled Namespaces, ``metalk8s-environment``, history.

Every write here first reads and compares, so a command that changes nothing sends no mutating
request.  ``metalk8s-environment`` is replaced whole (read, modify, PUT with the resourceVersion)
rather than applied: a key removed by us must disappear even when another tool wrote it.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from metalk8s_solutions.cluster.apply import Obj, request
from metalk8s_solutions.cluster.envstate import (
    ALLOWED_IMAGES_ANNOTATION,
    CLUSTER_SCOPE_ANNOTATION,
    POD_SECURITY_LABEL,
    PRIVILEGED_ANNOTATION,
    WEBHOOK_ANNOTATION,
    EnvironmentState,
    NamespaceState,
    environment_states,
    set_config,
)
from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Conflict, Forbidden, Kube
from metalk8s_solutions.cluster.state import ENV_CONFIGMAP, ENV_DESCRIPTION, ENV_LABEL

HISTORY_CONFIGMAP = "metalk8s-solutions-history"
MANAGED_BY = {"app.kubernetes.io/managed-by": FIELD_MANAGER}
HISTORY_LIMIT = 20
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


async def read_namespace(kube: Kube, name: str) -> Obj | None:
    return await request(
        kube,
        "GET",
        f"/api/v1/namespaces/{_q(name)}",
        action=f"reading Namespace {name}",
        missing_ok=True,
    )


async def list_ingress_classes(kube: Kube) -> list[Obj] | None:
    """The cluster's IngressClasses; None when the caller may not list them."""
    try:
        data = await request(
            kube,
            "GET",
            "/apis/networking.k8s.io/v1/ingressclasses",
            action="listing IngressClasses",
            missing_ok=True,
        )
    except Forbidden:
        return None
    return list((data or {}).get("items") or [])


async def read_ingress(kube: Kube, namespace: str, name: str) -> Obj | None:
    return await request(
        kube,
        "GET",
        f"/apis/networking.k8s.io/v1/namespaces/{_q(namespace)}/ingresses/{_q(name)}",
        action=f"reading Ingress {namespace}/{name}",
        missing_ok=True,
    )


async def _read_env_config(kube: Kube, ns: NamespaceState) -> None:
    cm = await request(
        kube,
        "GET",
        f"/api/v1/namespaces/{_q(ns.name)}/configmaps/{ENV_CONFIGMAP}",
        action=f"reading ConfigMap {ns.name}/{ENV_CONFIGMAP}",
        missing_ok=True,
    )
    set_config(ns, cm)


async def read_environment_states(
    kube: Kube, env: str | None = None
) -> dict[str, EnvironmentState]:
    """Environments (all, or just ``env``) from labelled Namespaces and their ConfigMaps."""
    selector = f"{ENV_LABEL}={env}" if env else ENV_LABEL
    data = await request(
        kube,
        "GET",
        "/api/v1/namespaces",
        action="listing environment namespaces",
        params={"labelSelector": selector},
    )
    envs = environment_states((data or {}).get("items") or [])
    states = [ns for state in envs.values() for ns in state.namespaces.values()]
    await asyncio.gather(*(_read_env_config(kube, ns) for ns in states))
    return envs


def pod_security_labels(level: str) -> dict[str, str]:
    """The labels that make Pod Security admission enforce, warn about and audit ``level``."""
    return {f"{POD_SECURITY_LABEL}/{mode}": level for mode in ("enforce", "warn", "audit")}


async def ensure_namespace(
    kube: Kube, name: str, env: str, description: str, *, dry_run: bool, pod_security: str
) -> str | None:
    """Create or label ``name`` for ``env``; what was (or would be) done, or None."""
    current = await read_namespace(kube, name)
    labels = {ENV_LABEL: env, **MANAGED_BY, **pod_security_labels(pod_security)}
    annotations = {ENV_DESCRIPTION: description} if description else {}
    if current is not None:
        meta = current.get("metadata") or {}
        have_labels = meta.get("labels") or {}
        have_ann = meta.get("annotations") or {}
        if all(have_labels.get(k) == v for k, v in labels.items()) and all(
            have_ann.get(k) == v for k, v in annotations.items()
        ):
            return None
    action = "create" if current is None else "label"
    if not dry_run:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
        }
        await request(
            kube,
            "PATCH",
            f"/api/v1/namespaces/{_q(name)}",
            action=f"applying Namespace {name}",
            body=body,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )
    return action


async def write_env_config(
    kube: Kube,
    ns: NamespaceState,
    env: str,
    config: Mapping[str, str],
    cluster_scope: set[str],
    privileged: set[str] | None = None,
) -> bool:
    """Make ``metalk8s-environment`` in ``ns`` hold exactly ``config``, and the Namespace the
    administrator's approvals (``privileged`` None: keep those of ``ns``); False if it did."""
    privileged = set(ns.privileged if privileged is None else privileged)
    approvals_changed = ns.cluster_scope != cluster_scope or ns.privileged != privileged
    if ns.config_exists and dict(ns.config) == dict(config) and not approvals_changed:
        return False
    if approvals_changed:
        await _write_approvals(kube, ns.name, cluster_scope, privileged)
        ns.cluster_scope = set(cluster_scope)
        ns.privileged = privileged
    if ns.config_exists and dict(ns.config) == dict(config):
        return True
    body: Obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ENV_CONFIGMAP,
            "namespace": ns.name,
            "labels": {ENV_LABEL: env, **MANAGED_BY},
            "annotations": {},  # approvals of older versions are dropped: they were writable
        },
        "data": dict(sorted(config.items())),
    }
    base = f"/api/v1/namespaces/{_q(ns.name)}/configmaps"
    action = f"writing ConfigMap {ns.name}/{ENV_CONFIGMAP}"
    if ns.config_exists:
        body["metadata"]["resourceVersion"] = ns.resource_version
        try:
            result = await request(kube, "PUT", f"{base}/{ENV_CONFIGMAP}", action=action, body=body)
        except Conflict as err:
            raise Conflict(
                f"{action}: it changed while this command ran", hint="run the command again"
            ) from err
    else:
        result = await request(kube, "POST", base, action=action, body=body)
    ns.config = dict(config)
    ns.config_exists = True
    ns.resource_version = ((result or {}).get("metadata") or {}).get("resourceVersion")
    return True


async def _write_approvals(
    kube: Kube, namespace: str, cluster_scope: set[str], privileged: set[str]
) -> None:
    """Record the approvals on the Namespace (a merge patch: removes an emptied one)."""
    annotations = {
        CLUSTER_SCOPE_ANNOTATION: ",".join(sorted(cluster_scope)) or None,
        PRIVILEGED_ANNOTATION: ",".join(sorted(privileged)) or None,
    }
    await request(
        kube,
        "PATCH",
        f"/api/v1/namespaces/{_q(namespace)}",
        action=f"recording approvals on Namespace {namespace}",
        body={"metadata": {"annotations": annotations}},
        params={"fieldManager": APPROVALS_MANAGER},
        content_type="application/merge-patch+json",
    )


async def write_webhook(kube: Kube, ns: NamespaceState, solutions: set[str]) -> None:
    """Record on the Namespace which solutions run with webhooks (a merge patch)."""
    if ns.webhook == solutions:
        return
    await request(
        kube,
        "PATCH",
        f"/api/v1/namespaces/{_q(ns.name)}",
        action=f"recording webhooks on Namespace {ns.name}",
        body={
            "metadata": {"annotations": {WEBHOOK_ANNOTATION: ",".join(sorted(solutions)) or None}}
        },
        params={"fieldManager": APPROVALS_MANAGER},
        content_type="application/merge-patch+json",
    )
    ns.webhook = set(solutions)


async def write_allowed_images(kube: Kube, ns: NamespaceState, entries: set[str]) -> None:
    """Record on the Namespace the image references allowed there (``<solution>=<ref>``)."""
    if ns.allowed_images == entries:
        return
    value = ",".join(sorted(entries)) or None
    await request(
        kube,
        "PATCH",
        f"/api/v1/namespaces/{_q(ns.name)}",
        action=f"recording allowed images on Namespace {ns.name}",
        body={"metadata": {"annotations": {ALLOWED_IMAGES_ANNOTATION: value}}},
        params={"fieldManager": APPROVALS_MANAGER},
        content_type="application/merge-patch+json",
    )
    ns.allowed_images = set(entries)


#: a field manager of its own, so that applying the Namespace never drops the approvals
APPROVALS_MANAGER = f"{FIELD_MANAGER}-approvals"


# -- revision history -----------------------------------------------------------------------

#: the result of a revision recorded before the version changes, until the command ends
IN_PROGRESS = "in-progress"


@dataclass(frozen=True)
class Revision:
    """One change of a solution's version in a namespace."""

    revision: int
    time: str
    from_version: str | None
    to_version: str | None
    #: succeeded | applied | rolled-back | failed | removed | interrupted, or
    #: :data:`IN_PROGRESS` while the command that changes the version runs
    result: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "time": self.time,
            "from": self.from_version,
            "to": self.to_version,
            "result": self.result,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Revision:
        return cls(
            revision=int(data.get("revision", 0)),
            time=str(data.get("time", "")),
            from_version=data.get("from"),
            to_version=data.get("to"),
            result=str(data.get("result", "")),
            message=str(data.get("message", "")),
        )


async def read_history(kube: Kube, namespace: str) -> dict[str, list[Revision]]:
    cm = await request(
        kube,
        "GET",
        f"/api/v1/namespaces/{_q(namespace)}/configmaps/{HISTORY_CONFIGMAP}",
        action=f"reading ConfigMap {namespace}/{HISTORY_CONFIGMAP}",
        missing_ok=True,
    )
    return decode_history((cm or {}).get("data"))


def decode_history(data: Mapping[str, str] | None) -> dict[str, list[Revision]]:
    history: dict[str, list[Revision]] = {}
    for sol, text in (data or {}).items():
        try:
            items = json.loads(text)
        except ValueError:
            continue
        if isinstance(items, list):
            history[sol] = [Revision.from_json(i) for i in items if isinstance(i, dict)]
    return history


async def append_history(
    kube: Kube,
    namespace: str,
    solution: str,
    from_version: str | None,
    to_version: str | None,
    result: str,
    message: str = "",
    *,
    revision: int | None = None,
) -> Revision:
    """Record one revision (the last :data:`HISTORY_LIMIT` are kept per solution).

    With ``revision``, that revision (recorded :data:`IN_PROGRESS`) is completed in place.
    """
    for _ in range(5):
        path = f"/api/v1/namespaces/{_q(namespace)}/configmaps"
        cm = await request(
            kube,
            "GET",
            f"{path}/{HISTORY_CONFIGMAP}",
            action="reading the history",
            missing_ok=True,
        )
        history = decode_history((cm or {}).get("data"))
        entries = history.get(solution, [])
        number = revision if revision is not None else (entries[-1].revision + 1 if entries else 1)
        record = Revision(
            revision=number,
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            from_version=from_version,
            to_version=to_version,
            result=result,
            message=message,
        )
        kept = [e for e in entries if e.revision != number]
        entries = sorted([*kept, record], key=lambda e: e.revision)[-HISTORY_LIMIT:]
        data = dict((cm or {}).get("data") or {})
        data[solution] = json.dumps([e.to_json() for e in entries])
        body: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": HISTORY_CONFIGMAP,
                "namespace": namespace,
                "labels": dict(MANAGED_BY),
            },
            "data": data,
        }
        action = f"writing ConfigMap {namespace}/{HISTORY_CONFIGMAP}"
        try:
            if cm is None:
                await request(kube, "POST", path, action=action, body=body)
            else:
                body["metadata"]["resourceVersion"] = cm["metadata"]["resourceVersion"]
                await request(kube, "PUT", f"{path}/{HISTORY_CONFIGMAP}", action=action, body=body)
        except Conflict:
            continue  # someone wrote meanwhile: read again
        return record
    raise Conflict(f"writing ConfigMap {namespace}/{HISTORY_CONFIGMAP}: too many concurrent writes")


# -- deletion -------------------------------------------------------------------------------


async def delete_namespace(kube: Kube, name: str) -> bool:
    result = await request(
        kube,
        "DELETE",
        f"/api/v1/namespaces/{_q(name)}",
        action=f"deleting Namespace {name}",
        missing_ok=True,
    )
    return result is not None


async def wait_gone(
    kube: Kube,
    paths: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline for polling
    say: Callable[[str], None],
) -> list[str]:
    """Poll until every object at ``paths`` is gone; returns those still there at the deadline."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    pending = list(paths)
    said = -1
    while pending:
        remaining = []
        for path in pending:
            if await request(kube, "GET", path, action=f"reading {path}", missing_ok=True):
                remaining.append(path)
        pending = remaining
        if not pending or time.monotonic() >= deadline:
            break
        elapsed = int(time.monotonic() - start)
        if elapsed // 5 != said:
            said = elapsed // 5
            say(f"waiting for {len(pending)} object(s) to terminate ({elapsed}s)")
        await asyncio.sleep(0.5)
    return pending


# -- CRDs and custom resources -----------------------------------------------------------


async def read_crd(kube: Kube, name: str) -> Obj | None:
    return await request(
        kube, "GET", f"{CRD_PATH}/{_q(name)}", action=f"reading CRD {name}", missing_ok=True
    )


def custom_collection(group: str, version: str, plural: str, namespace: str) -> str:
    return f"/apis/{group}/{version}/namespaces/{_q(namespace)}/{plural}"


async def list_custom(
    kube: Kube, group: str, version: str, plural: str, namespace: str
) -> list[Obj]:
    data = await request(
        kube,
        "GET",
        custom_collection(group, version, plural, namespace),
        action=f"listing {plural}.{group} in {namespace}",
        missing_ok=True,
    )
    return list((data or {}).get("items") or [])
