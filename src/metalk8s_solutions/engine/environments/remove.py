"""``env delete-solution``: a solution removed from an environment, its data on request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path

from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.envstate import EnvironmentState
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import (
    append_history,
    wait_gone,
    write_allowed_images,
    write_env_config,
    write_webhook,
)
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine.desired import VersionContent, approved_solution
from metalk8s_solutions.engine.environments.core import (
    EnvOutcome,
    Inventory,
    deployed_targets,
    load_version_content,
    read_inventory,
    require_environment,
    session,
)
from metalk8s_solutions.engine.environments.data import custom_resources, delete_path, instance_refs
from metalk8s_solutions.engine.environments.options import DeleteSolutionOptions
from metalk8s_solutions.engine.environments.plan import converge
from metalk8s_solutions.engine.environments.versions import pending_revision, settle
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.engine.state import Context, Step
from metalk8s_solutions.engine.wording import Move, PlanFacts
from metalk8s_solutions.errors import Refused, command


async def delete_solution(  # noqa: PLR0912 - data, config, prune, wait
    ctx: Context, opts: DeleteSolutionOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Remove a solution from an environment: its operator and everything deployed for it."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.env)
        candidates, targets = deployed_targets(state, opts.solution, opts.namespaces)
        inventory = await read_inventory(ctx, kube)
        if not targets:
            return await _delete_kept(ctx, kube, inventory, state, candidates, opts, outcome)
        content: VersionContent | None = None
        for ns in targets:
            archive = inventory.archive_of(
                opts.solution, state.namespaces[ns].config[opts.solution]
            )
            if archive is not None and await asyncio.to_thread(Path(archive).is_file):
                content = await asyncio.to_thread(
                    load_version_content, Path(archive), inventory.pin(archive)
                )
                break
        resources = await custom_resources(kube, content, targets)
        outcome.facts = PlanFacts(
            state.name,
            [
                Move(ns, opts.solution, state.namespaces[ns].config[opts.solution], None)
                for ns in targets
            ],
            instance_refs(resources),
            data_deleted=opts.delete_data,
        )
        if resources and opts.delete_data:
            for _, label in resources:
                outcome.steps.append(Step("delete", label, "custom resource (--delete-data)"))
        elif resources:
            outcome.warnings.append(
                f"kept {len(resources)} custom resource(s) of {opts.solution}: "
                + ", ".join(label for _, label in resources)
                + " (they are no longer reconciled; delete them with --delete-data)"
            )
        configs = state.configs()
        before = state.configs()  # what MetalK8s may have deployed is found from it
        previous = {ns: configs[ns].pop(opts.solution) for ns in targets}
        for ns in targets:
            outcome.steps.append(
                Step(
                    "unset",
                    f"ConfigMap {ns}/metalk8s-environment",
                    f"{opts.solution} (was {previous[ns]})",
                )
            )
        if opts.dry_run:
            await converge(kube, inventory, state, outcome, ctx.say, configs=configs)
            return outcome
        for ns in targets:
            pending = await pending_revision(kube, ns, opts.solution)
            if pending is not None:
                await settle(kube, state.namespaces[ns], opts.solution, pending)
        if resources and opts.delete_data:
            # While the operator still runs, so that it can process its finalizers.
            for path, _ in resources:
                await delete_path(kube, path)
            if opts.wait:
                left = await wait_gone(
                    kube, [p for p, _ in resources], timeout=opts.timeout, say=ctx.say
                )
                if left:
                    outcome.warnings.append(f"{len(left)} custom resource(s) still terminating")
        for ns in targets:
            scope = state.namespaces[ns].cluster_scope - {opts.solution}
            approved = {
                a for a in state.namespaces[ns].privileged if approved_solution(a) != opts.solution
            }
            await write_env_config(
                kube, state.namespaces[ns], state.name, configs[ns], scope, approved
            )
            await write_webhook(
                kube, state.namespaces[ns], state.namespaces[ns].webhook - {opts.solution}
            )
            await write_allowed_images(
                kube,
                state.namespaces[ns],
                {
                    e
                    for e in state.namespaces[ns].allowed_images
                    if not e.startswith(f"{opts.solution}=")
                },
            )
        await converge(kube, inventory, state, outcome, ctx.say, previous=before)
        for ns in targets:
            await append_history(
                kube,
                ns,
                opts.solution,
                previous[ns],
                None,
                "removed",
                "custom resources deleted" if opts.delete_data and resources else "",
            )
        if opts.wait:
            pods = await _operator_pods(kube, opts.solution, targets, state.name)
            left = await wait_gone(kube, pods, timeout=opts.timeout, say=ctx.say)
            if left:
                outcome.warnings.append(f"{len(left)} operator pod(s) still terminating")
    return outcome


async def _delete_kept(
    ctx: Context,
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    namespaces: Sequence[str],
    opts: DeleteSolutionOptions,
    outcome: EnvOutcome,
) -> EnvOutcome:
    """``delete-solution`` of a solution no longer deployed: the custom resources it kept."""
    resources: list[tuple[str, str]] = []
    for content in (await inventory.contents([opts.solution])).values():
        for found in await custom_resources(kube, content, namespaces):
            if found not in resources:
                resources.append(found)
    if not resources:
        known = {s for ns in state.namespaces.values() for s in ns.config}
        raise Refused(
            f"{opts.solution} is not deployed in environment {opts.env}"
            + did_you_mean(opts.solution, known),
            hint=f"see '{command('env', 'show', opts.env)}'",
        )
    labels = ", ".join(label for _, label in resources)
    if not opts.delete_data:
        raise Refused(
            f"{opts.solution} is not deployed in environment {opts.env}, but "
            f"{len(resources)} custom resource(s) of it were kept: {labels}",
            hint="delete them with: "
            + command("env", "delete-solution", opts.env, opts.solution, "--delete-data"),
        )
    for _, label in resources:
        outcome.steps.append(Step("delete", label, "custom resource (--delete-data)"))
    outcome.facts = PlanFacts(state.name, instances=instance_refs(resources), data_deleted=True)
    if opts.dry_run:
        return outcome
    for path, _ in resources:
        await delete_path(kube, path)
    if opts.wait:
        left = await wait_gone(kube, [p for p, _ in resources], timeout=opts.timeout, say=ctx.say)
        if left:
            outcome.warnings.append(
                f"{len(left)} custom resource(s) still terminating (no operator runs to "
                "process their finalizers)"
            )
    return outcome


async def _operator_pods(
    kube: Kube, solution: str, namespaces: Iterable[str], env: str
) -> list[str]:
    paths: list[str] = []
    for ns in namespaces:
        data = await request(
            kube,
            "GET",
            f"/api/v1/namespaces/{ns}/pods",
            action=f"listing pods in {ns}",
            params={"labelSelector": f"app.kubernetes.io/part-of={solution},{ENV_LABEL}={env}"},
        )
        paths += [
            f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}"
            for p in (data or {}).get("items") or []
        ]
    return paths
