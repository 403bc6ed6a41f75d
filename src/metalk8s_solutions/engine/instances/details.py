"""One instance in detail, for its administrator: readiness, pods, recent events, operator log.

The pods are those whose chain of owners reaches the instance; the events those about the
instance or its pods; the log the last lines of the solution's running operator pod (or why
there are none: never an error).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.engine.environments import session
from metalk8s_solutions.engine.instances.kinds import instance_row
from metalk8s_solutions.engine.instances.scope import InstanceRef, locate
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.engine.wording import follow_pointer

LOG_LINES = 50
EVENTS = 20


async def _items(kube: Kube, path: str, action: str, **params: str) -> list[dict[str, Any]]:
    data = await request(kube, "GET", path, action=action, params=params, missing_ok=True)
    return list((data or {}).get("items") or [])


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
    ctx: Context, ref: InstanceRef, *, connection: Kube | None = None
) -> dict[str, Any]:
    """One instance: its readiness, pods, recent events, its operator's log, and whether its
    ``spec.version`` should follow the deployed version."""
    async with session(ctx, connection) as kube:
        found = await locate(ctx, kube, ref)
        where, info, ns, name = found.scope, found.kind, found.namespace, found.name
        obj = await request(kube, "GET", found.path, action=found.action("reading")) or {}
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
        log = await operator_log(kube, ns, ref.solution)
    row = instance_row(info, obj)
    return {
        "env": ref.env,
        "solution": ref.solution,
        "version": where.version,
        "instance": row,
        "follow": follow_pointer(row["spec"], where.version, info.schema),
        "pods": [pod_row(p) for p in pods],
        "events": [event_row(e) for e in events[-EVENTS:]],
        "log": log,
    }
