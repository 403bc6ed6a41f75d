"""Converge objects: plan (pure), then server-side apply, prune in dependency order, and wait.

The plan compares each desired object with the live one *in Python*: when every field we set is
already there with our value (our fields are a subset of the live object), nothing is sent.  So a
converge with nothing to do sends zero mutating requests — a server-side-apply dry run would
itself be a PATCH.  A live object that lost one of our values while its applied-hash annotation
says we already applied this exact content was changed by someone else: the plan reports it as
drift, and the apply (``force``) takes our fields back.

Order matters: what others depend on is applied first (ServiceAccount, roles, ConfigMaps, the
metrics Service), then the Deployment, then the monitoring objects that scrape it
(ServiceMonitor, PodMonitor, PrometheusRule) and the Ingress of a Solution UI; pruning goes the
other way (Ingress and monitoring objects, Deployment, bindings, roles, ConfigMaps and Services,
ServiceAccount), so an operator never runs without its permissions or configuration, nothing
scrapes what is gone and no Ingress routes to a removed UI.
"""

from __future__ import annotations

import asyncio
import difflib
import enum
import json
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from lightkube import ApiError
from lightkube.models.meta_v1 import Status

from metalk8s_solutions.api.monitoring import API_VERSION as MONITORING_API
from metalk8s_solutions.api.monitoring import KINDS as MONITORING_KINDS
from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Kube, describe
from metalk8s_solutions.errors import ClusterError, InvalidInput

#: cert-manager's API, for the operators' metrics certificates (MetalK8s PR 4813).
CERT_MANAGER_API = "cert-manager.io/v1"
CERT_MANAGER_KINDS = frozenset({"Issuer", "Certificate"})

#: The API server's own admission policies (CEL), for the images an environment may run.
ADMISSION_API = "admissionregistration.k8s.io/v1"

Obj = dict[str, Any]
#: A label selector: ``key=value``, or ``key in (a,b)`` for a tuple of values.
Selector = Mapping[str, str | tuple[str, ...]]
APPLIED_HASH = "solutions.metalk8s.scality.com/applied-hash"
RETRIES = 10


