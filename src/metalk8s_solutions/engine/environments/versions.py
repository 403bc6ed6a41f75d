"""The version change of add-solution and upgrade: approvals, revisions, wait, roll back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

from metalk8s_solutions.cluster.apply import ObjectKey, get_object, rollout_status
from metalk8s_solutions.cluster.envstate import EnvironmentState, NamespaceState
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import (
    IN_PROGRESS,
    Revision,
    append_history,
    read_history,
    write_allowed_images,
    write_env_config,
    write_webhook,
)
from metalk8s_solutions.engine.desired import (
    VersionContent,
    approved_solution,
    check_roles,
    is_approved,
    operator_name,
    privileged_approval,
    privileged_rules,
    role_warnings,
)
from metalk8s_solutions.engine.environments.core import EnvOutcome, Inventory, RolloutFailed
from metalk8s_solutions.engine.environments.data import instances_of
from metalk8s_solutions.engine.environments.options import AddSolutionOptions, UpgradeOptions
from metalk8s_solutions.engine.environments.plan import (
    converge,
    deployments_to_await,
    wait_rollouts,
    with_ui,
)
from metalk8s_solutions.engine.solution_ui import ui_name
from metalk8s_solutions.engine.state import Context, Step
from metalk8s_solutions.engine.wording import Move
from metalk8s_solutions.errors import Interrupted, Refused, command


async def enable_webhook(
    kube: Kube, state: EnvironmentState, solution: str, targets: Sequence[str], outcome: EnvOutcome
) -> None:
    """``--webhook``: record it on each target Namespace (only in ``state`` for a dry run)."""
    for ns in targets:
        current = state.namespaces[ns]
        if solution in current.webhook:
            continue
        outcome.steps.append(
            Step(
                "set", f"Namespace {ns}", f"webhook for {solution}: Secret {solution}-cert at /cert"
            )
        )
        if outcome.dry_run:
            current.webhook = {*current.webhook, solution}
        else:
            await write_webhook(kube, current, {*current.webhook, solution})


async def record_allowed_images(
    kube: Kube,
    state: EnvironmentState,
    solution: str,
    targets: Sequence[str],
    refs: Sequence[str],
    outcome: EnvOutcome,
) -> None:
    """``--allow-image``: record each reference for ``solution`` on each target Namespace
    (only in ``state`` for a dry run)."""
    for ns in targets:
        current = state.namespaces[ns]
        wanted = current.allowed_images | {f"{solution}={ref}" for ref in refs}
        for entry in sorted(wanted - current.allowed_images):
            ref = entry.split("=", 1)[1]
            outcome.steps.append(Step("allow", f"Namespace {ns}", f"image {ref} (for {solution})"))
        if outcome.dry_run:
            current.allowed_images = wanted
        else:
            await write_allowed_images(kube, current, wanted)


#: The options of the two verbs that change a solution's version.
VersionOptions = AddSolutionOptions | UpgradeOptions


def again_command(opts: VersionOptions) -> str:
    """The command that does (or finishes) what ``opts`` asked, to paste after an interruption."""
    words = [w for ns in opts.namespaces for w in ("-N", ns)]
    if opts.allow_cluster_scope:
        words.append("--allow-cluster-scope")
    if opts.allow_privileged_role:
        words.append("--allow-privileged-role")
    if isinstance(opts, AddSolutionOptions):
        if opts.webhook:
            words.append("--webhook")
        return command("env", "add-solution", opts.env, opts.solution, opts.version, *words)
    # ``env upgrade`` has no --webhook: the shim's upgrade recorded it on the namespaces already.
    return command("env", "upgrade", opts.env, opts.solution, opts.version, *words)


async def pending_revision(kube: Kube, ns: str, solution: str) -> Revision | None:
    """The revision of ``solution`` in ``ns`` a command recorded and did not finish, if any."""
    entries = (await read_history(kube, ns)).get(solution, [])
    return entries[-1] if entries and entries[-1].result == IN_PROGRESS else None


async def settle(kube: Kube, ns: NamespaceState, solution: str, rev: Revision) -> None:
    """Complete an interrupted revision from what the cluster shows now (nothing is awaited)."""
    version = ns.config.get(solution)
    if version != rev.to_version:
        left = f"is set to {version}" if version else "is not deployed"
        result, message = "interrupted", f"interrupted; {solution} {left}"
    else:
        key = ObjectKey("Deployment", ns.name, operator_name(solution))
        live = await get_object(kube, key)
        if live is not None and rollout_status(live).ready:
            result, message = "succeeded", "interrupted; found Available by a later command"
        else:
            result, message = "applied", "interrupted before the operator was Available"
    await append_history(
        kube,
        ns.name,
        solution,
        rev.from_version,
        rev.to_version,
        result,
        message,
        revision=rev.revision,
    )


async def settle_interrupted(kube: Kube, state: EnvironmentState) -> int:
    """Complete every revision of ``state`` left in progress by an interrupted command."""
    settled = 0
    for ns in state.namespaces.values():
        for solution, entries in (await read_history(kube, ns.name)).items():
            if entries and entries[-1].result == IN_PROGRESS:
                await settle(kube, ns, solution, entries[-1])
                settled += 1
    return settled


def interrupted(
    env: str,
    solution: str,
    origin: Mapping[str, str | None],
    wanted: Mapping[str, str],
    written: Mapping[str, str],
    revisions: Mapping[str, int],
    again: str,
) -> Interrupted:
    """What an interrupted version change leaves, and the command that finishes it.

    ``written`` is the version this command wrote in each namespace (the previous one when it
    was rolling back): a roll back is finished by a converge, which also completes the records.
    """
    parts = []
    for ns in sorted(wanted):
        change = f"{origin[ns] or 'none'} -> {wanted[ns]}"
        rev = f"revision {revisions[ns]} in progress" if ns in revisions else "nothing recorded"
        if written.get(ns, wanted[ns]) != wanted[ns]:
            parts.append(f"{env}/{ns} was being rolled back to {written[ns]} ({change}, {rev})")
            again = command("env", "converge", env, "--wait")
        elif ns in written or origin[ns] == wanted[ns]:
            parts.append(
                f"{env}/{ns} is set to {wanted[ns]} ({change}, {rev}) but its operator may not "
                "be updated or Available yet"
            )
        else:
            parts.append(f"{env}/{ns} still runs {origin[ns] or 'nothing'} ({change}, {rev})")
    return Interrupted(f"{solution}: " + "; ".join(parts), hint=f"finish it with: {again}")


def _approvals(
    state: EnvironmentState,
    solution: str,
    wanted: Mapping[str, str],
    content: VersionContent,
    *,
    cluster: bool,
    privileged: bool,
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per namespace, the solutions allowed cluster scope and privileged rules once this
    command's approvals are added; Refused when ``content``'s role.yaml still asks for more.

    The check comes before metalk8s-environment records the version: a refused version written
    there would make every later converge of the environment fail.
    """
    scope = {ns: set(state.namespaces[ns].cluster_scope) for ns in state.namespaces}
    approved = {ns: set(state.namespaces[ns].privileged) for ns in state.namespaces}
    approval = privileged_approval(content)
    for ns in wanted:
        if cluster:
            scope[ns].add(solution)
        if privileged:  # replaces an approval of other rules (another version's)
            approved[ns] = {a for a in approved[ns] if approved_solution(a) != solution}
            approved[ns].add(approval)
    problems = check_roles(
        content, privileged_allowed=any(is_approved(content, a) for a in approved.values())
    )
    if problems:
        raise Refused(
            f"cannot deploy {content.manifest.id}: " + "; ".join(problems),
            hint="nothing was changed",
        )
    return scope, approved


