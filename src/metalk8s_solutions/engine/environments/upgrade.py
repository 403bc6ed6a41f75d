"""``env upgrade``: a deployed solution moved to another version, rolled back on failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from metalk8s_solutions.api.versions import compare_versions
from metalk8s_solutions.cluster.envstate import EnvironmentState
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.engine.environments.core import (
    EnvOutcome,
    Inventory,
    check_crds_served,
    deployed_targets,
    require_environment,
    session,
    version_to_deploy,
)
from metalk8s_solutions.engine.environments.options import UpgradeOptions
from metalk8s_solutions.engine.environments.versions import (
    change_versions,
    enable_webhook,
)
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.engine.state import Context, Step
from metalk8s_solutions.errors import Refused, command


async def upgrade_solution(
    ctx: Context, opts: UpgradeOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Change the version of a deployed solution, wait, and roll back when it does not come up."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.env)
        candidates, targets = deployed_targets(state, opts.solution, opts.namespaces)
        if not targets:
            deployed = {s for ns in state.namespaces.values() for s in ns.config}
            raise Refused(
                f"{opts.solution} is not deployed in environment {opts.env}"
                + (f" (namespaces {', '.join(candidates)})" if opts.namespaces else "")
                + did_you_mean(opts.solution, deployed),
                hint="deploy it with: "
                + command("env", "add-solution", opts.env, opts.solution, opts.version),
            )
        inventory, content = await version_to_deploy(ctx, kube, opts.solution, opts.version)
        await check_crds_served(kube, content)
        if opts.dry_run:  # what the new archive changes (solutions diff), from each deployed one
            await _archive_diffs(inventory, state, opts, targets, outcome)
        if opts.webhook:
            await enable_webhook(kube, state, opts.solution, targets, outcome)
        for ns in targets:
            current = state.namespaces[ns].config[opts.solution]
            if current != opts.version:
                way = "upgrade" if compare_versions(opts.version, current) > 0 else "downgrade"
                outcome.steps.append(
                    Step(way, f"{opts.solution} in {opts.env}/{ns}", f"{current} -> {opts.version}")
                )
        return await change_versions(
            ctx,
            kube,
            inventory,
            state,
            outcome,
            opts,
            targets,
            content=content,
            rollback=opts.rollback,
        )


async def _archive_diffs(
    inventory: Inventory,
    state: EnvironmentState,
    opts: UpgradeOptions,
    targets: Sequence[str],
    outcome: EnvOutcome,
) -> None:
    """Add to ``outcome`` what going from each deployed version's archive to the target's
    changes (read against the imported archives' pins; an unreadable one is a warning)."""
    from metalk8s_solutions.engine.diff import upgrade_diffs  # noqa: PLC0415

    archive = inventory.require(opts.solution, opts.version)
    deployed = {state.namespaces[ns].config[opts.solution] for ns in targets}
    paths = {v: inventory.archive_of(opts.solution, v) for v in sorted(deployed)}
    pins = {p: inventory.pin(p) for p in [archive, *paths.values()] if p is not None}
    diffs, notes = await asyncio.to_thread(upgrade_diffs, paths, opts.version, archive, pins)
    outcome.archive_diffs += diffs
    outcome.warnings += notes
