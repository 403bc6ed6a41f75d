"""Environments and the deployment lifecycle: create, add, upgrade, downgrade, remove, delete.

Every verb takes an options dataclass and returns an :class:`EnvOutcome` (the web UI calls the
same functions).  They all end in one convergence: the desired objects of the environment
(:mod:`engine.desired`, pure) are planned against what is deployed (found by our labels) and the
difference is applied and pruned (:mod:`cluster.apply`).  ``dry_run`` stops after the plan.

The state lives in the cluster only: each namespace's ``metalk8s-environment`` says which version
of which solution it runs (plus the options an administrator allowed, so that a later converge
does not lose them), and ``metalk8s-solutions-history`` keeps the revisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import IngressSettings, SolutionsConfiguration
from metalk8s_solutions.api.manifest import SolutionManifest
from metalk8s_solutions.api.monitoring import API_VERSION as MONITORING_API
from metalk8s_solutions.api.monitoring import load_monitoring
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.streams import read_limited
from metalk8s_solutions.api.versions import compare_versions, sort_versions, version_key
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.layout import crd_files
from metalk8s_solutions.archive.pinning import open_archive
from metalk8s_solutions.archive.product import operator_roles
from metalk8s_solutions.cluster.apply import (
    CERT_MANAGER_KINDS,
    KINDS,
    Action,
    Change,
    ObjectKey,
    Rollout,
    execute,
    get_object,
    key_of,
    list_managed,
    list_objects,
    plan,
    request,
    rollout_status,
    wait_available,
)
from metalk8s_solutions.cluster.envstate import (
    POD_SECURITY_LEVELS,
    EnvironmentState,
    NamespaceState,
)
from metalk8s_solutions.cluster.kube import Forbidden, Kube, connect
from metalk8s_solutions.cluster.resources import (
    IN_PROGRESS,
    Revision,
    append_history,
    custom_collection,
    delete_namespace,
    ensure_namespace,
    list_custom,
    list_ingress_classes,
    read_crd,
    read_environment_states,
    read_history,
    read_ingress,
    read_namespace,
    wait_gone,
    write_allowed_images,
    write_env_config,
    write_webhook,
)
from metalk8s_solutions.cluster.state import ENV_LABEL, Records, read_records
from metalk8s_solutions.engine import admission
from metalk8s_solutions.engine.adoption import (
    SaltObjects,
    adopt,
    deployed_by,
    find_salt_objects,
    role_names,
)
from metalk8s_solutions.engine.certificates import (
    KeyStore,
    read_cert_manager,
    read_unlabelled,
    with_issued_secrets,
)
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.crds import convert_v1beta1
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import (
    Settings,
    VersionContent,
    approved_solution,
    check_dns_label,
    check_env_name,
    check_not_system_namespace,
    check_roles,
    is_approved,
    operator_name,
    privileged_approval,
    privileged_rules,
    role_warnings,
    selector_for,
)
from metalk8s_solutions.engine.monitoring import RESOURCES as MONITORING_RESOURCES
from metalk8s_solutions.engine.monitoring import MonitoringSupport, monitoring_support
from metalk8s_solutions.engine.names import closest, did_you_mean
from metalk8s_solutions.engine.solution_ui import (
    IngressChoice,
    base_path,
    choose_ingress,
    ingress_url,
    ui_name,
)
from metalk8s_solutions.engine.state import (
    Context,
    Imported,
    Outcome,
    Step,
    resolve_active,
    scan_config,
)
from metalk8s_solutions.engine.wording import InstanceRef, Move, PlanFacts, plan_sentences
from metalk8s_solutions.errors import (
    Interrupted,
    InvalidInput,
    Missing,
    Refused,
    SolutionsError,
    command,
)

DEFAULT_TIMEOUT = 300.0
#: How long a converge awaits an operator Deployment it replaced (MetalK8s's).
REPLACED_TIMEOUT = 120.0
#: The Pod Security levels an environment may enforce, the default first.
POD_SECURITY: tuple[str, ...] = POD_SECURITY_LEVELS
MAX_FILE = 4 * 1024 * 1024


class RolloutFailed(SolutionsError):
    """The new operator did not become Available in time (and was rolled back, or not)."""

    exit_code = 1


@dataclass
class EnvOutcome(Outcome):
    """What a verb did; ``diffs`` holds the YAML diff of each object change (by target)."""

    diffs: dict[str, str] = field(default_factory=dict)
    #: the fields each object change touches, one line (by target; the diff is on request)
    summaries: dict[str, str] = field(default_factory=dict)
    rollouts: dict[str, str] = field(default_factory=dict)  # deployment -> last status
    #: what the plan does to solutions and instances (:func:`summary` says it in words)
    facts: PlanFacts = field(default_factory=PlanFacts)
    #: a dry-run upgrade: what each deployed version's archive -> the target's changes
    #: (:func:`engine.diff.compare`, one per deployed version)
    archive_diffs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> list[str]:
        """The plan in the application administrator's words, most important first."""
        return plan_sentences(self.facts)

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "summary": self.summary(),
            "diffs": self.diffs,
            "summaries": self.summaries,
            "rollouts": self.rollouts,
            "archiveDiffs": self.archive_diffs,
        }

    def add_changes(self, changes: Iterable[Change]) -> None:
        for change in changes:
            target = str(change.key)
            detail = (
                "drift: changed outside this tool, our fields are restored"
                if change.drift
                else change.note
            )
            self.steps.append(Step(change.action.value, target, detail))
            diff = change.diff()
            if diff:
                self.diffs[target] = diff
            summary = change.summary()
            if summary:
                self.summaries[target] = summary
            if change.drift:
                self.warnings.append(
                    f"{target} was changed outside this tool; restoring our fields"
                )


