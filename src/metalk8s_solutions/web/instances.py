"""Application instances: the custom resources of a solution in an environment.

The kinds and their schemas come from the archive of the version deployed in the environment
(the operator there understands exactly those), so listing them needs no right on CRDs.  Reads
and writes go to the API server with the user's token; the API server validates them against
the live CRD and RBAC decides.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube, connect
from metalk8s_solutions.cluster.resources import custom_collection, read_environment_states
from metalk8s_solutions.engine.crds import unknown_fields
from metalk8s_solutions.engine.desired import check_dns_label, check_env_name
from metalk8s_solutions.engine.environments import load_version_content, read_inventory
from metalk8s_solutions.engine.instances import Sample, read_samples
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.engine.wording import follow_pointer, readiness
from metalk8s_solutions.errors import InvalidInput, Missing, Refused
from metalk8s_solutions.web.forms import FormSpec, spec_form

_FILTER = re.compile(r"^\[\?\(@\.(\w+)==\"([^\"]*)\"\)\]$")


@dataclass(frozen=True)
class KindInfo:
    """One kind of a solution, at the API version the UI reads and writes."""

    kind: str
    plural: str
    group: str
    version: str
    schema: Mapping[str, Any]
    columns: tuple[Mapping[str, Any], ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def form(self) -> FormSpec:
        return spec_form(self.schema)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "plural": self.plural,
            "apiVersion": self.api_version,
            "schema": dict(self.schema),
        }


def kinds_of_crds(crds: Any) -> list[KindInfo]:
    """The kinds defined by CRD documents, each at its storage (else first served) version."""
    kinds: list[KindInfo] = []
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("scope", "Namespaced") != "Namespaced":
            continue
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        chosen = next((v for v in versions if v.get("storage")), versions[0] if versions else None)
        if chosen is None:
            continue
        names = spec.get("names") or {}
        kinds.append(
            KindInfo(
                kind=str(names.get("kind", "")),
                plural=str(names.get("plural", "")),
                group=str(spec.get("group", "")),
                version=str(chosen.get("name", "")),
                schema=(chosen.get("schema") or {}).get("openAPIV3Schema") or {},
                columns=tuple(
                    c for c in chosen.get("additionalPrinterColumns") or [] if not c.get("priority")
                ),
            )
        )
    return sorted(kinds, key=lambda k: k.kind)


def json_path(obj: Any, path: str) -> Any:
    """The subset of kubectl's JSONPath printer columns use: ``.a.b`` and ``[?(@.k=="v")]``."""
    current = obj
    for part in re.findall(r"\[[^\]]*\]|[^.\[]+", path.lstrip(".")):
        match = _FILTER.match(part)
        if match:
            key, value = match.groups()
            current = next(
                (i for i in current or [] if isinstance(i, Mapping) and str(i.get(key)) == value),
                None,
            )
        elif isinstance(current, Mapping):
            current = current.get(part)
        else:
            return None
        if current is None:
            return None
    return current


