"""The reading verbs: ``env list``, ``env show`` (operators, UIs, history) and ``status``."""

from __future__ import annotations

from typing import Any

from metalk8s_solutions.api.versions import version_key
from metalk8s_solutions.cluster.apply import (
    ObjectKey,
    Rollout,
    get_object,
    rollout_status,
    wait_available,
)
from metalk8s_solutions.cluster.kube import Forbidden, Kube
from metalk8s_solutions.cluster.resources import read_environment_states, read_history, read_ingress
from metalk8s_solutions.cluster.state import read_records
from metalk8s_solutions.engine.adoption import deployed_by
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.desired import approved_solution, operator_name
from metalk8s_solutions.engine.environments.core import (
    Inventory,
    read_inventory,
    require_environment,
    session,
)
from metalk8s_solutions.engine.solution_ui import base_path, ingress_url, ui_name
from metalk8s_solutions.engine.state import Context

# -- list / show / status -----------------------------------------------------------------


async def list_environments(
    ctx: Context, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    async with session(ctx, connection) as kube:
        envs = await read_environment_states(kube)
    return [envs[name].to_json() for name in sorted(envs)]


async def show_environment(
    ctx: Context, name: str, *, connection: Kube | None = None
) -> dict[str, Any]:
    """The environment, each solution's operator (and UI) status, and the revision history."""
    inventory = await read_inventory(ctx)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, name)
        result = state.to_json()
        for ns, ns_state in sorted(state.namespaces.items()):
            entry = result["namespaces"][ns]
            entry["terminating"] = ns_state.terminating
            entry["clusterScopeAllowed"] = sorted(ns_state.cluster_scope)
            entry["privilegedRolesAllowed"] = sorted(
                {approved_solution(a) for a in ns_state.privileged}
            )
            entry["podSecurity"] = ns_state.pod_security
            entry["webhook"] = sorted(ns_state.webhook)
            # --allow-image exceptions, as recorded: <solution>=<image>
            entry["allowedImages"] = sorted(ns_state.allowed_images)
            history = await read_history(kube, ns)
            solutions: dict[str, Any] = {}
            for sol in sorted({*ns_state.config, *history}):
                status: str | None = None
                by: str | None = None
                if sol in ns_state.config:
                    key = ObjectKey("Deployment", ns, operator_name(sol))
                    live = await get_object(kube, key)
                    only = rollout_status(live) if live else Rollout(False, "not found")
                    status = ("Available: " if only.ready else "Not available: ") + only.message
                    by = deployed_by(live, sol)
                version = ns_state.config.get(sol)
                solutions[sol] = {
                    "version": version,
                    "operator": status,
                    "deployedBy": by,
                    "ui": await _ui_view(kube, inventory, name, ns, sol, version),
                    "history": [r.to_json() for r in history.get(sol, [])],
                }
            entry["solutions"] = solutions
    return result


async def _ui_view(
    kube: Kube, inventory: Inventory, env: str, ns: str, solution: str, version: str | None
) -> dict[str, Any] | None:
    """Where the solution's own UI is and whether it is up; None when this version has none.

    ``url`` is the Ingress's address when it is known (a host, or the controller's address),
    else None: the UI is then reached through ``solutions ui`` at ``path``.
    """
    manifest = inventory.manifest(solution, version) if version else None
    if manifest is None or manifest.ui is None:
        return None
    key = ObjectKey("Deployment", ns, ui_name(solution))
    rollout = (await wait_available(kube, [key], timeout=0, say=lambda _: None))[key]
    try:
        ingress = await read_ingress(kube, ns, ui_name(solution))
    except Forbidden:  # who may not read Ingresses still gets the route of 'solutions ui'
        ingress = None
    return {
        "path": base_path(env, ns, solution),
        "ingress": ingress is not None,
        "url": ingress_url(ingress) if ingress is not None else None,
        "status": ("Available: " if rollout.ready else "Not available: ") + rollout.message,
    }


async def status(ctx: Context, *, connection: Kube | None = None) -> dict[str, Any]:
    """The whole-state view: ``available``, ``config`` and ``environments`` (the brief's pillar)."""
    config = await ConfigStore(ctx.config_path).read_async()
    async with session(ctx, connection) as kube:
        records, _ = await read_records(kube)
        envs = await read_environment_states(kube)
    return {
        "available": {
            sol: [r.to_json() for r in sorted(versions, key=lambda r: version_key(r.version))]
            for sol, versions in sorted(records.items())
        },
        "config": {
            "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
            "kind": "SolutionsConfiguration",
            "archives": list(config.archives),
            "active": dict(config.active),
        },
        "environments": {name: envs[name].to_json() for name in sorted(envs)},
    }
