"""Where a solution runs in an environment, and the kinds of the version deployed there.

One :class:`Scope` for the CLI and the web, found two ways: :func:`resolve_scope` (the CLI: one
namespace, the kinds as the live CRDs serve them, and instances kept after
``env delete-solution``) and :func:`deployed` (the web: every namespace of the environment that
runs the solution, the kinds from the archive, so that a user needs no right on CRDs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import read_crd
from metalk8s_solutions.engine.environments import (
    load_version_content,
    read_inventory,
    require_environment,
)
from metalk8s_solutions.engine.instances.kinds import (
    CustomKind,
    find_kind,
    kind_of_crd,
    kinds_of_crds,
)
from metalk8s_solutions.engine.instances.samples import Sample, read_samples
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.errors import InvalidInput, Refused, command


@dataclass(frozen=True)
class Scope:
    """A solution in an environment: its namespace(s), version and kinds."""

    env: str
    solution: str
    namespaces: tuple[str, ...]
    version: str
    kinds: tuple[CustomKind, ...]
    deployed: bool = True  # False: instances kept after 'env delete-solution' (no operator)
    archive: str = ""  # the archive of ``version`` (its samples are read from it)
    pin: Pin | None = None

    @property
    def namespace(self) -> str:
        """The (first) namespace the solution runs in."""
        return self.namespaces[0]

    def require_deployed(self) -> None:
        """Refuse to create or change an instance that no operator would reconcile."""
        if not self.deployed:
            raise Refused(
                f"{self.solution} is not deployed in environment {self.env} (its instances "
                f"in {self.namespace} were kept, without an operator: they can be listed "
                "and deleted only)",
                hint="deploy it again: "
                + command("env", "add-solution", self.env, self.solution, "<version>")
                + "; or delete them: "
                + command("env", "delete-solution", self.env, self.solution, "--delete-data"),
            )

    def kind(self, text: str) -> CustomKind:
        return find_kind(self.kinds, text, self.env, self.solution)

    def check_namespace(self, name: str) -> str:
        """``name`` if the solution runs there, else a refusal naming where it does."""
        if name not in self.namespaces:
            raise InvalidInput(
                f"{name} is not a namespace of environment {self.env} running {self.solution} "
                f"(those are: {', '.join(self.namespaces)})"
            )
        return name

    def path(self, kind: CustomKind, name: str | None = None) -> str:
        return kind.path(self.namespace, name)


async def resolve_scope(
    ctx: Context, kube: Kube, env: str, solution: str, namespace: str | None
) -> Scope:
    """Where ``solution`` runs in ``env`` (one namespace) and the kinds its live CRDs serve."""
    state = await require_environment(kube, env)
    places = [ns for ns, s in state.namespaces.items() if solution in s.config]
    if not places or (namespace is not None and namespace not in places):
        # Instances kept by 'env delete-solution' (without --delete-data) stay reachable.
        where = sorted(state.namespaces) if namespace is None else [namespace]
        kept = await _kept_scope(
            ctx, kube, env, solution, [n for n in where if n in state.namespaces]
        )
        if kept is not None:
            return kept
    if namespace is not None:
        if namespace not in places:
            raise Refused(
                f"{solution} is not deployed in {env}/{namespace} (it is in: "
                f"{', '.join(sorted(places)) or 'no namespace'})"
            )
        places = [namespace]
    if not places:
        inventory = await read_inventory(ctx, kube)
        known = {s for ns in state.namespaces.values() for s in ns.config}
        known |= {i.manifest.name for i in inventory.imported if i.manifest is not None}
        version = inventory.active.get(solution, "<version>")
        raise Refused(
            f"{solution} is not deployed in environment {env}" + did_you_mean(solution, known),
            hint="deploy it first: " + command("env", "add-solution", env, solution, version),
        )
    if len(places) > 1:
        raise InvalidInput(
            f"{solution} runs in several namespaces of {env} ({', '.join(sorted(places))})",
            hint="choose one with -N NAMESPACE",
        )
    ns = places[0]
    version = state.namespaces[ns].config[solution]
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(solution, version)
    content = await asyncio.to_thread(load_version_content, Path(archive), inventory.pin(archive))
    kinds: list[CustomKind] = []
    for crd in content.crds:
        name = str((crd.get("metadata") or {}).get("name", ""))
        live = await read_crd(kube, name)
        if live is None:
            raise Refused(
                f"CRD {name} of {solution} is not in the cluster",
                hint=f"activate {solution} first: '{command('activate', solution, version)}'",
            )
        found = kind_of_crd(crd, live)
        if found is not None:
            kinds.append(found)
    return Scope(
        env, solution, (ns,), version, tuple(kinds), archive=archive, pin=inventory.pin(archive)
    )


async def _kept_scope(
    ctx: Context, kube: Kube, env: str, solution: str, wanted: Sequence[str]
) -> Scope | None:
    """Where instances of a solution that is no longer deployed were kept, if anywhere."""
    inventory = await read_inventory(ctx, kube)
    contents = await inventory.contents([solution])
    crds = {
        str((crd.get("metadata") or {}).get("name", "")): crd
        for _, content in sorted(contents.items())
        for crd in content.crds
    }
    kinds: list[CustomKind] = []
    places: set[str] = set()
    for name, crd in sorted(crds.items()):
        live = await read_crd(kube, name)
        kind = kind_of_crd(crd, live) if live is not None else None
        if kind is None:
            continue
        kinds.append(kind)
        for ns in wanted:
            data = await request(kube, "GET", kind.path(ns), action=f"listing {kind.plural}")
            if (data or {}).get("items"):
                places.add(ns)
    if not places:
        return None
    if len(places) > 1:
        raise InvalidInput(
            f"instances of {solution} were kept in several namespaces of {env} "
            f"({', '.join(sorted(places))})",
            hint="choose one with -N NAMESPACE",
        )
    return Scope(env, solution, (places.pop(),), "", tuple(kinds), deployed=False)


async def deployed(ctx: Context, kube: Kube, env: str, solution: str) -> Scope:
    """Every namespace of ``env`` running ``solution``, and the kinds of the highest version
    deployed there, read from its archive (no right on CRDs needed)."""
    state = await require_environment(kube, env)
    placed = {ns: s.config[solution] for ns, s in state.namespaces.items() if solution in s.config}
    if not placed:
        raise Refused(
            f"{solution} is not deployed in environment {env}",
            hint="add it from the environment page first",
        )
    version = _highest(placed.values())
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(solution, version)
    content = await asyncio.to_thread(load_version_content, Path(archive), inventory.pin(archive))
    return Scope(
        env,
        solution,
        tuple(sorted(placed)),
        version,
        tuple(kinds_of_crds(content.crds)),
        archive=archive,
        pin=inventory.pin(archive),
    )


def _highest(versions: Iterable[str]) -> str:
    from metalk8s_solutions.api.versions import latest  # noqa: PLC0415

    return latest(versions)


async def scope_samples(scope: Scope, kind: str | None = None) -> list[Sample]:
    """The samples of the version deployed in ``scope``, of its kinds (or of ``kind``)."""
    scope.require_deployed()
    if not scope.archive:
        return []
    found = await asyncio.to_thread(read_samples, Path(scope.archive), scope.pin)
    if kind is not None:
        return [s for s in found if s.kind == kind]
    return [s for s in found if any(k.matches(s.kind) for k in scope.kinds)]


@dataclass(frozen=True)
class InstanceRef:
    """One instance as the web names it (``…/{env}/solutions/{solution}/instances/{kind}/
    {namespace}/{name}``); :func:`locate` checks it."""

    env: str
    solution: str
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Located:
    """An :class:`InstanceRef` checked: its solution's scope, its kind, its API path."""

    scope: Scope
    kind: CustomKind
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return self.kind.path(self.namespace, self.name)

    def action(self, verb: str) -> str:
        """``reading Kind namespace/name``: what a request on it does, for its error."""
        return f"{verb} {self.kind.kind} {self.namespace}/{self.name}"


async def locate(ctx: Context, kube: Kube, ref: InstanceRef) -> Located:
    """Where ``ref`` is: its solution deployed in its environment, a kind of it, a namespace
    of that environment running it (else a refusal naming what exists)."""
    where = await deployed(ctx, kube, ref.env, ref.solution)
    info = where.kind(ref.kind)
    return Located(where, info, where.check_namespace(ref.namespace), ref.name)