# -- archive contents (cached: archives are read-only once imported) -------------------------

_CONTENTS: dict[tuple[object, ...], VersionContent] = {}


def _file_key(path: Path) -> tuple[int, ...]:
    """What changes whenever a file's content may have (ctime cannot be set back by a user)."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load_version_content(archive: Path, pin: Pin | None = None) -> VersionContent:
    """The manifest, roles, CRDs and image digests of ``archive``, read straight from the ISO
    and checked against its ``pin`` (:class:`~metalk8s_solutions.errors.ArchiveChanged`)."""
    from metalk8s_solutions.images.catalog import load_catalog  # noqa: PLC0415 - heavy import

    key = (str(archive), *_file_key(archive), pin)
    cached = _CONTENTS.get(key)
    if cached is not None:
        return cached
    with open_archive(archive, pin) as iso:
        catalog = load_catalog(archive, iso)
        files = iso.files()
        roles = operator_roles(iso, str(archive))
        crds: list[Any] = []
        for path in crd_files(files):  # never the sample *_cr.yaml (SOL024)
            crds += load_yaml_documents(read_limited(iso, path, MAX_FILE), f"{archive}:{path}")
        monitoring = load_monitoring(iso)
    digests = {f"{image}:{tag}": digest for image, tag, digest in catalog.image_refs()}
    content = VersionContent(
        manifest=catalog.manifest,
        roles=tuple(r for r in roles if isinstance(r, dict)),
        crds=tuple(  # as applied: v1beta1 CRDs converted to v1
            convert_v1beta1(c)
            for c in crds
            if isinstance(c, dict) and c.get("kind") == "CustomResourceDefinition"
        ),
        digests=digests,
        monitoring=monitoring,
    )
    _CONTENTS[key] = content
    return content


@dataclass
class Inventory:
    """The imported versions (from SolutionsConfiguration) and the registry endpoint."""

    imported: list[Imported]
    endpoint: str
    active: dict[str, str]
    ingress: IngressSettings = field(default_factory=IngressSettings)

    def manifest(self, solution: str, version: str) -> SolutionManifest | None:
        for item in self.imported:
            m = item.manifest
            if m is not None and m.name == solution and m.version == version:
                return m
        return None

    def pin(self, archive: str) -> Pin | None:
        """The pin of an imported archive (None: not pinned, e.g. listed by hand)."""
        return next((i.pin for i in self.imported if i.archive == archive), None)

    def archive_of(self, solution: str, version: str) -> str | None:
        for item in self.imported:
            m = item.manifest
            if m is not None and m.name == solution and m.version == version:
                return item.archive
        return None

    def versions(self, solution: str) -> list[str]:
        found = [
            i.manifest.version for i in self.imported if i.manifest and i.manifest.name == solution
        ]
        return sort_versions(found)

    def require(self, solution: str, version: str) -> str:
        archive = self.archive_of(solution, version)
        if archive is None and not self.versions(solution):
            raise Refused(
                f"solution {solution} is not imported"
                + did_you_mean(solution, (i.manifest.name for i in self.imported if i.manifest)),
                hint=f"see '{command('list')}'; import its archive with: "
                f"{command('import', '<archive>')}",
            )
        if archive is None:
            known = ", ".join(self.versions(solution)) or "none"
            raise Refused(
                f"{solution} {version} is not imported (imported versions of {solution}: {known})"
                + did_you_mean(version, self.versions(solution)),
                hint=f"import the archive of {solution}-{version} first: "
                f"{command('import', '<archive>')}",
            )
        if not Path(archive).is_file():
            raise Refused(
                f"the archive of {solution}-{version} ({archive}) is missing",
                hint="put the file back, or unimport and import it again",
            )
        item = next((i for i in self.imported if i.archive == archive and i.problem), None)
        if item is not None:
            raise item.refusal(f"the archive of {solution}-{version} ({archive})")
        return archive

    async def contents(self, solutions: Iterable[str]) -> dict[tuple[str, str], VersionContent]:
        """Every imported version of ``solutions`` (the OperatorConfig lists them all)."""
        wanted = set(solutions)
        items = [
            i
            for i in self.imported
            if i.manifest and i.manifest.name in wanted and i.problem is None
        ]
        loaded = await asyncio.gather(
            *(asyncio.to_thread(load_version_content, Path(i.archive), i.pin) for i in items)
        )
        return {(c.name, c.version): c for c in loaded}


_SCANS: dict[tuple[object, ...], list[Imported]] = {}


def _scan(config: SolutionsConfiguration, records: Records | None = None) -> list[Imported]:
    """``scan_config``, remembered while no archive file (nor pin) changes."""
    recorded = {r.archive: r for versions in (records or {}).values() for r in versions}
    key: list[object] = []
    for archive in config.archives:
        record = recorded.get(archive)
        try:
            key.append(
                (
                    archive,
                    *_file_key(Path(archive)),
                    config.pins.get(archive),
                    record.pin if record else None,
                    record.id if record else None,
                )
            )
        except OSError:
            return scan_config(config, records)  # a missing file is reported afresh every time
    cached = _SCANS.get(tuple(key))
    if cached is None:
        cached = _SCANS[tuple(key)] = scan_config(config, records)
    return cached


async def read_inventory(ctx: Context, kube: Kube | None = None) -> Inventory:
    """What SolutionsConfiguration imports; with ``kube``, the cluster record completes it (the
    pins of archives listed by hand, what a changed or missing archive held)."""
    config = await ConfigStore(ctx.config_path).read_async()
    records: Records | None = None
    if kube is not None:
        try:
            records = (await read_records(kube))[0]
        except SolutionsError:  # a user who may not read the record sees the file's view
            records = None
    imported = await asyncio.to_thread(_scan, config, records)
    versions: dict[str, list[str]] = {}
    for item in imported:
        if item.manifest:
            versions.setdefault(item.manifest.name, []).append(item.manifest.version)
    return Inventory(
        imported,
        config.registry.endpoint,
        resolve_active(config.active, versions),
        config.ingress,
    )


@contextlib.asynccontextmanager
async def session(ctx: Context, kube: Kube | None = None) -> AsyncIterator[Kube]:
    """``kube`` when the caller has a connection (web UI, tests, benchmark), else a new one."""
    if kube is not None:
        yield kube
        return
    async with connect(ctx.target) as fresh:
        yield fresh


# -- the one convergence ------------------------------------------------------------------


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
            rollouts = await _wait(kube, replaced, REPLACED_TIMEOUT, say, outcome)
            outcome.warnings += [
                f"{key} was replaced (made by MetalK8s) and is not Available after "
                f"{REPLACED_TIMEOUT:.0f}s: {r.message}; see '{command('env', 'show', state.name)}'"
                for key, r in rollouts.items()
                if not r.ready
            ]
    return changes


async def _wait(
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


def _deployments(
    solution: str, namespaces: Iterable[str], with_ui: Iterable[str] = ()
) -> list[ObjectKey]:
    """The Deployments to await: the operator in each namespace, and the UI in ``with_ui``."""
    keys = [ObjectKey("Deployment", ns, operator_name(solution)) for ns in sorted(namespaces)]
    return keys + [ObjectKey("Deployment", ns, ui_name(solution)) for ns in sorted(with_ui)]


def _with_ui(inventory: Inventory, solution: str, versions: Mapping[str, str | None]) -> list[str]:
    """The namespaces of ``versions`` (ns -> version) whose version of ``solution`` has a UI."""
    found = []
    for ns, version in versions.items():
        manifest = inventory.manifest(solution, version) if version else None
        if manifest is not None and manifest.ui is not None:
            found.append(ns)
    return found


async def require_environment(kube: Kube, env: str) -> EnvironmentState:
    check_env_name(env)
    envs = await read_environment_states(kube, env)
    if env not in envs:
        near = closest(env, await environment_names(kube))
        if near is not None:
            raise Missing(
                f"environment {env} does not exist (did you mean {near}?)",
                hint=f"see '{command('env', 'list')}'",
            )
        raise Missing(
            f"environment {env} does not exist",
            hint=f"create it first: {command('env', 'create', env)}; "
            f"see '{command('env', 'list')}'",
        )
    return envs[env]


async def environment_names(kube: Kube) -> set[str]:
    """The names of every environment (from the labels of their namespaces only)."""
    data = await request(
        kube,
        "GET",
        "/api/v1/namespaces",
        action="listing environment namespaces",
        params={"labelSelector": ENV_LABEL},
    )
    items = (data or {}).get("items") or []
    return {str(((i.get("metadata") or {}).get("labels") or {}).get(ENV_LABEL, "")) for i in items}


def _pick_namespaces(state: EnvironmentState, wanted: Sequence[str]) -> list[str]:
    if not wanted:
        return sorted(state.namespaces)
    unknown = [ns for ns in wanted if ns not in state.namespaces]
    if unknown:
        raise InvalidInput(
            f"namespace(s) {', '.join(unknown)} are not part of environment {state.name} "
            f"(its namespaces: {', '.join(sorted(state.namespaces))})",
            hint="add a namespace with: "
            + command("env", "create", state.name, "-N", "<namespace>"),
        )
    return list(dict.fromkeys(wanted))


async def check_crds_served(kube: Kube, content: VersionContent) -> None:
    """Refuse unless the live CRDs serve every API version that ``content``'s CRDs serve."""
    missing: list[str] = []
    for crd in content.crds:
        name = str((crd.get("metadata") or {}).get("name", ""))
        needed = [
            str(v.get("name"))
            for v in (crd.get("spec") or {}).get("versions") or []
            if v.get("served")
        ]
        live = await read_crd(kube, name)
        if live is None:
            missing.append(f"CRD {name} is not in the cluster (needed: {', '.join(needed)})")
            continue
        served = {
            str(v.get("name"))
            for v in (live.get("spec") or {}).get("versions") or []
            if v.get("served")
        }
        lacking = [v for v in needed if v not in served]
        if lacking:
            missing.append(
                f"CRD {name} does not serve {', '.join(lacking)} (it serves "
                f"{', '.join(sorted(served)) or 'nothing'})"
            )
    if missing:
        sol = content.name
        raise Refused(
            f"{content.manifest.id} needs API versions the active CRDs do not serve: "
            + "; ".join(missing),
            hint=f"activate a version of {sol} whose CRDs serve them, e.g. "
            f"'{command('activate', sol, content.version)}', then run this command again",
        )


