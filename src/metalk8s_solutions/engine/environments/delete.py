"""``env delete``: an environment's namespaces (all, or some) and its cluster-scoped objects."""

from __future__ import annotations

from metalk8s_solutions.cluster.apply import (
    KINDS,
    Action,
    Change,
    ObjectKey,
    execute,
    key_of,
    list_objects,
)
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import delete_namespace, wait_gone
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine.environments.core import (
    EnvOutcome,
    pick_namespaces,
    read_inventory,
    require_environment,
    session,
)
from metalk8s_solutions.engine.environments.data import lost_with
from metalk8s_solutions.engine.environments.options import DeleteEnvOptions
from metalk8s_solutions.engine.environments.plan import metalk8s_objects, plan_environment
from metalk8s_solutions.engine.state import Context, Step


async def delete_environment(
    ctx: Context, opts: DeleteEnvOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Delete an environment's namespaces (all, or some) and its cluster-scoped objects."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.name)
        doomed = pick_namespaces(state, opts.namespaces)
        remaining = [ns for ns in state.namespaces if ns not in doomed]
        for ns in doomed:
            running = ", ".join(f"{s} {v}" for s, v in sorted(state.namespaces[ns].config.items()))
            outcome.steps.append(
                Step(
                    "delete",
                    f"Namespace {ns}",
                    f"and everything in it ({running})" if running else "",
                )
            )
        inventory = await read_inventory(ctx, kube)
        await lost_with(kube, inventory, state, doomed, outcome.facts)
        if remaining:
            # What is left converges: cluster-scoped bindings lose the deleted namespaces.
            configs = {ns: state.namespaces[ns].config for ns in remaining}
            changes = await plan_environment(
                kube,
                inventory,
                state.name,
                configs,
                state.cluster_scope(),
                privileged=state.privileged(),
                webhook=state.webhook(),
                allowed_images=state.allowed_images(),
                doomed_namespaces=doomed,
            )
            changes = [c for c in changes if not c.key.namespace or c.key.namespace in remaining]
        else:
            changes = []
            selector = {ENV_LABEL: state.name, "app.kubernetes.io/managed-by": "metalk8s-solutions"}
            cluster_kinds = (
                "ClusterRoleBinding",
                "ClusterRole",
                "ValidatingAdmissionPolicyBinding",  # engine/admission.py
                "ValidatingAdmissionPolicy",
            )
            for kind in (KINDS[k] for k in cluster_kinds):
                for obj in await list_objects(kube, kind, selector):
                    changes.append(
                        Change(
                            Action.DELETE,
                            ObjectKey(kind.kind, "", obj["metadata"]["name"]),
                            live=obj,
                        )
                    )
        # What MetalK8s deployed goes with the namespaces, but for its ClusterRoles (shared by
        # name between environments): deleted when no other binding grants them.
        found = await metalk8s_objects(
            kube,
            inventory,
            {ns: state.namespaces[ns].config for ns in doomed},
            {},
            doomed_namespaces=doomed,
        )
        changes += [
            Change(Action.DELETE, key_of(obj), live=obj, note="made by MetalK8s, now unused")
            for obj in found.cluster_roles
            if key_of(obj) not in {c.key for c in changes}
        ]
        outcome.add_changes(changes)
        if opts.dry_run:
            return outcome
        for ns in doomed:
            await delete_namespace(kube, ns)
        await execute(kube, changes, ctx.say)
        if opts.wait:
            left = await wait_gone(
                kube,
                [f"/api/v1/namespaces/{ns}" for ns in doomed],
                timeout=opts.timeout,
                say=ctx.say,
            )
            if left:
                outcome.warnings.append(
                    f"{len(left)} namespace(s) still terminating after {opts.timeout:.0f}s: "
                    + ", ".join(p.rsplit("/", 1)[-1] for p in left)
                    + " (a finalizer may be waiting for an operator that is gone)"
                )
    return outcome
