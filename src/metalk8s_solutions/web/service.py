"""The operations the UI and the API offer, each a thin call of the same engine verb as the CLI.

Every mutating operation is described once (:data:`OPERATIONS`): its parameters as plain strings
(what a form posts; the JSON API builds the same mapping), the engine call, whether it touches
files on the admin node (then the user must also be allowed to update the cluster record), its
title and the page to go back to.  Read models for the pages are assembled here too, from engine
calls only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import Policy, allowed_policies
from metalk8s_solutions.api.versions import compare_versions, sort_versions
from metalk8s_solutions.cluster.kube import connect
from metalk8s_solutions.engine.activation import (
    ActivateOptions,
    DeactivateOptions,
    activate,
    deactivate,
)
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.environments.add import add_solution
from metalk8s_solutions.engine.environments.core import (
    check_crds_served,
    load_version_content,
    read_inventory,
)
from metalk8s_solutions.engine.environments.create import create_environment
from metalk8s_solutions.engine.environments.delete import delete_environment
from metalk8s_solutions.engine.environments.options import (
    AddSolutionOptions,
    CreateEnvOptions,
    DeleteEnvOptions,
    DeleteSolutionOptions,
    UpgradeOptions,
    from_params,
)
from metalk8s_solutions.engine.environments.remove import delete_solution
from metalk8s_solutions.engine.environments.show import list_environments, show_environment
from metalk8s_solutions.engine.environments.upgrade import upgrade_solution
from metalk8s_solutions.engine.inspect import InspectOptions, inspect
from metalk8s_solutions.engine.solutions import (
    Context,
    ImportOptions,
    Outcome,
    UnimportOptions,
    import_archives,
    list_solutions,
    unimport_archives,
)
from metalk8s_solutions.engine.wording import Readiness, environment_health
from metalk8s_solutions.errors import InvalidInput, Refused, SolutionsError
from metalk8s_solutions.web import instances

Params = Mapping[str, str]
ENV_TIMEOUT = 180.0


def _flag(params: Params, key: str) -> bool:
    return params.get(key, "").lower() in ("1", "true", "on", "yes")


def _need(params: Params, key: str, what: str) -> str:
    value = params.get(key, "").strip()
    if not value:
        raise InvalidInput(f"{what} is required")
    return value


def _list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.replace(",", "\n").splitlines() if p.strip())


@dataclass(frozen=True)
class Operation:
    """One mutating operation, as both the pages and the API run it."""

    key: str
    title: Callable[[Params], str]
    run: Callable[[Context, Params, bool], Awaitable[Outcome]]
    back: Callable[[Params], str]
    admin_node: bool = False  # writes SolutionsConfiguration on the admin node
    confirm_field: str | None = None  # a typed confirmation must equal this parameter


async def _import(ctx: Context, p: Params, dry: bool) -> Outcome:
    archives = tuple(Path(a) for a in _list(_need(p, "archives", "an archive path")))
    for archive in archives:
        if not archive.is_absolute():
            raise InvalidInput(
                f"archive path {archive} must be absolute (a file on the admin node)"
            )
    policy = p.get("policy") or None
    if policy is not None and policy not in {x.value for x in Policy}:
        raise InvalidInput(f"policy must be one of {', '.join(x.value for x in Policy)}")
    return await import_archives(
        ctx, ImportOptions(archives, (), Policy(policy) if policy else None, dry)
    )


async def _unimport(ctx: Context, p: Params, dry: bool) -> Outcome:
    return await unimport_archives(ctx, UnimportOptions(_list(_need(p, "ref", "an id")), dry))


async def _activate(ctx: Context, p: Params, dry: bool) -> Outcome:
    options = ActivateOptions(
        _need(p, "name", "a solution name"),
        p.get("version") or "latest",
        _flag(p, "force"),
        dry,
        _list(p.get("take_over_crds", "")),
    )
    return await activate(ctx, options)


async def _deactivate(ctx: Context, p: Params, dry: bool) -> Outcome:
    options = DeactivateOptions(_need(p, "name", "a solution name"), _flag(p, "force"), dry)
    return await deactivate(ctx, options)


async def _env_create(ctx: Context, p: Params, dry: bool) -> Outcome:
    return await create_environment(ctx, from_params(CreateEnvOptions, p, dry_run=dry))


async def _env_delete(ctx: Context, p: Params, dry: bool) -> Outcome:
    options = from_params(DeleteEnvOptions, p, dry_run=dry, wait=False)
    return await delete_environment(ctx, options)


async def _env_add(ctx: Context, p: Params, dry: bool) -> Outcome:
    options = from_params(AddSolutionOptions, p, dry_run=dry, timeout=ENV_TIMEOUT)
    return await add_solution(ctx, options)


async def _env_upgrade(ctx: Context, p: Params, dry: bool) -> Outcome:
    options = from_params(UpgradeOptions, p, dry_run=dry, timeout=ENV_TIMEOUT)
    return await upgrade_solution(ctx, options)


async def _env_remove(ctx: Context, p: Params, dry: bool) -> Outcome:
    options = from_params(DeleteSolutionOptions, p, dry_run=dry, timeout=ENV_TIMEOUT)
    return await delete_solution(ctx, options)


def _env_page(p: Params) -> str:
    return f"/environments/{p.get('env', '')}"


OPERATIONS: dict[str, Operation] = {
    op.key: op
    for op in (
        Operation(
            "import",
            lambda p: "Import " + ", ".join(Path(a).name for a in _list(p.get("archives", ""))),
            _import,
            lambda p: "/solutions",
            admin_node=True,
        ),
        Operation(
            "unimport",
            lambda p: f"Unimport {p.get('ref', '')}",
            _unimport,
            lambda p: "/solutions",
            admin_node=True,
        ),
        Operation(
            "activate",
            lambda p: f"Activate {p.get('name', '')} {p.get('version') or 'latest'}",
            _activate,
            lambda p: "/solutions",
            admin_node=True,
        ),
        Operation(
            "deactivate",
            lambda p: f"Deactivate {p.get('name', '')}",
            _deactivate,
            lambda p: "/solutions",
            admin_node=True,
        ),
        Operation(
            "env-create",
            lambda p: f"Create environment {p.get('name', '')}",
            _env_create,
            lambda p: f"/environments/{p.get('name', '')}",
        ),
        Operation(
            "env-delete",
            lambda p: f"Delete environment {p.get('name', '')}",
            _env_delete,
            lambda p: "/environments",
            confirm_field="name",
        ),
        Operation(
            "env-add",
            lambda p: f"Add {p.get('solution', '')} {p.get('version', '')} to {p.get('env', '')}",
            _env_add,
            _env_page,
        ),
        Operation(
            "env-upgrade",
            lambda p: (
                f"Change {p.get('solution', '')} in {p.get('env', '')} to {p.get('version', '')}"
            ),
            _env_upgrade,
            _env_page,
        ),
        Operation(
            "env-remove",
            lambda p: f"Remove {p.get('solution', '')} from {p.get('env', '')}",
            _env_remove,
            _env_page,
        ),
    )
}


def check_confirmation(op: Operation, params: Params) -> None:
    """Destructive operations need the object's name typed again."""
    if op.confirm_field is None:
        return
    expected = params.get(op.confirm_field, "")
    if params.get("confirm", "").strip() != expected:
        raise Refused(
            f"type the name {expected!r} to confirm",
            hint="nothing was changed",
        )