@dataclass(frozen=True)
class Kind:
    """An API resource we manage: where it lives and its place in the apply order."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    order: int  # apply ascending, prune descending

    def collection(self, namespace: str | None = None) -> str:
        group = (
            "/api/" + self.api_version
            if "/" not in self.api_version
            else "/apis/" + self.api_version
        )
        if self.namespaced:
            if namespace is None:
                raise ValueError(f"{self.kind} is namespaced")
            return f"{group}/namespaces/{namespace}/{self.plural}"
        return f"{group}/{self.plural}"


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("v1", "ServiceAccount", "serviceaccounts", True, 0),
        Kind("v1", "ConfigMap", "configmaps", True, 1),
        Kind("v1", "Secret", "secrets", True, 1),
        Kind("v1", "Service", "services", True, 2),
        Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False, 3),
        Kind("rbac.authorization.k8s.io/v1", "Role", "roles", True, 4),
        Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True, 5),
        Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False, 6),
        # Only imported images run (engine/admission.py): before the Deployments' pods.
        Kind(ADMISSION_API, "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False, 6),
        Kind(
            ADMISSION_API,
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            False,
            6,
        ),
        Kind("apps/v1", "Deployment", "deployments", True, 7),
        Kind("networking.k8s.io/v1", "Ingress", "ingresses", True, 8),
        # The Prometheus Operator's kinds: listed only when their CRDs are installed.
        Kind(MONITORING_API, "ServiceMonitor", "servicemonitors", True, 8),
        Kind(MONITORING_API, "PodMonitor", "podmonitors", True, 8),
        Kind(MONITORING_API, "PrometheusRule", "prometheusrules", True, 8),
        # cert-manager's, for the operators' metrics certificates: only when installed.
        Kind(CERT_MANAGER_API, "Issuer", "issuers", True, 1),
        Kind(CERT_MANAGER_API, "Certificate", "certificates", True, 2),
    )
}
#: Kinds that exist only when a CRD is installed (``list_managed`` skips them unless asked).
OPTIONAL_KINDS = frozenset({*MONITORING_KINDS, *CERT_MANAGER_KINDS})
#: Prune order, as the contract of the brief: monitoring objects (they scrape the operator),
#: Deployment, bindings, roles, ConfigMap and metrics Service, ServiceAccount.
PRUNE_ORDER = {
    "Ingress": 0,
    "ServiceMonitor": 0,
    "PodMonitor": 0,
    "PrometheusRule": 0,
    "Deployment": 1,
    "ClusterRoleBinding": 2,
    "ValidatingAdmissionPolicyBinding": 2,
    "RoleBinding": 3,
    "Role": 4,
    "ClusterRole": 5,
    "ValidatingAdmissionPolicy": 5,
    "ConfigMap": 6,
    "Service": 6,
    "Certificate": 6,
    "Issuer": 7,
    "Secret": 7,
    "ServiceAccount": 7,
}


@dataclass(frozen=True, order=True)
class ObjectKey:
    kind: str
    namespace: str  # "" for cluster-scoped
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @property
    def path(self) -> str:
        kind = KINDS[self.kind]
        name = urllib.parse.quote(self.name, safe="")
        return f"{kind.collection(self.namespace or None)}/{name}"


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return ObjectKey(str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


class Action(enum.StrEnum):
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    #: delete, then create: an object someone else made (e.g. MetalK8s), taken over whole
    REPLACE = "replace"


@dataclass(frozen=True)
class Change:
    """One step of a plan; ``drift`` marks a change someone else made to an object of ours."""

    action: Action
    key: ObjectKey
    desired: Obj | None = None
    live: Obj | None = None
    drift: bool = False
    note: str = ""  # why, when the action alone does not say (e.g. "made by MetalK8s")

    def diff(self) -> str:
        """A unified YAML diff of the fields we manage (empty for create and delete)."""
        if self.action is not Action.CHANGE or self.desired is None or self.live is None:
            return ""
        before = _dump(_redacted(_without_hash(project(self.live, self.desired))))
        after = _dump(_redacted(_without_hash(self.desired)))
        lines = difflib.unified_diff(
            before.splitlines(), after.splitlines(), "live", "desired", lineterm="", n=2
        )
        return "\n".join(lines)

    def summary(self) -> str:
        """The fields of a change, one line: ``spec.replicas, metadata.labels (3 fields)``."""
        if self.action is not Action.CHANGE or self.desired is None or self.live is None:
            return ""
        before = _without_hash(project(self.live, self.desired))
        paths = changed_fields(before, _without_hash(self.desired))
        if not paths:
            return ""
        names = list(dict.fromkeys(_field_name(p) for p in paths))
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        return f"{shown} ({len(paths)} field{'s' if len(paths) != 1 else ''})"

    def describe(self) -> str:
        if self.action is Action.CHANGE and self.drift:
            return "changed outside this tool (drift); restore our fields"
        return {
            Action.CREATE: "create",
            Action.CHANGE: "update",
            Action.DELETE: "delete (no longer desired)",
            Action.REPLACE: "replace (delete, then create)",
        }[self.action]


def _redacted(obj: Any) -> Any:
    """A Secret without its values (a diff is printed)."""
    if isinstance(obj, dict) and obj.get("kind") == "Secret" and isinstance(obj.get("data"), dict):
        return {**obj, "data": dict.fromkeys(obj["data"], "(redacted)")}
    return obj


def _without_hash(obj: Any) -> Any:
    """The object without our bookkeeping annotation (noise in a diff)."""
    if not isinstance(obj, dict):
        return obj
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**obj, "metadata": meta}


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)


# -- pure comparison ------------------------------------------------------------------------

#: Below these keys, a change is summarised by the key itself (``metadata.labels``).
_SUMMARISED = frozenset({"labels", "annotations"})


def changed_fields(before: Any, after: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the values that differ between ``before`` and ``after``.

    A key is named as is; a list item as ``[NAME]`` when it is a map with a ``name`` (a
    container, a port), else ``[INDEX]``. A list whose length changes is one change.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[tuple[str, ...]] = []
        for key in [*before, *(k for k in after if k not in before)]:
            found += changed_fields(before.get(key), after.get(key), (*path, str(key)))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            name = new.get("name") if isinstance(new, dict) else None
            item = f"[{name}]" if isinstance(name, str) else f"[{index}]"
            found += changed_fields(old, new, (*path, item))
        return found
    return [] if before == after else [path]


def _field_name(path: tuple[str, ...]) -> str:
    """``spec.template.spec.containers[operator].image``; labels and annotations as a whole."""
    for depth, key in enumerate(path):
        if key in _SUMMARISED:
            path = path[: depth + 1]
            break
    return ".".join(path).replace(".[", "[") or "(the whole object)"


def is_subset(want: Any, have: Any) -> bool:
    """True when every field of ``want`` is in ``have`` with the same value.

    Maps may hold more keys (defaults, other managers); lists must have the same length, item
    by item a subset (containers, env vars and rules are lists of maps).
    """
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and is_subset(v, have[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(is_subset(w, h) for w, h in zip(want, have, strict=True))
        )
    return bool(want == have)


def project(have: Any, want: Any) -> Any:
    """``have`` restricted to the fields ``want`` sets (the live side of a diff)."""
    if isinstance(want, dict) and isinstance(have, dict):
        return {k: project(have[k], v) for k, v in want.items() if k in have}
    if isinstance(want, list) and isinstance(have, list):
        return [project(h, want[i]) if i < len(want) else h for i, h in enumerate(have)]
    return have


def _hash(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH)
    return str(value) if value is not None else None


def plan(desired: Iterable[Obj], live: Iterable[Obj]) -> list[Change]:
    """Changes turning ``live`` (the objects we own, found by label) into ``desired``."""
    want = {key_of(o): o for o in desired}
    have = {key_of(o): o for o in live}
    changes: list[Change] = []
    for key, obj in want.items():
        current = have.get(key)
        if current is None:
            changes.append(Change(Action.CREATE, key, obj))
        elif not is_subset(obj, current):
            drift = _hash(current) == _hash(obj)
            changes.append(Change(Action.CHANGE, key, obj, current, drift=drift))
    for key, current in have.items():
        if key not in want:
            changes.append(Change(Action.DELETE, key, live=current))
    return order(changes)


def order(changes: Iterable[Change]) -> list[Change]:
    """Deletions first (monitoring, then Deployment), then creations and changes (Deployment and
    the monitoring objects last)."""
    deletes = sorted(
        (c for c in changes if c.action is Action.DELETE),
        key=lambda c: (PRUNE_ORDER.get(c.key.kind, 9), c.key),
    )
    applies = sorted(
        (c for c in changes if c.action is not Action.DELETE),
        key=lambda c: (KINDS[c.key.kind].order if c.key.kind in KINDS else 9, c.key),
    )
    return deletes + applies


# -- I/O ------------------------------------------------------------------------------------


def _check(response: Any, action: str, server: str) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or body.get("kind") != "Status":
        body = {"message": response.text[:300]}
    code = int(body.get("code") or response.status_code)
    if code in (400, 422):  # the object itself is wrong: the user's input, not the cluster
        raise InvalidInput(f"{action}: {body.get('message') or response.text[:300]}")
    status = Status(code=code, message=body.get("message"))
    raise describe(ApiError(status=status), action, server)


async def request(
    kube: Kube,
    method: str,
    path: str,
    *,
    action: str,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    content_type: str = "application/json",
    missing_ok: bool = False,
) -> Obj | None:
    """One raw API request; JSON in and out.  404 gives None when ``missing_ok``."""
    for attempt in range(RETRIES + 1):
        with kube.errors(action):
            response = await kube.http.request(
                method,
                path,
                params=dict(params or {}),
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": content_type} if body is not None else None,
            )
        # "Come back later" (throttling, a CRD's storage initializing): wait as told, retry.
        if response.status_code not in (429, 503) or attempt == RETRIES:
            break
        try:
            delay = float(response.headers.get("Retry-After", "1"))
        except ValueError:
            delay = 1.0
        await asyncio.sleep(min(max(delay, 0.2), 5.0))
    if missing_ok and response.status_code == 404:
        return None
    _check(response, action, kube.server)
    if not response.content:
        return {}
    data: Obj = response.json()
    return data


def _selector(labels: Selector) -> str:
    return ",".join(
        f"{k}={v}" if isinstance(v, str) else f"{k} in ({','.join(v)})"
        for k, v in sorted(labels.items())
    )


async def list_objects(
    kube: Kube, kind: Kind, labels: Selector, namespace: str | None = None
) -> list[Obj]:
    """Objects of ``kind`` carrying ``labels`` (in ``namespace`` when namespaced)."""
    data = await request(
        kube,
        "GET",
        kind.collection(namespace),
        action=f"listing {kind.plural}" + (f" in {namespace}" if namespace else ""),
        params={"labelSelector": _selector(labels)},
        missing_ok=True,
    )
    items: list[Obj] = list((data or {}).get("items") or [])
    for item in items:  # list items carry neither apiVersion nor kind
        item["apiVersion"], item["kind"] = kind.api_version, kind.kind
    return items


async def list_managed(
    kube: Kube,
    labels: Selector,
    namespaces: Sequence[str],
    *,
    optional: Collection[str] = (),
) -> list[Obj]:
    """Every object of a kind we manage, in ``namespaces`` and cluster-wide, with ``labels``.

    Of the :data:`OPTIONAL_KINDS` (served only when their CRD is installed), only those in
    ``optional`` are listed.
    """
    jobs = [
        list_objects(kube, kind, labels, ns)
        for kind in KINDS.values()
        if kind.kind not in OPTIONAL_KINDS or kind.kind in optional
        for ns in (namespaces if kind.namespaced else [None])
    ]
    results = await asyncio.gather(*jobs)
    return [obj for objs in results for obj in objs]


async def apply_object(kube: Kube, obj: Obj) -> Obj:
    """Server-side apply ``obj`` with our field manager, taking our fields back (force)."""
    key = key_of(obj)

    async def send() -> Obj | None:
        return await request(
            kube,
            "PATCH",
            key.path,
            action=f"applying {key}",
            body=obj,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    try:
        result = await send()
    except Exception as err:
        # A binding's roleRef cannot change: replace the binding.
        if not (key.kind.endswith("RoleBinding") and "roleRef" in str(err)):
            raise
        await delete_object(kube, key)
        result = await send()
    return result or {}


async def delete_object(kube: Kube, key: ObjectKey, *, propagation: str = "Background") -> bool:
    """Delete ``key`` (its dependents in the background); False when it was already gone."""
    result = await request(
        kube,
        "DELETE",
        key.path,
        action=f"deleting {key}",
        params={"propagationPolicy": propagation},
        missing_ok=True,
    )
    return result is not None


#: How long a replaced object may take to go (a Deployment: its pods terminating).
REPLACE_TIMEOUT = 120.0


async def delete_and_wait(
    kube: Kube,
    key: ObjectKey,
    *,
    timeout: float = REPLACE_TIMEOUT,  # noqa: ASYNC109 - a polling deadline
    interval: float = 0.25,
) -> None:
    """Delete ``key`` with its dependents first (foreground) and wait until it is gone, so that
    an object of the same name can be created (for a Deployment: no old pod left running)."""
    await delete_object(kube, key, propagation="Foreground")
    deadline = time.monotonic() + timeout
    while await get_object(kube, key) is not None:
        if time.monotonic() >= deadline:
            raise ClusterError(
                f"{key} is still being deleted after {timeout:.0f}s, so it cannot be replaced",
                hint="see what holds it (finalizers, pods that do not terminate), then run the "
                "command again: it resumes where it stopped",
            )
        await asyncio.sleep(interval)


async def get_object(kube: Kube, key: ObjectKey) -> Obj | None:
    return await request(kube, "GET", key.path, action=f"reading {key}", missing_ok=True)


#: Apply waves: everything in a wave is independent, each wave needs the ones before.
APPLY_WAVES = (
    {
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Service",
        "ClusterRole",
        "Role",
        "ValidatingAdmissionPolicy",
        *CERT_MANAGER_KINDS,
    },
    {"RoleBinding", "ClusterRoleBinding", "ValidatingAdmissionPolicyBinding"},
    {"Deployment"},
    {*MONITORING_KINDS, "Ingress"},
)
PRUNE_WAVES = (
    {*MONITORING_KINDS, "Ingress"},
    {"Deployment"},
    {"ClusterRoleBinding", "RoleBinding", "ValidatingAdmissionPolicyBinding"},
    {"Role", "ClusterRole", "ValidatingAdmissionPolicy"},
    {"ConfigMap", "Secret", "Service", *CERT_MANAGER_KINDS},
    {"ServiceAccount"},
)


async def execute(kube: Kube, changes: Sequence[Change], say: Callable[[str], None]) -> None:
    """Send ``changes``: deletions wave by wave (Deployment first), then applies (Deployment
    last); the requests of one wave go out together."""

    async def drop(change: Change) -> None:
        if change.action is Action.REPLACE:
            await delete_and_wait(kube, change.key)
            say(f"deleted {change.key} ({change.note or 'to be replaced'})")
        else:
            await delete_object(kube, change.key)
            say(f"deleted {change.key}")

    async def one(change: Change) -> None:
        if change.action is Action.DELETE:
            await drop(change)
        else:
            assert change.desired is not None  # noqa: S101 - set for create and change
            await apply_object(kube, change.desired)
            done = {Action.CREATE: "created", Action.REPLACE: "created"}.get(
                change.action, "updated"
            )
            say(f"{done} {change.key}")

    # A replaced object goes with the deletions (Deployment first) and comes back with the
    # applies (Deployment last): never an operator running without its permissions.
    deletes = [c for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
    applies = [c for c in changes if c.action is not Action.DELETE]
    for wave in PRUNE_WAVES:
        await asyncio.gather(*(drop(c) for c in deletes if c.key.kind in wave))
    for wave in APPLY_WAVES:
        await asyncio.gather(*(one(c) for c in applies if c.key.kind in wave))


# -- readiness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """Where a Deployment's rollout stands."""

    ready: bool
    message: str


