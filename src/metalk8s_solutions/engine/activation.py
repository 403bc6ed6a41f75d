"""Activate and deactivate a Solution version: which version supplies the cluster's CRDs.

Both verbs edit ``active`` in SolutionsConfiguration under its lock and run the convergence
(:mod:`.converge`) scoped to that solution: the CRD safety checks run first, a refusal changes
nothing, and the file is written only once the CRDs are applied (activation) or removed
(deactivation).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from metalk8s_solutions.api.config import LATEST, SolutionsConfiguration
from metalk8s_solutions.cluster.crds import list_crds
from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Kube, connect
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.converge import (
    ConvergeOptions,
    ConvergeOutcome,
    archive_crds,
    converge,
    label_value,
    labelled,
)
from metalk8s_solutions.engine.crds import MANAGED_BY, PART_OF
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.engine.state import Context, Step, scan_config
from metalk8s_solutions.errors import InvalidInput, command

__all__ = [
    "ActivateOptions",
    "DeactivateOptions",
    "activate",
    "archive_crds",
    "deactivate",
    "label_value",
    "labelled",
]


@dataclass(frozen=True)
class ActivateOptions:
    name: str
    version: str = LATEST
    force: bool = False
    dry_run: bool = False
    #: CRDs of the archive that may be taken over from another owner (another solution, or
    #: anything Solutions did not create); every other foreign CRD is refused
    take_over: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeactivateOptions:
    name: str
    force: bool = False
    dry_run: bool = False


async def _require_known(kube: Kube, config: SolutionsConfiguration, name: str) -> None:
    """Refuse a name that is neither active, imported nor the owner of CRDs (a typo)."""
    imported = await asyncio.to_thread(scan_config, config)
    known = set(config.active) | {i.manifest.name for i in imported if i.manifest is not None}
    crds = await list_crds(kube, f"{MANAGED_BY}={FIELD_MANAGER}")
    known |= {str((c["metadata"].get("labels") or {}).get(PART_OF, "")) for c in crds}
    if name not in known:
        raise InvalidInput(
            f"solution {name} is neither active, imported nor the owner of CRDs"
            + did_you_mean(name, known),
            hint=f"nothing was changed; see '{command('list')}'",
        )


async def activate(ctx: Context, opts: ActivateOptions) -> ConvergeOutcome:
    """Make ``opts.version`` (or the latest) of ``opts.name`` the active version, safely."""
    store = ConfigStore(ctx.config_path)
    async with connect(ctx.target) as kube, store.edit_async(dry_run=opts.dry_run) as edit:
        before = dict(edit.config.active)
        edit.config = edit.config.with_active(opts.name, opts.version)
        options = ConvergeOptions(
            dry_run=opts.dry_run,
            force=opts.force,
            solutions=frozenset({opts.name}),
            take_over=frozenset(opts.take_over),
        )
        outcome = await converge(kube, edit.config, options, ctx.say)
        if before != dict(edit.config.active):
            outcome.steps.insert(
                0,
                Step("configure", opts.name, f"active: {opts.version} in SolutionsConfiguration"),
            )
    return outcome


async def deactivate(ctx: Context, opts: DeactivateOptions) -> ConvergeOutcome:
    """Remove the active mark of ``opts.name`` and its CRDs, refusing while they hold data."""
    store = ConfigStore(ctx.config_path)
    async with connect(ctx.target) as kube, store.edit_async(dry_run=opts.dry_run) as edit:
        was_active = opts.name in edit.config.active
        if not was_active:
            await _require_known(kube, edit.config, opts.name)
        edit.config = edit.config.without_active(opts.name)
        options = ConvergeOptions(
            dry_run=opts.dry_run, force=opts.force, solutions=frozenset({opts.name})
        )
        outcome = await converge(kube, edit.config, options, ctx.say)
        if was_active:
            outcome.steps.insert(
                0,
                Step(
                    "configure",
                    opts.name,
                    "remove the active mark from SolutionsConfiguration",
                ),
            )
    return outcome
