"""The custom resources (instances) of a solution: what a plan names and a deletion loses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.envstate import EnvironmentState
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import custom_collection, list_custom, read_crd
from metalk8s_solutions.engine.desired import VersionContent
from metalk8s_solutions.engine.environments.core import Inventory
from metalk8s_solutions.engine.wording import InstanceRef, Move, PlanFacts
from metalk8s_solutions.errors import SolutionsError


async def custom_resources(
    kube: Kube, content: VersionContent | None, namespaces: Iterable[str]
) -> list[tuple[str, str]]:
    """(collection path, "Kind/name") of each custom resource of the solution's CRDs."""
    found: list[tuple[str, str]] = []
    if content is None:
        return found
    for crd in content.crds:
        spec = crd.get("spec") or {}
        name = str((crd.get("metadata") or {}).get("name", ""))
        live = await read_crd(kube, name)
        if live is None or (live.get("spec") or {}).get("scope") != "Namespaced":
            continue
        versions = [v for v in (live.get("spec") or {}).get("versions") or [] if v.get("served")]
        if not versions:
            continue
        version = next((v for v in versions if v.get("storage")), versions[0])["name"]
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        kind = (spec.get("names") or {}).get("kind", plural)
        for ns in namespaces:
            for item in await list_custom(kube, group, version, plural, ns):
                item_name = item["metadata"]["name"]
                found.append(
                    (
                        f"{custom_collection(group, version, plural, ns)}/{item_name}",
                        f"{kind} {ns}/{item_name}",
                    )
                )
    return found


def instance_refs(resources: Iterable[tuple[str, str]]) -> list[InstanceRef]:
    """The instances of :func:`custom_resources`' labels (``Kind namespace/name``)."""
    found: set[InstanceRef] = set()
    for _, label in resources:
        kind, _, where = label.partition(" ")
        namespace, _, name = where.partition("/")
        found.add(InstanceRef(kind, namespace, name))
    return sorted(found)


async def lost_with(
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    doomed: Sequence[str],
    facts: PlanFacts,
) -> None:
    """The facts of deleting namespaces ``doomed``: the solutions and instances they hold."""
    facts.env = state.name
    facts.deleted_namespaces = list(doomed)
    facts.data_deleted = True
    facts.moves = [
        Move(ns, sol, version, None)
        for ns in doomed
        for sol, version in sorted(state.namespaces[ns].config.items())
    ]
    solutions = {m.solution for m in facts.moves}
    if solutions:
        try:
            contents = list((await inventory.contents(solutions)).values())
        except (SolutionsError, OSError):  # an archive unreadable now: the deletion goes on
            facts.instances_read = False
            return
        await instances_of(kube, contents, doomed, facts)


async def instances_of(
    kube: Kube, contents: Iterable[VersionContent], namespaces: Iterable[str], facts: PlanFacts
) -> None:
    """The instances of ``contents``' kinds in ``namespaces``, into ``facts`` (informational:
    a user who may not list them still gets the plan, which then says so)."""
    found: list[tuple[str, str]] = []
    try:
        for content in contents:
            found += await custom_resources(kube, content, list(namespaces))
    except SolutionsError:
        facts.instances_read = False
        return
    facts.instances = instance_refs(found)


async def delete_path(kube: Kube, path: str) -> None:
    await request(kube, "DELETE", path, action=f"deleting {path}", missing_ok=True)
