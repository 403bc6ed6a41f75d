"""``env add-solution``: a solution version deployed in an environment's namespaces."""

from __future__ import annotations

from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.engine import admission
from metalk8s_solutions.engine.environments.core import (
    EnvOutcome,
    check_crds_served,
    pick_namespaces,
    require_environment,
    session,
    version_to_deploy,
)
from metalk8s_solutions.engine.environments.options import AddSolutionOptions
from metalk8s_solutions.engine.environments.versions import (
    change_versions,
    enable_webhook,
    record_allowed_images,
)
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.errors import Refused, command


async def add_solution(
    ctx: Context, opts: AddSolutionOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Deploy ``solution`` ``version`` in the environment's namespaces (one version each)."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.env)
        targets = pick_namespaces(state, opts.namespaces)
        inventory, content = await version_to_deploy(ctx, kube, opts.solution, opts.version)
        for ns in targets:
            other = state.namespaces[ns].config.get(opts.solution)
            if other is not None and other != opts.version:
                raise Refused(
                    f"{opts.solution} {other} already runs in {opts.env}/{ns}; one version of a "
                    "solution per namespace",
                    hint="change its version with: "
                    + command("env", "upgrade", opts.env, opts.solution, opts.version),
                )
        await check_crds_served(kube, content)
        refs = [admission.check_image_reference(ref) for ref in opts.allow_images]
        if opts.webhook:
            await enable_webhook(kube, state, opts.solution, targets, outcome)
        if refs:
            await record_allowed_images(kube, state, opts.solution, targets, refs, outcome)
        return await change_versions(
            ctx, kube, inventory, state, outcome, opts, targets, content=content, rollback=False
        )