async def change_versions(
    ctx: Context,
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    outcome: EnvOutcome,
    opts: VersionOptions,
    targets: Sequence[str],
    *,
    content: VersionContent,
    rollback: bool,
) -> EnvOutcome:
    """Move ``opts.solution`` to ``opts.version`` in each of ``targets``, with the approvals of
    ``opts``: record the revisions :data:`IN_PROGRESS` first, change the versions, await
    (``opts.wait``), complete them.

    A revision a previous command left in progress towards the version is resumed (awaited and
    completed); one towards another version is completed from what the cluster shows.
    """
    solution, again = opts.solution, again_command(opts)
    wanted = {ns: opts.version for ns in targets}
    previous = {ns: state.namespaces[ns].config.get(solution) for ns in wanted}
    configs = state.configs()
    for ns, version in wanted.items():
        configs[ns][solution] = version
    scope, approved = _approvals(
        state,
        solution,
        wanted,
        content,
        cluster=opts.allow_cluster_scope,
        privileged=opts.allow_privileged_role,
    )
    cluster_scope = frozenset(s for allowed in scope.values() for s in allowed)
    privileged = frozenset(s for allowed in approved.values() for s in allowed)
    outcome.warnings += role_warnings(content, cluster_scope_allowed=solution in cluster_scope)
    outcome.facts.env = state.name
    outcome.facts.moves += [Move(ns, solution, previous[ns], wanted[ns]) for ns in wanted]
    await instances_of(kube, [content], wanted, outcome.facts)
    changed_ns = [
        ns
        for ns in wanted
        if previous[ns] != wanted[ns]
        or scope[ns] != state.namespaces[ns].cluster_scope
        or approved[ns] != state.namespaces[ns].privileged
    ]
    for ns in changed_ns:
        outcome.steps.append(
            Step("set", f"ConfigMap {ns}/metalk8s-environment", f"{solution}: {wanted[ns]}")
        )
    if privileged_approval(content) in privileged:
        # The plan names exactly what the administrator's approval covers in this version.
        for rule in privileged_rules(content):
            outcome.steps.append(Step("approve", f"privileged {solution} {content.version}", rule))
    if outcome.dry_run:
        await converge(
            kube,
            inventory,
            state,
            outcome,
            ctx.say,
            configs=configs,
            cluster_scope=cluster_scope,
            privileged=privileged,
        )
        return outcome
    resumed: dict[str, Revision] = {}
    for ns in wanted:
        pending = await pending_revision(kube, ns, solution)
        if pending is None:
            continue
        if pending.to_version == opts.version == previous[ns]:
            resumed[ns] = pending
            outcome.steps.append(
                Step(
                    "resume",
                    f"{solution} in {state.name}/{ns}",
                    f"revision {pending.revision}: {pending.from_version or 'none'} -> "
                    f"{pending.to_version} (interrupted)",
                )
            )
        else:
            await settle(kube, state.namespaces[ns], solution, pending)
    origin = {ns: resumed[ns].from_version if ns in resumed else previous[ns] for ns in wanted}
    moved = [ns for ns in wanted if previous[ns] != wanted[ns] or ns in resumed]
    revisions = {ns: r.revision for ns, r in resumed.items()}
    written: dict[str, str] = {}
    try:
        for ns in moved:
            if ns not in revisions:
                rev = await append_history(
                    kube,
                    ns,
                    solution,
                    previous[ns],
                    wanted[ns],
                    IN_PROGRESS,
                    f"if no command is running, finish it with: {again}",
                )
                revisions[ns] = rev.revision
        return await _apply_versions(
            ctx,
            kube,
            inventory,
            state,
            outcome,
            solution,
            wanted,
            origin,
            moved,
            revisions,
            written,
            configs=configs,
            changed_ns=changed_ns,
            scope=scope,
            approved=approved,
            wait=opts.wait,
            timeout=opts.timeout,
            rollback=rollback,
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise interrupted(state.name, solution, origin, wanted, written, revisions, again) from None


async def _apply_versions(
    ctx: Context,
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    outcome: EnvOutcome,
    solution: str,
    wanted: Mapping[str, str],
    origin: Mapping[str, str | None],
    moved: Sequence[str],
    revisions: Mapping[str, int],
    written: dict[str, str],
    *,
    configs: Mapping[str, Mapping[str, str]],
    changed_ns: Sequence[str],
    scope: Mapping[str, set[str]],
    approved: Mapping[str, set[str]],
    wait: bool,
    timeout: float,  # noqa: ASYNC109 - a polling deadline
    rollback: bool,
) -> EnvOutcome:
    """Write the versions, converge, await; complete the revisions :data:`IN_PROGRESS`."""

    async def complete(namespaces: Iterable[str], result: str, message: str = "") -> None:
        """Complete the revision this command recorded in each of ``namespaces``."""
        for ns in namespaces:
            await append_history(
                kube, ns, solution, origin[ns], wanted[ns], result, message, revision=revisions[ns]
            )

    for ns in changed_ns:
        await write_env_config(
            kube, state.namespaces[ns], state.name, configs[ns], scope[ns], approved[ns]
        )
        written[ns] = wanted[ns]
    own = deployments_to_await(solution, wanted, with_ui(inventory, solution, wanted))
    await converge(kube, inventory, state, outcome, ctx.say, awaited=own)
    if not wait:
        await complete(moved, "applied", "not awaited")
        return outcome
    rollouts = await wait_rollouts(kube, own, timeout, ctx.say, outcome)
    failed: dict[str, str] = {}
    for key, r in rollouts.items():
        if not r.ready:
            what = "UI" if key.name == ui_name(solution) else "operator"
            failed[key.namespace] = "; ".join(
                filter(None, (failed.get(key.namespace), f"{what}: {r.message}"))
            )
    if not failed:
        await complete(moved, "succeeded")
        return outcome
    where = "; ".join(f"{state.name}/{ns}: {msg}" for ns, msg in sorted(failed.items()))
    reason = f"{solution} did not become Available within {timeout:.0f}s ({where})"
    back = {ns: v for ns, v in origin.items() if v is not None and ns in failed and v != wanted[ns]}
    if not rollback or not back:
        await complete(moved, "failed", reason)
        raise RolloutFailed(
            reason,
            hint=f"it was left as it is; see '{command('env', 'show', state.name)}' and the "
            "operator's pods",
        )
    ctx.say(f"rolling back {solution} to the previous revision in {', '.join(sorted(back))}")
    for ns, version in back.items():
        restored = dict(state.namespaces[ns].config)
        restored[solution] = version
        written[ns] = version
        await write_env_config(
            kube, state.namespaces[ns], state.name, restored, state.namespaces[ns].cluster_scope
        )
    await converge(kube, inventory, state, EnvOutcome(dry_run=False), ctx.say)
    back_keys = deployments_to_await(solution, back, with_ui(inventory, solution, back))
    back_state = await wait_rollouts(kube, back_keys, timeout, ctx.say, outcome)
    recovered = all(r.ready for r in back_state.values())
    await complete([ns for ns in moved if ns in back], "rolled-back", reason)
    await complete([ns for ns in moved if ns not in back], "succeeded")
    versions = ", ".join(f"{ns}: {v}" for ns, v in sorted(back.items()))
    raise RolloutFailed(
        f"{reason}; rolled back to the previous revision ({versions})"
        + ("" if recovered else ", which is not Available either"),
        hint=f"see '{command('env', 'show', state.name)}'; use --no-rollback to keep the new "
        "version for investigation",
    )
