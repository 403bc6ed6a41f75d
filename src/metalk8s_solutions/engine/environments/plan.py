"""The one convergence: plan an environment's desired objects against the live ones, apply."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from metalk8s_solutions.api.config import IngressSettings
from metalk8s_solutions.api.monitoring import API_VERSION as MONITORING_API
from metalk8s_solutions.cluster.apply import (
    CERT_MANAGER_KINDS,
    KINDS,
    Action,
    Change,
    ObjectKey,
    Rollout,
    execute,
    key_of,
    list_managed,
    list_objects,
    plan,
    request,
    wait_available,
)
from metalk8s_solutions.cluster.envstate import EnvironmentState
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import list_ingress_classes
from metalk8s_solutions.engine.adoption import SaltObjects, adopt, find_salt_objects, role_names
from metalk8s_solutions.engine.certificates import (
    KeyStore,
    read_cert_manager,
    read_unlabelled,
    with_issued_secrets,
)
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import Settings, operator_name, selector_for
from metalk8s_solutions.engine.environments.core import EnvOutcome, Inventory
from metalk8s_solutions.engine.monitoring import RESOURCES as MONITORING_RESOURCES
from metalk8s_solutions.engine.monitoring import MonitoringSupport, monitoring_support
from metalk8s_solutions.engine.solution_ui import IngressChoice, choose_ingress, ui_name
from metalk8s_solutions.errors import command

# -- the one convergence ------------------------------------------------------------------


#: How long a converge awaits an operator Deployment it replaced (MetalK8s's).
REPLACED_TIMEOUT = 120.0


async def read_monitoring_support(kube: Kube) -> MonitoringSupport:
    """Which Prometheus Operator kinds the cluster serves, in one request.

    The discovery document of ``monitoring.coreos.com/v1`` names the resources of the
    installed CRDs (404 when none is); listing every CRD of a cluster would cost megabytes.
    """
    group_version = MONITORING_API
    data = await request(
        kube,
        "GET",
        f"/apis/{group_version}",
        action=f"discovering {group_version}",
        missing_ok=True,
    )
    group = group_version.split("/", 1)[0]
    served = {str(r.get("name")) for r in (data or {}).get("resources") or []}
    return monitoring_support(
        f"{plural}.{group}" for plural in MONITORING_RESOURCES.values() if plural in served
    )


async def read_ingress_choice(
    kube: Kube, settings: IngressSettings, env: str, namespaces: Sequence[str]
) -> IngressChoice:
    """Which IngressClass the UIs of Solutions get (one request), or the line saying none.

    Who may not list IngressClasses (cluster-scoped) keeps the class named in the configuration,
    or else the one the environment's UI Ingresses already have, so that a converge never
    depends on who runs it.
    """
    if not settings.enabled:
        return IngressChoice(None)
    class_name = settings.class_name
    classes = await list_ingress_classes(kube)
    if classes is None:
        if class_name is None:
            kind = KINDS["Ingress"]
            lists = await asyncio.gather(
                *(list_objects(kube, kind, selector_for(env), ns) for ns in namespaces)
            )
            used = [(o.get("spec") or {}).get("ingressClassName") for o in chain(*lists)]
            class_name = next((str(c) for c in used if c), None)
        if class_name is None:
            return IngressChoice(
                None,
                "you may not list IngressClasses, so Solution UIs get no Ingress and are "
                f"reachable through '{command('ui')}' only; set ingress.className in the "
                "configuration to choose one",
            )
        classes = [{"metadata": {"name": class_name}}]
    return choose_ingress(
        classes, class_name=class_name, host=settings.host, tls_secret=settings.tls_secret
    )


async def plan_environment(
    kube: Kube,
    inventory: Inventory,
    env: str,
    configs: Mapping[str, Mapping[str, str]],
    cluster_scope: frozenset[str],
    *,
    privileged: frozenset[str] = frozenset(),
    webhook: frozenset[tuple[str, str]] = frozenset(),
    allowed_images: frozenset[str] = frozenset(),
    support: MonitoringSupport | None = None,
    warnings: list[str] | None = None,
    previous: Mapping[str, Mapping[str, str]] | None = None,
    doomed_namespaces: Collection[str] = (),
) -> list[Change]:
    """What must change so that ``env`` runs exactly ``configs`` (ns -> {solution: version}).

    ``support`` is read from the cluster when not given.  When a deployed version declares
    monitoring that the cluster cannot take, the one line that says so goes to ``warnings``.
    What MetalK8s deployed for a solution of ``configs`` or of ``previous`` (the namespaces'
    configuration before this change) is taken over (:mod:`engine.adoption`);
    ``doomed_namespaces`` are being deleted (their bindings no longer count).
    """
    solutions = {sol for config in configs.values() for sol in config}
    for config in configs.values():
        for sol, version in config.items():
            inventory.require(sol, version)
    contents = await inventory.contents(solutions)
    if support is None:
        support = await read_monitoring_support(kube)
    declared = any(
        contents[(sol, version)].declares_monitoring
        for config in configs.values()
        for sol, version in config.items()
        if (sol, version) in contents
    )
    messages = [support.message if declared else None]
    ingress = IngressChoice(None)
    if any(
        contents[(sol, version)].manifest.ui is not None
        for config in configs.values()
        for sol, version in config.items()
        if (sol, version) in contents
    ):
        ingress = await read_ingress_choice(kube, inventory.ingress, env, sorted(configs))
        messages.append(ingress.message)
    for message in messages:
        if message and warnings is not None and message not in warnings:
            warnings.append(message)
    cert_manager = await read_cert_manager(kube)
    optional = {*support.kinds, *(CERT_MANAGER_KINDS if cert_manager else ())}
    live = await list_managed(kube, selector_for(env), sorted(configs), optional=optional)
    settings = Settings(
        endpoint=inventory.endpoint,
        cluster_scope=cluster_scope,
        privileged=privileged,
        ingress=ingress.target,
        webhook=webhook,
        keys=KeyStore.from_secrets(live, cert_manager=cert_manager),  # certificates are kept
        allowed_images=allowed_images,
    )
    desired = desired_environment(env, configs, contents, settings, monitoring=support)
    assert settings.keys is not None  # noqa: S101 - set above
    mine = set(settings.keys.live)
    new = [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in desired
        if o["kind"] == "Secret" and (o["metadata"]["namespace"], o["metadata"]["name"]) not in mine
    ]
    if new:  # a Secret of that name someone else made keeps its certificate
        keys = await read_unlabelled(kube, settings.keys, new)
        if set(keys.live) != mine:
            settings = dataclasses.replace(settings, keys=keys)
            desired = desired_environment(env, configs, contents, settings, monitoring=support)
    changes = plan(desired, live)
    found = await metalk8s_objects(
        kube, inventory, configs, previous or {}, live, doomed_namespaces=doomed_namespaces
    )
    return await with_issued_secrets(kube, adopt(changes, found) if found else changes)


async def metalk8s_objects(
    kube: Kube,
    inventory: Inventory,
    configs: Mapping[str, Mapping[str, str]],
    previous: Mapping[str, Mapping[str, str]],
    live: Iterable[Mapping[str, Any]] = (),
    *,
    doomed_namespaces: Collection[str] = (),
) -> SaltObjects:
    """What MetalK8s deployed for the solutions of ``configs`` and ``previous``.

    Looked for only where a solution runs without an operator Deployment of ours among ``live``
    (so that a converge of an environment we deployed sends no extra request).
    """
    ours = {key_of(obj) for obj in live}
    wanted: dict[str, set[str]] = {}
    for ns in {*configs, *previous}:
        for sol in {*configs.get(ns, {}), *previous.get(ns, {})}:
            if ObjectKey("Deployment", ns, operator_name(sol)) not in ours:
                wanted.setdefault(ns, set()).add(sol)
    if not wanted:
        return SaltObjects()
    contents = await inventory.contents({s for sols in wanted.values() for s in sols})
    return await find_salt_objects(
        kube, wanted, role_names(contents.values()), doomed_namespaces=doomed_namespaces
    )


async def converge(
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    outcome: EnvOutcome,
    say: Callable[[str], None],
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    cluster_scope: frozenset[str] | None = None,
    privileged: frozenset[str] | None = None,
    support: MonitoringSupport | None = None,
    webhook: frozenset[tuple[str, str]] | None = None,
    previous: Mapping[str, Mapping[str, str]] | None = None,
    awaited: Collection[ObjectKey] = (),
) -> list[Change]:
    """Plan ``state`` (or ``configs``) and, unless the outcome is a dry run, apply the plan.

    ``support`` (the Prometheus Operator kinds served) is read once here when not given.
    ``previous`` is what the namespaces ran before this command (default: ``state``), so that
    what MetalK8s deployed for a solution being removed is found (:mod:`engine.adoption`).
    A Deployment replaced (MetalK8s's) is awaited, unless in ``awaited`` (the caller's).
    """
    changes = await plan_environment(
        kube,
        inventory,
        state.name,
        configs if configs is not None else state.configs(),
        cluster_scope if cluster_scope is not None else state.cluster_scope(),
        privileged=privileged if privileged is not None else state.privileged(),
        webhook=webhook if webhook is not None else state.webhook(),
        allowed_images=state.allowed_images(),
        support=support,
        warnings=outcome.warnings,
        previous=previous if previous is not None else state.configs(),
    )
    outcome.add_changes(changes)
    if changes and not outcome.dry_run:
        await execute(kube, changes, say)
        # A Deployment taken over from MetalK8s was deleted and created: its rollout is
        # awaited and reported here, unless the caller awaits it itself.
        replaced = [
            c.key
            for c in changes
            if c.action is Action.REPLACE and c.key.kind == "Deployment" and c.key not in awaited
        ]
        if replaced:
            rollouts = await wait_rollouts(kube, replaced, REPLACED_TIMEOUT, say, outcome)
            outcome.warnings += [
                f"{key} was replaced (made by MetalK8s) and is not Available after "
                f"{REPLACED_TIMEOUT:.0f}s: {r.message}; see '{command('env', 'show', state.name)}'"
                for key, r in rollouts.items()
                if not r.ready
            ]
    return changes


async def wait_rollouts(
    kube: Kube,
    keys: Sequence[ObjectKey],
    timeout: float,  # noqa: ASYNC109 - a polling deadline
    say: Callable[[str], None],
    outcome: EnvOutcome,
) -> dict[ObjectKey, Rollout]:
    say(f"waiting up to {timeout:.0f}s for {len(keys)} operator(s) to be Available")
    state = await wait_available(kube, keys, timeout=timeout, say=say)
    for key, rollout in state.items():
        outcome.rollouts[str(key)] = rollout.message
    return state


def deployments_to_await(
    solution: str, namespaces: Iterable[str], with_ui: Iterable[str] = ()
) -> list[ObjectKey]:
    """The Deployments to await: the operator in each namespace, and the UI in ``with_ui``."""
    keys = [ObjectKey("Deployment", ns, operator_name(solution)) for ns in sorted(namespaces)]
    return keys + [ObjectKey("Deployment", ns, ui_name(solution)) for ns in sorted(with_ui)]


def with_ui(inventory: Inventory, solution: str, versions: Mapping[str, str | None]) -> list[str]:
    """The namespaces of ``versions`` (ns -> version) whose version of ``solution`` has a UI."""
    found = []
    for ns, version in versions.items():
        manifest = inventory.manifest(solution, version) if version else None
        if manifest is not None and manifest.ui is not None:
            found.append(ns)
    return found
