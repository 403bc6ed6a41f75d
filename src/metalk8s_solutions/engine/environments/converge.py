"""``env converge``: environments brought back to their desired state (drift, interruptions)."""

from __future__ import annotations

import asyncio

from metalk8s_solutions.cluster.envstate import EnvironmentState
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import read_environment_states
from metalk8s_solutions.engine.environments.core import (
    EnvOutcome,
    RolloutFailed,
    read_inventory,
    session,
)
from metalk8s_solutions.engine.environments.options import ConvergeOptions
from metalk8s_solutions.engine.environments.plan import (
    converge,
    deployments_to_await,
    read_monitoring_support,
    wait_rollouts,
    with_ui,
)
from metalk8s_solutions.engine.environments.versions import settle_interrupted
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.errors import Refused, command


async def converge_environments(
    ctx: Context, opts: ConvergeOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Bring environments back to their desired state (after drift, an interruption, an import)."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        states = await read_environment_states(kube)
        names = list(opts.envs) or sorted(states)
        for name in names:
            if name not in states:
                raise Refused(
                    f"environment {name} does not exist", hint=f"see '{command('env', 'list')}'"
                )
        inventory = await read_inventory(ctx, kube)
        support = await read_monitoring_support(kube)  # once for every environment
        limit = asyncio.Semaphore(max(1, opts.concurrency))

        async def one(state: EnvironmentState) -> EnvOutcome:
            async with limit:
                own = EnvOutcome(dry_run=opts.dry_run)
                await converge(kube, inventory, state, own, ctx.say, support=support)
                return own

        for result in await asyncio.gather(*(one(states[n]) for n in names)):
            outcome.steps += result.steps
            outcome.warnings += [w for w in result.warnings if w not in outcome.warnings]
            outcome.diffs.update(result.diffs)
            outcome.rollouts.update(result.rollouts)
        if opts.wait and not opts.dry_run:
            keys = [
                key
                for n in names
                for ns, s in states[n].namespaces.items()
                for sol, version in s.config.items()
                for key in deployments_to_await(sol, [ns], with_ui(inventory, sol, {ns: version}))
            ]
            rollouts = await wait_rollouts(kube, keys, opts.timeout, ctx.say, outcome)
        if not opts.dry_run:  # what an interrupted command left in progress, as it is now
            for n in names:
                await settle_interrupted(kube, states[n])
        if opts.wait and not opts.dry_run:
            bad = [f"{k}: {r.message}" for k, r in rollouts.items() if not r.ready]
            if bad:
                raise RolloutFailed("not Available in time: " + "; ".join(bad))
    return outcome