# -- read models -----------------------------------------------------------------------------

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
        _INSPECTED[key] = {
            "size": stat.st_size,
            "images": [f"{i.get('name', '?')}:{i.get('tag', '?')}" for i in data.get("images", [])],
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
        return await environment_view(ctx, shown)

    return list(await asyncio.gather(*(detail(e) for e in envs)))


async def environment_view(ctx: Context, shown: dict[str, Any]) -> dict[str, Any]:
    """:func:`summarize_environment` with the readiness of every instance of its solutions."""
    summary = summarize_environment(shown)
    readings: list[Readiness] = []
    problems: list[str] = []
    for sol in sorted(summary["solutions"]):
        try:
            listed = await instances.list_instances(ctx, shown["name"], sol)
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


async def version_choices(ctx: Context, solution: str, current: str | None) -> list[dict[str, Any]]:
    """Imported versions of ``solution``, highest first, each compatible or not (and why)."""
    async with connect(ctx.target) as kube:
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
                    "direction": _direction(version, current),
                }
            )
    return choices


def _direction(version: str, current: str | None) -> str:
    if current is None:
        return "add"
    way = compare_versions(version, current)
    return "upgrade" if way > 0 else "downgrade" if way < 0 else "current"


async def deployable_solutions(ctx: Context) -> list[str]:
    """Solutions with at least one imported version, by name."""
    async with connect(ctx.target) as kube:
        inventory = await read_inventory(ctx, kube)
    return sorted({i.manifest.name for i in inventory.imported if i.manifest is not None})
