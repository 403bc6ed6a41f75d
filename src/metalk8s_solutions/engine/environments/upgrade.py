"""``env upgrade``: a deployed solution moved to another version, rolled back on failure."""

from __future__ import annotations

from metalk8s_solutions.api.versions import compare_versions
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.engine.environments.core import (
    EnvOutcome,
    check_crds_served,
    deployed_targets,
    require_environment,
    session,
    version_to_deploy,
)
from metalk8s_solutions.engine.environments.options import UpgradeOptions
from metalk8s_solutions.engine.environments.versions import (
    again_command,
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
            opts.solution,
            {ns: opts.version for ns in targets},
            allow_cluster_scope=opts.allow_cluster_scope,
            allow_privileged_role=opts.allow_privileged_role,
            content=content,
            wait=opts.wait,
            timeout=opts.timeout,
            rollback=opts.rollback,
            again=again_command("upgrade", opts.env, opts.solution, opts.version, opts),
        )