def instance_status(obj: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """Ready or not, and why, from the conventional ``Ready`` condition (engine.wording)."""
    found = readiness(name, obj)
    reason = found.reason or ("Unknown" if found.status in ("", "Unknown") else "")
    return {
        "ready": found.ready,
        "condition": found.status,  # "True", "False", "Unknown", "" (nothing reported)
        "reason": reason,
        "message": found.message or ("" if found.status else "no readiness reported"),
        "why": found.why(),
    }


@dataclass(frozen=True)
class Deployed:
    env: str
    solution: str
    version: str
    namespaces: tuple[str, ...]
    kinds: tuple[KindInfo, ...]
    archive: str = ""  # the archive of ``version`` (its samples are read from it)
    pin: Pin | None = None

    def kind(self, name: str) -> KindInfo:
        for k in self.kinds:
            if name in (k.kind, k.plural):
                return k
        known = ", ".join(k.kind for k in self.kinds) or "none"
        raise InvalidInput(f"{self.solution} has no kind {name} (its kinds: {known})")

    def namespace(self, name: str) -> str:
        if name not in self.namespaces:
            raise InvalidInput(
                f"{name} is not a namespace of environment {self.env} running {self.solution} "
                f"(those are: {', '.join(self.namespaces)})"
            )
        return name


async def deployed(ctx: Context, kube: Kube, env: str, solution: str) -> Deployed:
    """Where ``solution`` runs in ``env`` and the kinds of that version."""
    check_env_name(env)
    states = await read_environment_states(kube, env)
    if env not in states:
        raise Missing(f"environment {env} does not exist")
    placed = {
        ns: s.config[solution] for ns, s in states[env].namespaces.items() if solution in s.config
    }
    if not placed:
        raise Refused(
            f"{solution} is not deployed in environment {env}",
            hint="add it from the environment page first",
        )
    version = _highest(placed.values())
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(solution, version)
    content = await asyncio.to_thread(load_version_content, Path(archive), inventory.pin(archive))
    return Deployed(
        env,
        solution,
        version,
        tuple(sorted(placed)),
        tuple(kinds_of_crds(content.crds)),
        archive,
        inventory.pin(archive),
    )


async def samples_of(where: Deployed, kind: str | None = None) -> list[Sample]:
    """The sample instances (``*_cr.yaml``) of the deployed version, of its kinds (or ``kind``)."""
    if not where.archive:
        return []
    found = await asyncio.to_thread(read_samples, Path(where.archive), where.pin)
    kinds = {k.kind for k in where.kinds} if kind is None else {kind}
    return [s for s in found if s.kind in kinds]


def _highest(versions: Iterable[str]) -> str:
    from metalk8s_solutions.api.versions import latest  # noqa: PLC0415

    return latest(versions)


def _path(kind: KindInfo, namespace: str, name: str | None = None) -> str:
    base = custom_collection(kind.group, kind.version, kind.plural, namespace)
    return base + (f"/{urllib.parse.quote(name, safe='')}" if name else "")


async def list_instances(ctx: Context, env: str, solution: str) -> dict[str, Any]:
    """Every instance of every kind of ``solution`` in ``env``, with its status and columns."""
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        rows: list[dict[str, Any]] = []
        for kind in where.kinds:
            for ns in where.namespaces:
                data = await request(
                    kube,
                    "GET",
                    _path(kind, ns),
                    action=f"listing {kind.plural} in {ns}",
                    missing_ok=True,
                )
                for obj in (data or {}).get("items") or []:
                    rows.append(_row(kind, obj))
    return {
        "env": env,
        "solution": solution,
        "version": where.version,
        "namespaces": list(where.namespaces),
        "kinds": [
            {"kind": k.kind, "apiVersion": k.api_version, "columns": [c["name"] for c in k.columns]}
            for k in where.kinds
        ],
        "instances": _with_pointers(rows, where),
        "samples": [{"kind": s.kind, "name": s.name} for s in await samples_of(where)],
    }


def _row(kind: KindInfo, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "kind": kind.kind,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "created": meta.get("creationTimestamp"),
        "deleting": bool(meta.get("deletionTimestamp")),
        "status": instance_status(obj, f"{kind.kind} {meta.get('name')}"),
        "columns": {
            str(c["name"]): json_path(obj, str(c.get("jsonPath", ""))) for c in kind.columns
        },
        "spec": obj.get("spec") or {},
    }


def _with_pointers(rows: list[dict[str, Any]], where: Deployed) -> list[dict[str, Any]]:
    schemas = {k.kind: k.schema for k in where.kinds}
    return [
        {**r, "follow": follow_pointer(r["spec"], where.version, schemas.get(r["kind"]))}
        for r in rows
    ]


async def get_instance(
    ctx: Context, env: str, solution: str, kind: str, namespace: str, name: str
) -> tuple[KindInfo, dict[str, Any]]:
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        obj = await request(
            kube,
            "GET",
            _path(info, where.namespace(namespace), name),
            action=f"reading {info.kind} {namespace}/{name}",
        )
    return info, obj or {}


async def kind_info(ctx: Context, env: str, solution: str, kind: str) -> tuple[Deployed, KindInfo]:
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
    return where, where.kind(kind)


def _clean(body: Mapping[str, Any], info: KindInfo, namespace: str, name: str) -> dict[str, Any]:
    obj = dict(body)
    obj["apiVersion"] = info.api_version
    obj["kind"] = info.kind
    meta = dict(obj.get("metadata") or {})
    meta["name"], meta["namespace"] = name, namespace
    for key in ("managedFields", "creationTimestamp", "uid", "generation", "selfLink"):
        meta.pop(key, None)
    obj["metadata"] = meta
    obj.pop("status", None)
    return obj


async def save_instance(
    ctx: Context,
    env: str,
    solution: str,
    kind: str,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    *,
    create: bool,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Create or replace an instance; the API server validates it against the live CRD."""
    check_dns_label(name, "instance name") if len(name) <= 63 else None
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        ns = where.namespace(namespace)
        obj = _clean(body, info, ns, name)
        unknown = unknown_fields(obj, info.schema)
        if unknown:
            raise InvalidInput(
                f"{info.kind} {name} does not match the {info.api_version} schema: "
                + "; ".join(unknown[:10]),
                hint="nothing was sent; fix the field names",
            )
        # Strict: the API server refuses undeclared fields instead of dropping them silently.
        params = {"fieldValidation": "Strict", **({"dryRun": "All"} if dry_run else {})}
        if create:
            obj["metadata"].pop("resourceVersion", None)
            result = await request(
                kube,
                "POST",
                _path(info, ns),
                body=obj,
                params=params,
                action=f"creating {info.kind} {ns}/{name}",
            )
        else:
            if not obj["metadata"].get("resourceVersion"):
                current = await request(
                    kube, "GET", _path(info, ns, name), action=f"reading {info.kind} {ns}/{name}"
                )
                meta = (current or {}).get("metadata") or {}
                obj["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            result = await request(
                kube,
                "PUT",
                _path(info, ns, name),
                body=obj,
                params=params,
                action=f"updating {info.kind} {ns}/{name}",
            )
    return result or {}


async def delete_instance(
    ctx: Context, env: str, solution: str, kind: str, namespace: str, name: str
) -> None:
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        await request(
            kube,
            "DELETE",
            _path(info, where.namespace(namespace), name),
            action=f"deleting {info.kind} {namespace}/{name}",
        )


# -- one instance in detail: its pods, recent events, its operator's log -------------------

LOG_LINES = 50
EVENTS = 20


async def _items(kube: Kube, path: str, action: str, **params: str) -> list[dict[str, Any]]:
    data = await request(kube, "GET", path, action=action, params=params, missing_ok=True)
    return list((data or {}).get("items") or [])


def _owner_uids(obj: Mapping[str, Any]) -> set[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return {str(r.get("uid")) for r in refs}


def owned_pods(
    uid: str, owners: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The pods whose chain of owners (ReplicaSet, Deployment, StatefulSet…) reaches ``uid``."""
    parent: dict[str, set[str]] = {}
    for obj in owners:
        meta = obj.get("metadata") or {}
        parent[str(meta.get("uid"))] = {
            str(o.get("uid")) for o in meta.get("ownerReferences") or []
        }

    def reaches(uids: set[str], depth: int = 0) -> bool:
        if uid in uids:
            return True
        if depth > 5:
            return False
        return any(reaches(parent.get(u, set()), depth + 1) for u in uids)

    return [
        p
        for p in pods
        if reaches(
            {str(o.get("uid")) for o in (p.get("metadata") or {}).get("ownerReferences") or []}
        )
    ]


def pod_row(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    ready = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
    )
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    return {
        "name": meta.get("name"),
        "phase": status.get("phase") or "Pending",
        "ready": ready == "True",
        "restarts": restarts,
        "node": (pod.get("spec") or {}).get("nodeName") or "",
        "created": meta.get("creationTimestamp"),
    }


def event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    involved = event.get("involvedObject") or {}
    return {
        "time": event.get("lastTimestamp") or event.get("eventTime") or "",
        "type": event.get("type") or "",
        "reason": event.get("reason") or "",
        "object": f"{involved.get('kind', '')} {involved.get('name', '')}".strip(),
        "message": event.get("message") or "",
        "count": event.get("count") or 1,
    }


async def operator_log(kube: Kube, namespace: str, solution: str) -> dict[str, Any]:
    """The last lines of the operator's log, or why there are none (never an error)."""
    pods = await _items(
        kube,
        f"/api/v1/namespaces/{namespace}/pods",
        f"listing the operator pods of {solution}",
        labelSelector=f"app.kubernetes.io/part-of={solution},app.kubernetes.io/component=operator",
    )
    if not pods:
        return {"pod": None, "lines": [], "why": "no log available: no operator pod exists"}
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        return {
            "pod": pods[0]["metadata"]["name"],
            "lines": [],
            "why": "no log available: the operator pod is not running",
        }
    name = str(running[0]["metadata"]["name"])
    path = f"/api/v1/namespaces/{namespace}/pods/{urllib.parse.quote(name, safe='')}/log"
    try:
        response = await kube.http.get(path, params={"tailLines": str(LOG_LINES)})
    except Exception:
        response = None
    if response is None or response.status_code != 200:
        return {
            "pod": name,
            "lines": [],
            "why": "no log available: the operator pod is not running a process its node can "
            "show (on a local cluster with fake nodes, no container ever runs)",
        }
    lines = response.text.splitlines()[-LOG_LINES:]
    return {"pod": name, "lines": lines, "why": "" if lines else "the operator has logged nothing"}


async def instance_details(
    ctx: Context, env: str, solution: str, kind: str, namespace: str, name: str
) -> dict[str, Any]:
    """One instance: its readiness, pods, recent events, its operator's log, and whether its
    ``spec.version`` should follow the deployed version."""
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        ns = where.namespace(namespace)
        obj = await request(
            kube, "GET", _path(info, ns, name), action=f"reading {info.kind} {ns}/{name}"
        )
        obj = obj or {}
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        base = f"/apis/apps/v1/namespaces/{ns}"
        owners: list[dict[str, Any]] = []
        for plural in ("deployments", "statefulsets", "replicasets", "daemonsets"):
            owners += await _items(kube, f"{base}/{plural}", f"listing {plural} in {ns}")
        pods = owned_pods(
            uid,
            owners,
            await _items(kube, f"/api/v1/namespaces/{ns}/pods", f"listing pods in {ns}"),
        )
        names = {str(name), *(str(p["metadata"]["name"]) for p in pods)}
        events = [
            e
            for e in await _items(
                kube, f"/api/v1/namespaces/{ns}/events", f"listing events in {ns}"
            )
            if (e.get("involvedObject") or {}).get("uid") == uid
            or (e.get("involvedObject") or {}).get("name") in names
        ]
        events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        log = await operator_log(kube, ns, solution)
    row = _row(info, obj)
    return {
        "env": env,
        "solution": solution,
        "version": where.version,
        "instance": row,
        "follow": follow_pointer(row["spec"], where.version, info.schema),
        "pods": [pod_row(p) for p in pods],
        "events": [event_row(e) for e in events[-EVENTS:]],
        "log": log,
    }