def rollout_status(deployment: Mapping[str, Any]) -> Rollout:
    """Like ``kubectl rollout status``: the new template's pods are all updated and available."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 1)):
        return Rollout(False, "waiting for the controller to see the new spec")
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return Rollout(False, f"rollout stalled: {condition.get('message', '')}")
    if updated < wanted:
        return Rollout(False, f"{updated}/{wanted} replicas updated")
    if total > updated:
        return Rollout(False, f"{total - updated} old replicas still running")
    if available < wanted:
        return Rollout(False, f"{available}/{wanted} replicas available")
    return Rollout(True, f"{available}/{wanted} replicas available")


async def wait_available(
    kube: Kube,
    keys: Sequence[ObjectKey],
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline for polling, not for one call
    say: Callable[[str], None],
    interval: float = 0.5,
) -> dict[ObjectKey, Rollout]:
    """Poll the Deployments ``keys`` until every rollout completes or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    last: dict[ObjectKey, str] = {}
    state: dict[ObjectKey, Rollout] = {}
    pending = list(keys)
    while True:
        for key in list(pending):
            obj = await get_object(kube, key)
            state[key] = rollout_status(obj) if obj else Rollout(False, "not found")
            if state[key].message != last.get(key):
                last[key] = state[key].message
                say(f"{key}: {state[key].message} ({time.monotonic() - start:.0f}s)")
            if state[key].ready:
                pending.remove(key)
        if not pending or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(interval)
