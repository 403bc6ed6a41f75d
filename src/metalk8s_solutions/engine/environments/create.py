"""``env create``: an environment's namespaces, made or added (idempotent)."""

from __future__ import annotations

from metalk8s_solutions.cluster.envstate import (
    POD_SECURITY_LEVELS,
    EnvironmentState,
    NamespaceState,
)
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import (
    ensure_namespace,
    read_environment_states,
    read_namespace,
    write_env_config,
)
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine.desired import (
    check_dns_label,
    check_env_name,
    check_not_system_namespace,
)
from metalk8s_solutions.engine.environments.core import EnvOutcome, session
from metalk8s_solutions.engine.environments.options import CreateEnvOptions
from metalk8s_solutions.engine.state import Context, Step
from metalk8s_solutions.errors import InvalidInput, Refused


async def create_environment(
    ctx: Context, opts: CreateEnvOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Create the namespaces of an environment (or add namespaces to it); idempotent."""
    env = check_env_name(opts.name, namespaced=bool(opts.namespaces))
    namespaces = [check_dns_label(ns, "namespace") for ns in opts.namespaces or (env,)]
    for ns in namespaces:
        check_not_system_namespace(ns)
    outcome = EnvOutcome(dry_run=opts.dry_run)
    outcome.facts.env = env
    async with session(ctx, connection) as kube:
        states = await read_environment_states(kube, env)
        state = states.get(env, EnvironmentState(env))
        description = opts.description or state.description
        level = opts.pod_security or state.pod_security() or POD_SECURITY_LEVELS[0]
        if level not in POD_SECURITY_LEVELS:
            raise InvalidInput(
                f"Pod Security level {level!r} is not known",
                hint=f"use one of {', '.join(POD_SECURITY_LEVELS)}",
            )
        for ns in namespaces:
            current = await read_namespace(kube, ns)
            if current is not None:
                owner = ((current.get("metadata") or {}).get("labels") or {}).get(ENV_LABEL)
                if owner is None:
                    raise Refused(
                        f"namespace {ns} already exists and is not part of an environment",
                        hint="choose another namespace with -N (a namespace this tool did not "
                        "create is never taken over nor deleted by it)",
                    )
                if owner != env:
                    raise Refused(
                        f"namespace {ns} belongs to environment {owner}",
                        hint="choose another namespace with -N",
                    )
                if (current.get("status") or {}).get("phase") == "Terminating":
                    raise Refused(f"namespace {ns} is being deleted", hint="wait and try again")
        # Every namespace of the environment carries the description.
        for ns in sorted({*namespaces, *state.namespaces}):
            done = await ensure_namespace(
                kube, ns, env, description, dry_run=opts.dry_run, pod_security=level
            )
            if done == "create":
                outcome.facts.created_namespaces.append(ns)
            if done:
                detail = f"environment {env}" + (f", {description!r}" if description else "")
                detail += f", Pod Security {level}"
                outcome.steps.append(Step(done, f"Namespace {ns}", detail))
            ns_state = state.namespaces.get(ns) or NamespaceState(ns)
            if not ns_state.config_exists:
                outcome.steps.append(Step("create", f"ConfigMap {ns}/metalk8s-environment"))
                if not opts.dry_run:
                    await write_env_config(kube, ns_state, env, {}, set())
    return outcome
