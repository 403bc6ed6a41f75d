"""Reading instances: the CLI's listings and the web's views, from the same scope and kinds.

``instance list|kinds|samples`` answer :func:`list_instances`, :func:`list_kinds` and
:func:`list_samples`; the web's pages and JSON API render :func:`instances_view`,
:func:`kinds_view`, :func:`get_instance` (and :mod:`.details`), each one function whose answer
both the page and the API show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.engine.environments import session
from metalk8s_solutions.engine.instances.kinds import CustomKind, instance_row, instance_summary
from metalk8s_solutions.engine.instances.scope import (
    InstanceRef,
    Scope,
    deployed,
    locate,
    resolve_scope,
    scope_samples,
)
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.engine.wording import follow_pointer

# -- the CLI's listings (one namespace, the kinds the live CRDs serve) -----------------------


@dataclass(frozen=True)
class InstanceQuery:
    env: str
    solution: str
    namespace: str | None = None


async def list_instances(
    ctx: Context, query: InstanceQuery, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """Every custom resource of the solution in its environment namespace, with its status."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, query.env, query.solution, query.namespace)
        result: list[dict[str, Any]] = []
        for kind in scope.kinds:
            data = await request(kube, "GET", scope.path(kind), action=f"listing {kind.plural}")
            for item in (data or {}).get("items") or []:
                result.append(instance_summary(kind, item))
    return result


async def list_samples(
    ctx: Context, query: InstanceQuery, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """The sample custom resources the deployed version ships (templates for new instances)."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, query.env, query.solution, query.namespace)
    samples = await scope_samples(scope)
    return [{**s.to_dict(), "namespace": scope.namespace} for s in samples]


async def list_kinds(
    ctx: Context, query: InstanceQuery, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """The kinds of the solution, with the top-level fields of their spec (for forms)."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, query.env, query.solution, query.namespace)
    return [
        {
            "kind": k.kind,
            "apiVersion": k.api_version,
            "plural": k.plural,
            "namespace": scope.namespace,
            "schema": dict(k.schema),
        }
        for k in scope.kinds
    ]


# -- the web's views (every namespace running the solution, kinds from its archive) ----------


async def solution_scope(
    ctx: Context, env: str, solution: str, *, connection: Kube | None = None
) -> Scope:
    """Where ``solution`` runs in ``env`` and its kinds, as the web shows them."""
    async with session(ctx, connection) as kube:
        return await deployed(ctx, kube, env, solution)


async def kind_info(
    ctx: Context, env: str, solution: str, kind: str, *, connection: Kube | None = None
) -> tuple[Scope, CustomKind]:
    """The scope of ``solution`` in ``env`` and its kind called ``kind``."""
    where = await solution_scope(ctx, env, solution, connection=connection)
    return where, where.kind(kind)


async def kinds_view(
    ctx: Context, env: str, solution: str, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """The kinds of the deployed version, with their OpenAPI schema."""
    where = await solution_scope(ctx, env, solution, connection=connection)
    return [k.to_json() for k in where.kinds]


async def instances_view(
    ctx: Context, env: str, solution: str, *, connection: Kube | None = None
) -> dict[str, Any]:
    """Every instance of every kind of ``solution`` in ``env``, with its status and columns,
    whether its ``spec.version`` should follow the deployed version, and the samples."""
    async with session(ctx, connection) as kube:
        where = await deployed(ctx, kube, env, solution)
        rows: list[dict[str, Any]] = []
        for kind in where.kinds:
            for ns in where.namespaces:
                data = await request(
                    kube,
                    "GET",
                    kind.path(ns),
                    action=f"listing {kind.plural} in {ns}",
                    missing_ok=True,
                )
                for obj in (data or {}).get("items") or []:
                    rows.append(instance_row(kind, obj))
    schemas = {k.kind: k.schema for k in where.kinds}
    return {
        "env": env,
        "solution": solution,
        "version": where.version,
        "namespaces": list(where.namespaces),
        "kinds": [
            {
                "kind": k.kind,
                "apiVersion": k.api_version,
                "columns": [c["name"] for c in k.shown_columns],
            }
            for k in where.kinds
        ],
        "instances": [
            {**r, "follow": follow_pointer(r["spec"], where.version, schemas.get(r["kind"]))}
            for r in rows
        ],
        "samples": [{"kind": s.kind, "name": s.name} for s in await scope_samples(where)],
    }


async def get_instance(
    ctx: Context, ref: InstanceRef, *, connection: Kube | None = None
) -> tuple[CustomKind, dict[str, Any]]:
    """One instance, as the API server has it, and its kind."""
    async with session(ctx, connection) as kube:
        found = await locate(ctx, kube, ref)
        obj = await request(kube, "GET", found.path, action=found.action("reading"))
    return found.kind, obj or {}
