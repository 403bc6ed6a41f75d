"""The operations the UI and the API offer, each a thin call of the same engine verb as the CLI.

Every mutating operation is described once (:data:`OPERATIONS`): its parameters as plain strings
(what a form posts; the JSON API builds the same mapping), the engine call, whether it touches
files on the admin node (then the user must also be allowed to update the cluster record), its
title and the page to go back to.  The read views are in :mod:`engine.views` and
:mod:`engine.instances.read`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.engine.activation import (
    ActivateOptions,
    DeactivateOptions,
    activate,
    deactivate,
)
from metalk8s_solutions.engine.environments.add import add_solution
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
from metalk8s_solutions.engine.environments.upgrade import upgrade_solution
from metalk8s_solutions.engine.solutions import (
    Context,
    ImportOptions,
    Outcome,
    UnimportOptions,
    import_archives,
    unimport_archives,
)
from metalk8s_solutions.errors import InvalidInput, Refused

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


def _env_verb(
    verb: Callable[[Context, Any], Awaitable[Outcome]], options: type[Any], **fixed: Any
) -> Callable[[Context, Params, bool], Awaitable[Outcome]]:
    """An environment verb run from a form: its options type built from the posted fields."""

    async def run(ctx: Context, p: Params, dry: bool) -> Outcome:
        return await verb(ctx, from_params(options, p, dry_run=dry, **fixed))

    return run


_env_create = _env_verb(create_environment, CreateEnvOptions)
_env_delete = _env_verb(delete_environment, DeleteEnvOptions, wait=False)
_env_add = _env_verb(add_solution, AddSolutionOptions, timeout=ENV_TIMEOUT)
_env_upgrade = _env_verb(upgrade_solution, UpgradeOptions, timeout=ENV_TIMEOUT)
_env_remove = _env_verb(delete_solution, DeleteSolutionOptions, timeout=ENV_TIMEOUT)


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