# -- create / delete environments --------------------------------------------------------


@dataclass(frozen=True)
class CreateEnvOptions:
    name: str
    namespaces: tuple[str, ...] = ()  # default: one namespace named like the environment
    description: str = ""
    dry_run: bool = False
    #: Pod Security level of the namespaces (None: the environment's current one, else restricted)
    pod_security: str | None = None


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


@dataclass(frozen=True)
class DeleteEnvOptions:
    name: str
    namespaces: tuple[str, ...] = ()  # default: every namespace (the whole environment)
    dry_run: bool = False
    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT


async def delete_environment(
    ctx: Context, opts: DeleteEnvOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Delete an environment's namespaces (all, or some) and its cluster-scoped objects."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.name)
        doomed = _pick_namespaces(state, opts.namespaces)
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
        await _lost_with(kube, inventory, state, doomed, outcome.facts)
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


# -- list / show / status -----------------------------------------------------------------


async def list_environments(
    ctx: Context, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    async with session(ctx, connection) as kube:
        envs = await read_environment_states(kube)
    return [envs[name].to_json() for name in sorted(envs)]


async def show_environment(
    ctx: Context, name: str, *, connection: Kube | None = None
) -> dict[str, Any]:
    """The environment, each solution's operator (and UI) status, and the revision history."""
    inventory = await read_inventory(ctx)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, name)
        result = state.to_json()
        for ns, ns_state in sorted(state.namespaces.items()):
            entry = result["namespaces"][ns]
            entry["terminating"] = ns_state.terminating
            entry["clusterScopeAllowed"] = sorted(ns_state.cluster_scope)
            entry["privilegedRolesAllowed"] = sorted(
                {approved_solution(a) for a in ns_state.privileged}
            )
            entry["podSecurity"] = ns_state.pod_security
            entry["webhook"] = sorted(ns_state.webhook)
            # --allow-image exceptions, as recorded: <solution>=<image>
            entry["allowedImages"] = sorted(ns_state.allowed_images)
            history = await read_history(kube, ns)
            solutions: dict[str, Any] = {}
            for sol in sorted({*ns_state.config, *history}):
                status: str | None = None
                by: str | None = None
                if sol in ns_state.config:
                    key = ObjectKey("Deployment", ns, operator_name(sol))
                    live = await get_object(kube, key)
                    only = rollout_status(live) if live else Rollout(False, "not found")
                    status = ("Available: " if only.ready else "Not available: ") + only.message
                    by = deployed_by(live, sol)
                version = ns_state.config.get(sol)
                solutions[sol] = {
                    "version": version,
                    "operator": status,
                    "deployedBy": by,
                    "ui": await _ui_view(kube, inventory, name, ns, sol, version),
                    "history": [r.to_json() for r in history.get(sol, [])],
                }
            entry["solutions"] = solutions
    return result


async def _ui_view(
    kube: Kube, inventory: Inventory, env: str, ns: str, solution: str, version: str | None
) -> dict[str, Any] | None:
    """Where the solution's own UI is and whether it is up; None when this version has none.

    ``url`` is the Ingress's address when it is known (a host, or the controller's address),
    else None: the UI is then reached through ``solutions ui`` at ``path``.
    """
    manifest = inventory.manifest(solution, version) if version else None
    if manifest is None or manifest.ui is None:
        return None
    key = ObjectKey("Deployment", ns, ui_name(solution))
    rollout = (await wait_available(kube, [key], timeout=0, say=lambda _: None))[key]
    try:
        ingress = await read_ingress(kube, ns, ui_name(solution))
    except Forbidden:  # who may not read Ingresses still gets the route of 'solutions ui'
        ingress = None
    return {
        "path": base_path(env, ns, solution),
        "ingress": ingress is not None,
        "url": ingress_url(ingress) if ingress is not None else None,
        "status": ("Available: " if rollout.ready else "Not available: ") + rollout.message,
    }


async def status(ctx: Context, *, connection: Kube | None = None) -> dict[str, Any]:
    """The whole-state view: ``available``, ``config`` and ``environments`` (the brief's pillar)."""
    config = await ConfigStore(ctx.config_path).read_async()
    async with session(ctx, connection) as kube:
        records, _ = await read_records(kube)
        envs = await read_environment_states(kube)
    return {
        "available": {
            sol: [r.to_json() for r in sorted(versions, key=lambda r: version_key(r.version))]
            for sol, versions in sorted(records.items())
        },
        "config": {
            "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
            "kind": "SolutionsConfiguration",
            "archives": list(config.archives),
            "active": dict(config.active),
        },
        "environments": {name: envs[name].to_json() for name in sorted(envs)},
    }


# -- add / upgrade / delete a solution ------------------------------------------------------


@dataclass(frozen=True)
class AddSolutionOptions:
    env: str
    solution: str
    version: str
    namespaces: tuple[str, ...] = ()  # default: every namespace of the environment
    allow_cluster_scope: bool = False
    dry_run: bool = False
    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT
    allow_privileged_role: bool = False  # approve escalate/bind/impersonate, exec, tokens
    webhook: bool = False  # mount Secret <sol>-cert at /cert, as MetalK8s 124 (kept until removed)
    #: image references pods may use besides the imported ones (engine/admission.py), kept
    #: on the Namespace until the solution is deleted from it
    allow_images: tuple[str, ...] = ()


async def add_solution(
    ctx: Context, opts: AddSolutionOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Deploy ``solution`` ``version`` in the environment's namespaces (one version each)."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.env)
        targets = _pick_namespaces(state, opts.namespaces)
        inventory = await read_inventory(ctx, kube)
        archive = inventory.require(opts.solution, opts.version)
        content = await asyncio.to_thread(
            load_version_content, Path(archive), inventory.pin(archive)
        )
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
            await _enable_webhook(kube, state, opts.solution, targets, outcome)
        if refs:
            await _allow_images(kube, state, opts.solution, targets, refs, outcome)
        return await _change_versions(
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
            rollback=False,
            again=_again("add-solution", opts.env, opts.solution, opts.version, opts),
        )


async def _enable_webhook(
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


async def _allow_images(
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


@dataclass(frozen=True)
class UpgradeOptions:
    env: str
    solution: str
    version: str  # higher (upgrade) or lower (downgrade) than the deployed one
    namespaces: tuple[str, ...] = ()
    allow_cluster_scope: bool = False
    dry_run: bool = False
    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT
    rollback: bool = True  # back to the previous version when not Available within timeout
    allow_privileged_role: bool = False  # approve escalate/bind/impersonate, exec, tokens
    #: as :attr:`AddSolutionOptions.webhook` (solutions.sh's add-solution also changes versions)
    webhook: bool = False


async def upgrade_solution(
    ctx: Context, opts: UpgradeOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Change the version of a deployed solution, wait, and roll back when it does not come up."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.env)
        candidates = _pick_namespaces(state, opts.namespaces)
        targets = [ns for ns in candidates if opts.solution in state.namespaces[ns].config]
        if not targets:
            deployed = {s for ns in state.namespaces.values() for s in ns.config}
            raise Refused(
                f"{opts.solution} is not deployed in environment {opts.env}"
                + (f" (namespaces {', '.join(candidates)})" if opts.namespaces else "")
                + did_you_mean(opts.solution, deployed),
                hint="deploy it with: "
                + command("env", "add-solution", opts.env, opts.solution, opts.version),
            )
        inventory = await read_inventory(ctx, kube)
        archive = inventory.require(opts.solution, opts.version)
        content = await asyncio.to_thread(
            load_version_content, Path(archive), inventory.pin(archive)
        )
        await check_crds_served(kube, content)
        if opts.dry_run:  # what the new archive changes (solutions diff), from each deployed one
            from metalk8s_solutions.engine.diff import upgrade_diffs  # noqa: PLC0415

            deployed = {state.namespaces[ns].config[opts.solution] for ns in targets}
            paths = {v: inventory.archive_of(opts.solution, v) for v in sorted(deployed)}
            pins = {p: inventory.pin(p) for p in [archive, *paths.values()] if p is not None}
            diffs, notes = await asyncio.to_thread(
                upgrade_diffs, paths, opts.version, archive, pins
            )
            outcome.archive_diffs += diffs
            outcome.warnings += notes
        if opts.webhook:
            await _enable_webhook(kube, state, opts.solution, targets, outcome)
        for ns in targets:
            current = state.namespaces[ns].config[opts.solution]
            if current != opts.version:
                way = "upgrade" if compare_versions(opts.version, current) > 0 else "downgrade"
                outcome.steps.append(
                    Step(way, f"{opts.solution} in {opts.env}/{ns}", f"{current} -> {opts.version}")
                )
        return await _change_versions(
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
            again=_again("upgrade", opts.env, opts.solution, opts.version, opts),
        )


def _again(
    verb: str, env: str, solution: str, version: str, opts: AddSolutionOptions | UpgradeOptions
) -> str:
    """The command that does (or finishes) what ``opts`` asked, to paste after an interruption."""
    words = [w for ns in opts.namespaces for w in ("-N", ns)]
    if opts.allow_cluster_scope:
        words.append("--allow-cluster-scope")
    if opts.allow_privileged_role:
        words.append("--allow-privileged-role")
    if opts.webhook:
        words.append("--webhook")
    if verb == "add-solution":
        return command("env", "add-solution", env, solution, version, *words)
    return command("env", "upgrade", env, solution, version, *words)


async def _pending(kube: Kube, ns: str, solution: str) -> Revision | None:
    """The revision of ``solution`` in ``ns`` a command recorded and did not finish, if any."""
    entries = (await read_history(kube, ns)).get(solution, [])
    return entries[-1] if entries and entries[-1].result == IN_PROGRESS else None


async def _settle(kube: Kube, ns: NamespaceState, solution: str, rev: Revision) -> None:
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
                await _settle(kube, ns, solution, entries[-1])
                settled += 1
    return settled


def _interrupted(
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
    return Interrupted(
        f"{solution}: " + "; ".join(parts),
        hint=f"finish it with: {again}",
    )


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


async def _change_versions(
    ctx: Context,
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    outcome: EnvOutcome,
    solution: str,
    wanted: Mapping[str, str],
    *,
    allow_cluster_scope: bool,
    allow_privileged_role: bool,
    content: VersionContent,
    wait: bool,
    timeout: float,  # noqa: ASYNC109 - a polling deadline
    rollback: bool,
    again: str,
) -> EnvOutcome:
    """Record the revisions :data:`IN_PROGRESS` first, change the versions, await, complete them.

    A revision a previous command left in progress towards ``wanted`` is resumed (awaited and
    completed); one towards another version is completed from what the cluster shows.
    """
    previous = {ns: state.namespaces[ns].config.get(solution) for ns in wanted}
    configs = state.configs()
    for ns, version in wanted.items():
        configs[ns][solution] = version
    scope, approved = _approvals(
        state,
        solution,
        wanted,
        content,
        cluster=allow_cluster_scope,
        privileged=allow_privileged_role,
    )
    cluster_scope = frozenset(s for allowed in scope.values() for s in allowed)
    privileged = frozenset(s for allowed in approved.values() for s in allowed)
    outcome.warnings += role_warnings(content, cluster_scope_allowed=solution in cluster_scope)
    outcome.facts.env = state.name
    outcome.facts.moves += [Move(ns, solution, previous[ns], wanted[ns]) for ns in wanted]
    await _instances_of(kube, [content], wanted, outcome.facts)
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
        pending = await _pending(kube, ns, solution)
        if pending is None:
            continue
        if pending.to_version == wanted[ns] == previous[ns]:
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
            await _settle(kube, state.namespaces[ns], solution, pending)
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
            wait=wait,
            timeout=timeout,
            rollback=rollback,
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise _interrupted(
            state.name, solution, origin, wanted, written, revisions, again
        ) from None


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
    for ns in changed_ns:
        await write_env_config(
            kube, state.namespaces[ns], state.name, configs[ns], scope[ns], approved[ns]
        )
        written[ns] = wanted[ns]
    own = _deployments(solution, wanted, _with_ui(inventory, solution, wanted))
    await converge(kube, inventory, state, outcome, ctx.say, awaited=own)
    if not wait:
        for ns in moved:
            await append_history(
                kube,
                ns,
                solution,
                origin[ns],
                wanted[ns],
                "applied",
                "not awaited",
                revision=revisions[ns],
            )
        return outcome
    rollouts = await _wait(kube, own, timeout, ctx.say, outcome)
    failed: dict[str, str] = {}
    for key, r in rollouts.items():
        if not r.ready:
            what = "UI" if key.name == ui_name(solution) else "operator"
            failed[key.namespace] = "; ".join(
                filter(None, (failed.get(key.namespace), f"{what}: {r.message}"))
            )
    if not failed:
        for ns in moved:
            await append_history(
                kube, ns, solution, origin[ns], wanted[ns], "succeeded", revision=revisions[ns]
            )
        return outcome
    where = "; ".join(f"{state.name}/{ns}: {msg}" for ns, msg in sorted(failed.items()))
    reason = f"{solution} did not become Available within {timeout:.0f}s ({where})"
    back = {ns: v for ns, v in origin.items() if v is not None and ns in failed and v != wanted[ns]}
    if not rollback or not back:
        for ns in moved:
            await append_history(
                kube,
                ns,
                solution,
                origin[ns],
                wanted[ns],
                "failed",
                reason,
                revision=revisions[ns],
            )
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
    back_keys = _deployments(solution, back, _with_ui(inventory, solution, back))
    back_state = await _wait(kube, back_keys, timeout, ctx.say, outcome)
    recovered = all(r.ready for r in back_state.values())
    for ns in moved:
        result = "rolled-back" if ns in back else "succeeded"
        await append_history(
            kube,
            ns,
            solution,
            origin[ns],
            wanted[ns],
            result,
            reason if ns in back else "",
            revision=revisions[ns],
        )
    versions = ", ".join(f"{ns}: {v}" for ns, v in sorted(back.items()))
    raise RolloutFailed(
        f"{reason}; rolled back to the previous revision ({versions})"
        + ("" if recovered else ", which is not Available either"),
        hint=f"see '{command('env', 'show', state.name)}'; use --no-rollback to keep the new "
        "version for investigation",
    )


@dataclass(frozen=True)
class DeleteSolutionOptions:
    env: str
    solution: str
    namespaces: tuple[str, ...] = ()
    delete_data: bool = False  # also delete the solution's custom resources
    dry_run: bool = False
    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT


async def _custom_resources(
    kube: Kube, content: VersionContent | None, namespaces: Iterable[str]
) -> list[tuple[str, str]]:
    """(collection path, "Kind/name") of each custom resource of the solution's CRDs."""
    found: list[tuple[str, str]] = []
    if content is None:
        return found
    for crd in content.crds:
        spec = crd.get("spec") or {}
        name = str((crd.get("metadata") or {}).get("name", ""))
        live = await read_crd(kube, name)
        if live is None or (live.get("spec") or {}).get("scope") != "Namespaced":
            continue
        versions = [v for v in (live.get("spec") or {}).get("versions") or [] if v.get("served")]
        if not versions:
            continue
        version = next((v for v in versions if v.get("storage")), versions[0])["name"]
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        kind = (spec.get("names") or {}).get("kind", plural)
        for ns in namespaces:
            for item in await list_custom(kube, group, version, plural, ns):
                item_name = item["metadata"]["name"]
                found.append(
                    (
                        f"{custom_collection(group, version, plural, ns)}/{item_name}",
                        f"{kind} {ns}/{item_name}",
                    )
                )
    return found


def _refs(resources: Iterable[tuple[str, str]]) -> list[InstanceRef]:
    """The instances of :func:`_custom_resources`' labels (``Kind namespace/name``)."""
    found: set[InstanceRef] = set()
    for _, label in resources:
        kind, _, where = label.partition(" ")
        namespace, _, name = where.partition("/")
        found.add(InstanceRef(kind, namespace, name))
    return sorted(found)


async def _lost_with(
    kube: Kube,
    inventory: Inventory,
    state: EnvironmentState,
    doomed: Sequence[str],
    facts: PlanFacts,
) -> None:
    """The facts of deleting namespaces ``doomed``: the solutions and instances they hold."""
    facts.env = state.name
    facts.deleted_namespaces = list(doomed)
    facts.data_deleted = True
    facts.moves = [
        Move(ns, sol, version, None)
        for ns in doomed
        for sol, version in sorted(state.namespaces[ns].config.items())
    ]
    solutions = {m.solution for m in facts.moves}
    if solutions:
        try:
            contents = list((await inventory.contents(solutions)).values())
        except (SolutionsError, OSError):  # an archive unreadable now: the deletion goes on
            facts.instances_read = False
            return
        await _instances_of(kube, contents, doomed, facts)


async def _instances_of(
    kube: Kube, contents: Iterable[VersionContent], namespaces: Iterable[str], facts: PlanFacts
) -> None:
    """The instances of ``contents``' kinds in ``namespaces``, into ``facts`` (informational:
    a user who may not list them still gets the plan, which then says so)."""
    found: list[tuple[str, str]] = []
    try:
        for content in contents:
            found += await _custom_resources(kube, content, list(namespaces))
    except SolutionsError:
        facts.instances_read = False
        return
    facts.instances = _refs(found)


async def delete_solution(  # noqa: PLR0912 - data, config, prune, wait
    ctx: Context, opts: DeleteSolutionOptions, *, connection: Kube | None = None
) -> EnvOutcome:
    """Remove a solution from an environment: its operator and everything deployed for it."""
    outcome = EnvOutcome(dry_run=opts.dry_run)
    async with session(ctx, connection) as kube:
        state = await require_environment(kube, opts.env)
        candidates = _pick_namespaces(state, opts.namespaces)
        targets = [ns for ns in candidates if opts.solution in state.namespaces[ns].config]
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
        resources = await _custom_resources(kube, content, targets)
        outcome.facts = PlanFacts(
            state.name,
            [
                Move(ns, opts.solution, state.namespaces[ns].config[opts.solution], None)
                for ns in targets
            ],
            _refs(resources),
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
            pending = await _pending(kube, ns, opts.solution)
            if pending is not None:
                await _settle(kube, state.namespaces[ns], opts.solution, pending)
        if resources and opts.delete_data:
            # While the operator still runs, so that it can process its finalizers.
            for path, _ in resources:
                await _delete_path(kube, path)
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
        for found in await _custom_resources(kube, content, namespaces):
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
    outcome.facts = PlanFacts(state.name, instances=_refs(resources), data_deleted=True)
    if opts.dry_run:
        return outcome
    for path, _ in resources:
        await _delete_path(kube, path)
    if opts.wait:
        left = await wait_gone(kube, [p for p, _ in resources], timeout=opts.timeout, say=ctx.say)
        if left:
            outcome.warnings.append(
                f"{len(left)} custom resource(s) still terminating (no operator runs to "
                "process their finalizers)"
            )
    return outcome


async def _delete_path(kube: Kube, path: str) -> None:
    await request(kube, "DELETE", path, action=f"deleting {path}", missing_ok=True)


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


# -- converge (repair) ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConvergeOptions:
    envs: tuple[str, ...] = ()  # default: every environment
    dry_run: bool = False
    wait: bool = False
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = 8


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
                for key in _deployments(sol, [ns], _with_ui(inventory, sol, {ns: version}))
            ]
            rollouts = await _wait(kube, keys, opts.timeout, ctx.say, outcome)
        if not opts.dry_run:  # what an interrupted command left in progress, as it is now
            for n in names:
                await settle_interrupted(kube, states[n])
        if opts.wait and not opts.dry_run:
            bad = [f"{k}: {r.message}" for k, r in rollouts.items() if not r.ready]
            if bad:
                raise RolloutFailed("not Available in time: " + "; ".join(bad))
    return outcome


__all__ = [
    "AddSolutionOptions",
    "ConvergeOptions",
    "CreateEnvOptions",
    "DeleteEnvOptions",
    "DeleteSolutionOptions",
    "EnvOutcome",
    "Inventory",
    "RolloutFailed",
    "UpgradeOptions",
    "add_solution",
    "check_crds_served",
    "converge_environments",
    "create_environment",
    "delete_environment",
    "delete_solution",
    "list_environments",
    "load_version_content",
    "plan_environment",
    "read_ingress_choice",
    "read_inventory",
    "read_monitoring_support",
    "require_environment",
    "session",
    "settle_interrupted",
    "show_environment",
    "status",
    "upgrade_solution",
]
