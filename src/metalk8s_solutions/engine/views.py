"""The read views of the web UI, one function each, shown alike by its HTML pages and its JSON API.

Each answers a dict (or list) of domain state, built from engine verbs only: the JSON API returns
it as it is, the page renders the same dict (plus presentation: rights, forms, relative times).
The instance views are in :mod:`engine.instances.read`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import allowed_policies
from metalk8s_solutions.api.versions import compare_versions, sort_versions
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.environments import (
    check_crds_served,
    list_environments,
    load_version_content,
    read_inventory,
    session,
    show_environment,
)
from metalk8s_solutions.engine.inspect import InspectOptions, inspect, sbom_packages
from metalk8s_solutions.engine.instances import instances_view
from metalk8s_solutions.engine.solutions import list_solutions
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.engine.wording import Readiness, environment_health
from metalk8s_solutions.errors import SolutionsError

_INSPECTED: dict[tuple[str, int, int, tuple[str, ...]], dict[str, Any]] = {}


def archive_details(archive: Path, trusted: tuple[str, ...]) -> dict[str, Any]:
    """Images, CRDs, signature status and size of an imported archive (cached per file)."""
    try:
        stat = archive.stat()
    except OSError as err:
        return {"problem": f"cannot read the archive: {err.strerror}"}
    key = (str(archive), stat.st_mtime_ns, stat.st_size, trusted)
    if key not in _INSPECTED:
        try:
            data = inspect(InspectOptions(archive, tuple(Path(k) for k in trusted))).to_dict()
        except SolutionsError as err:
            return {"problem": str(err), "size": stat.st_size}
        try:
            packages = sbom_packages(archive)
        except SolutionsError:  # an unreadable SBOM hides the packages, not the version
            packages = {}
        _INSPECTED[key] = {
            "size": stat.st_size,
            "images": [i.get("image", "?") for i in data.get("images", [])],
            "sboms": packages,  # image -> its packages, from the archive's SBOMs
            "crds": [c.get("name", "?") for c in data.get("crds", [])],
            "signature": data["integrity"]["signature"],
            "signedBy": data["integrity"]["signedBy"],
            "checksums": data["integrity"]["checksums"],
            "manifest": data.get("manifest"),
        }
    return _INSPECTED[key]


async def solutions_view(ctx: Context) -> dict[str, Any]:
    """The Solutions page: ``list_solutions`` plus, per version, what its archive holds."""
    data = await list_solutions(ctx)
    trust = (await ConfigStore(ctx.config_path).read_async()).trust
    trusted = trust.keys
    site = trust.effective_policy()
    data["policy"] = {"site": str(site), "allowed": [str(p) for p in allowed_policies(site)]}
    for entries in data["solutions"].values():
        for entry in entries:
            if entry.get("problem"):  # e.g. changed since import: what it holds now is not shown
                entry["details"] = {"problem": entry["problem"]}
                continue
            details = await asyncio.to_thread(
                archive_details, Path(entry["archive"]), tuple(trusted)
            )
            signer = entry.get("signer")
            if details.get("signature") == "signed-by-unknown-key" and signer in (
                details.get("signedBy") or []
            ):  # its key was given at import (--key), not configured in trust.keys
                details = {**details, "signature": "verified", "verifiedAtImport": signer}
            entry["details"] = details
    return data


async def environments_view(ctx: Context) -> list[dict[str, Any]]:
    """Each environment with its solutions, versions and health (operators and instances)."""
    envs = await list_environments(ctx)

    async def detail(env: dict[str, Any]) -> dict[str, Any]:
        try:
            shown = await show_environment(ctx, env["name"])
        except SolutionsError as err:
            return {**env, "solutions": {}, "health": "unknown", "problem": str(err)}
        return await _with_instances(ctx, shown)

    return list(await asyncio.gather(*(detail(e) for e in envs)))


async def environment_view(ctx: Context, env: str) -> dict[str, Any]:
    """One environment: ``env show`` summarized per solution (:func:`summarize_environment`),
    its health from its operators and the readiness of every instance of its solutions."""
    return await _with_instances(ctx, await show_environment(ctx, env))


async def _with_instances(ctx: Context, shown: dict[str, Any]) -> dict[str, Any]:
    summary = summarize_environment(shown)
    readings: list[Readiness] = []
    problems: list[str] = []
    for sol in sorted(summary["solutions"]):
        try:
            listed = await instances_view(ctx, shown["name"], sol)
        except SolutionsError as err:
            problems.append(f"instances of {sol} not read: {err.message}")
            continue
        for row in listed["instances"]:
            status = row["status"]
            readings.append(
                Readiness(
                    f"{row['kind']} {row['name']}",
                    status["condition"],
                    status["reason"] if status["condition"] else "",
                    status["message"] if status["condition"] else "",
                )
            )
    operators = {
        f"{sol} in {ns}": status
        for sol, item in summary["solutions"].items()
        for ns, status in item["operators"].items()
    }
    health, problem = environment_health(operators, readings)
    if problems and health == "healthy":
        health = "unknown"
    problem = "; ".join(p for p in (problem, *problems) if p)
    return {**summary, "health": health, "problem": problem}


def summarize_environment(shown: dict[str, Any]) -> dict[str, Any]:
    """Per solution: version(s) and operator status over the namespaces of the environment;
    health from the operators only (:func:`environment_view` adds the instances)."""
    solutions: dict[str, dict[str, Any]] = {}
    for ns, entry in shown.get("namespaces", {}).items():
        for sol, info in (entry.get("solutions") or {}).items():
            if not info.get("version"):
                continue
            item = solutions.setdefault(sol, {"versions": {}, "operators": {}})
            item["versions"][ns] = info["version"]
            item["operators"][ns] = info.get("operator")
    operators = {
        f"{sol} in {ns}": status
        for sol, item in solutions.items()
        for ns, status in item["operators"].items()
    }
    health, problem = environment_health(operators, [])
    return {**shown, "solutions": solutions, "health": health, "problem": problem}


def current_version(summary: dict[str, Any], solution: str) -> str | None:
    """The version of ``solution`` an environment summary shows (None: not deployed there)."""
    versions = (summary["solutions"].get(solution) or {}).get("versions", {})
    return next(iter(versions.values()), None)


async def solution_versions(ctx: Context, env: str, solution: str) -> list[dict[str, Any]]:
    """The versions ``solution`` could run in ``env``: :func:`version_choices` from the one
    deployed there (the instances are not read)."""
    summary = summarize_environment(await show_environment(ctx, env))
    return await version_choices(ctx, solution, current_version(summary, solution))


async def version_menu(ctx: Context, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """For each deployable solution, its :func:`version_choices` in the environment ``summary``
    (a :func:`environment_view` or :func:`summarize_environment`) describes."""
    return {
        sol: await version_choices(ctx, sol, current_version(summary, sol))
        for sol in await deployable_solutions(ctx)
    }


async def version_choices(ctx: Context, solution: str, current: str | None) -> list[dict[str, Any]]:
    """Imported versions of ``solution``, highest first, each compatible or not (and why)."""
    async with session(ctx) as kube:
        inventory = await read_inventory(ctx, kube)
        choices: list[dict[str, Any]] = []
        for version in sort_versions(inventory.versions(solution), reverse=True):
            archive = inventory.archive_of(solution, version)
            reason: str | None = None
            try:
                assert archive is not None  # noqa: S101 - listed by the inventory
                content = await asyncio.to_thread(
                    load_version_content, Path(archive), inventory.pin(archive)
                )
                await check_crds_served(kube, content)
            except SolutionsError as err:
                reason = err.message
            except OSError as err:
                reason = f"archive unreadable: {err.strerror}"
            choices.append(
                {
                    "version": version,
                    "current": version == current,
                    "compatible": reason is None,
                    "reason": reason,
                    "direction": direction(version, current),
                }
            )
    return choices


def direction(version: str, current: str | None) -> str:
    """What choosing ``version`` does where ``current`` runs: add, upgrade, downgrade, current."""
    if current is None:
        return "add"
    way = compare_versions(version, current)
    return "upgrade" if way > 0 else "downgrade" if way < 0 else "current"


async def deployable_solutions(ctx: Context) -> list[str]:
    """Solutions with at least one imported version, by name."""
    async with session(ctx) as kube:
        inventory = await read_inventory(ctx, kube)
    return sorted({i.manifest.name for i in inventory.imported if i.manifest is not None})
