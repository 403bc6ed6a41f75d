"""Converge the cluster to SolutionsConfiguration: the one engine behind every archive verb.

SolutionsConfiguration is the desired state (which archives are available, which version of each
solution is active).  :func:`converge` first PLANS without changing anything — validating new
archives, checking CRD transitions, refusing removals still in use — then EXECUTES in an order that
never breaks a running environment:

1. make the images of new archives available (push mode pushes them; the built-in registry serves
   whatever the configuration lists);
2. activate: apply each active version's CRDs (checked, migrated, storedVersions trimmed);
3. deactivate: delete the CRDs of solutions no longer active (refused while they hold objects);
4. write the cluster record ``metalk8s-solutions`` (imports, removals, active marks).

``solutions apply`` runs it on the file as it is; ``import``, ``unimport``, ``activate`` and
``deactivate`` edit the file under its lock and run it on the edited configuration, scoped to the
solutions they touch, so both paths share one behaviour.  Every step is idempotent: a run with
nothing to change sends no mutating request, and a run interrupted anywhere converges when re-run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalk8s_solutions.api.config import (
    LATEST,
    Policy,
    RegistryMode,
    SolutionsConfiguration,
    request_policy,
)
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.pin import UNSIGNED, Pin
from metalk8s_solutions.api.versions import latest, sort_versions
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.layout import crd_files
from metalk8s_solutions.archive.pinning import changed, file_digest, open_archive
from metalk8s_solutions.cluster import crds as live_crds
from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Kube
from metalk8s_solutions.cluster.state import (
    Records,
    read_environments,
    read_records,
    usage_of,
    write_records,
)
from metalk8s_solutions.engine.crds import (
    CRD_V1BETA1,
    MANAGED_BY,
    PART_OF,
    Problem,
    applied_by,
    bridge_crd,
    check_transition,
    convert_v1beta1,
    crd_info,
    dropped_stored_versions,
    foreign_owner,
    is_v1beta1_crd,
    object_name,
    webhook_service,
)
from metalk8s_solutions.engine.crds import crd_name as document_name
from metalk8s_solutions.engine.crds import spec_diff as crd_spec_diff
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.engine.state import (
    Imported,
    Outcome,
    Say,
    Step,
    desired_records,
    record_diff,
    scan_config,
)
from metalk8s_solutions.errors import ArchiveError, ClusterError, InvalidInput, Refused, command

if TYPE_CHECKING:  # validation and pushing are imported when used: 'solutions list' needs neither
    from metalk8s_solutions.images.push import PushProgress

VERSION_LABEL = "solutions.metalk8s.scality.com/version"
CRD_DIR = "operator/deploy/crds/"


@dataclass(frozen=True)
class ConvergeOptions:
    dry_run: bool = False
    force: bool = False  # apply CRD changes / deactivations the safety checks refuse
    keys: tuple[Path, ...] = ()  # trusted public keys, in addition to trust.keys
    policy: Policy | None = None  # a stricter signature policy than trust.policy (never lower)
    #: limit activation and deactivation to these solutions (None: every solution)
    solutions: frozenset[str] | None = None
    #: CRDs that activation may take over from another owner (they become the solution's)
    take_over: frozenset[str] = frozenset()


@dataclass
class ConvergeOutcome(Outcome):
    """Steps, warnings, CRD diffs and migrations of one convergence."""

    diffs: dict[str, str] = field(default_factory=dict)
    migrated: dict[str, int] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)  # solution -> resolved active version
    #: archive path -> pin, of every configured archive verified at import (not in the JSON)
    pins: dict[str, Pin] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "diffs": self.diffs,
            "migrated": self.migrated,
            "active": self.active,
        }


@dataclass
class _Activation:
    name: str
    version: str
    crds: list[dict[str, Any]]


@dataclass
class _Plan:
    outcome: ConvergeOutcome
    new_archives: list[Imported] = field(default_factory=list)
    activations: list[_Activation] = field(default_factory=list)
    deactivations: dict[str, list[str]] = field(default_factory=dict)  # name -> CRD names
    records: Records = field(default_factory=dict)
    write_records: bool = False
    pins: dict[str, Pin] = field(default_factory=dict)  # archives pinned by this convergence
    known: frozenset[str] = frozenset()  # the names of the imported solutions


def label_value(text: str) -> str:
    """``text`` as a valid label value (a version is one already; kept as a guard)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63].strip("_.-")


def archive_crds(
    archive: Path, pin: Pin | None = None, converted: list[str] | None = None
) -> list[dict[str, Any]]:
    """The CRD documents of an archive, read straight from the ISO (checked against ``pin``),
    as ``apiextensions.k8s.io/v1``: v1beta1 ones are converted, and their names added to
    ``converted`` when given."""
    docs: list[dict[str, Any]] = []
    with open_archive(archive, pin) as iso:
        for path in crd_files(iso.files()):  # never the sample *_cr.yaml (SOL024)
            for doc in load_yaml_documents(iso.read_bytes(path), f"{archive}:{path}"):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    if is_v1beta1_crd(doc) and converted is not None:
                        converted.append(document_name(doc))
                    docs.append(convert_v1beta1(doc))  # v1 documents are kept as they are
    return docs


def labelled(doc: Mapping[str, Any], solution: str, version: str) -> dict[str, Any]:
    """The CRD as we apply it: our labels added, status and server fields dropped."""
    meta = dict(doc.get("metadata") or {})
    labels = {
        **(meta.get("labels") or {}),
        PART_OF: solution,
        MANAGED_BY: FIELD_MANAGER,
        VERSION_LABEL: label_value(version),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": meta.get("name"),
            "labels": labels,
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
        },
        "spec": doc.get("spec") or {},
    }


def versions_by_name(imported: list[Imported]) -> dict[str, dict[str, Imported]]:
    out: dict[str, dict[str, Imported]] = {}
    for item in imported:
        if item.manifest is not None:
            out.setdefault(item.manifest.name, {})[item.manifest.version] = item
    return out


# -- planning: nothing changes here ---------------------------------------------------------


def _check_new_archive(
    item: Imported, config: SolutionsConfiguration, opts: ConvergeOptions
) -> tuple[list[str], Pin]:
    """Validate and verify one archive; returns its warnings and its pin, raises on any error."""
    from metalk8s_solutions.engine.validate import ValidateOptions, validate  # noqa: PLC0415

    path = Path(item.archive)
    if item.problem:
        raise item.refusal(f"archive {path}")
    result = validate(
        ValidateOptions(
            path=path,
            keys=opts.keys + tuple(Path(k) for k in config.trust.keys),
            policy=request_policy(config.trust.effective_policy(), opts.policy),
        )
    )
    if not result.valid:
        errors = [f for f in result.findings if f.level is Severity.ERROR]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ArchiveError(
            f"archive {path} is not valid: {errors[0]}{more}",
            hint=f"nothing was changed; run '{command('validate', str(path))}' for the full report",
        )
    report = result.report
    if report.manifest is None:  # a valid archive has a manifest
        raise ArchiveError(f"archive {path} has no readable manifest", hint="nothing was changed")
    signatures = report.signatures
    signer = signatures.valid[0] if signatures and signatures.valid else UNSIGNED
    pin = (
        Pin(report.manifest.id, report.sums_digest, signer)
        if report.sums_digest is not None
        else Pin(report.manifest.id, file_digest(path), signer, whole_file=True)
    )
    if item.pin is not None:
        if (item.pin.digest, item.pin.id) != (pin.digest, pin.id):
            raise changed(path, item.pin, f"it now holds {pin.describe()}")
        pin = item.pin  # the pin of the first import stays (with its signer)
    return [f"{path}: {f}" for f in result.findings if f.level is Severity.WARNING], pin


def _pin(item: Imported, plan: _Plan) -> Pin | None:
    return item.pin or plan.pins.get(item.archive)


async def _objects(kube: Kube, live: Mapping[str, Any]) -> list[dict[str, Any]]:
    info = crd_info(live)
    version = info.storage_version or next(iter(sorted(info.served)), "")
    if not version:
        return []
    return await live_crds.list_objects(kube, info.group, version, info.plural)


async def _needed_versions(
    kube: Kube, name: str, versions: Mapping[str, Imported], plan: _Plan
) -> dict[str, dict[str, set[str]]]:
    """CRD name -> reason -> versions that operators deployed in environments need served."""
    needed: dict[str, dict[str, set[str]]] = {}
    for env in (await read_environments(kube)).values():
        for namespace, config in sorted(env.namespaces.items()):
            item = versions.get(config.get(name, ""))
            if item is None or item.problem:
                continue
            for doc in await asyncio.to_thread(archive_crds, Path(item.archive), _pin(item, plan)):
                info = crd_info(doc)
                reason = (
                    f"the operator of {name} {config[name]} in environment {env.name} ({namespace})"
                )
                needed.setdefault(info.name, {})[reason] = info.served
    return needed


@dataclass(frozen=True)
class _Owner:
    """Whose CRDs an activation is for, and which CRDs of others it may take over."""

    solution: str
    take_over: frozenset[str]
    #: CRDs of others it would take (name -> owner): refused
    foreign: dict[str, str] = field(default_factory=dict)


async def _plan_crd(
    kube: Kube,
    doc: dict[str, Any],
    needed: Mapping[str, set[str]] | None,
    outcome: ConvergeOutcome,
    owner: _Owner,
) -> list[Problem]:
    """Check one CRD against the live cluster; add its diff and step (if any) to ``outcome``.

    A live CRD that is not ``owner.solution``'s is added to ``owner.foreign`` (and not checked
    further) unless it is in ``owner.take_over``.
    """
    name = doc["metadata"]["name"]
    live = await live_crds.get_crd(kube, name)
    other = foreign_owner(live, owner.solution, FIELD_MANAGER) if live else None
    if other and name not in owner.take_over:
        owner.foreign[name] = other
        return []
    objects = await _objects(kube, live) if live else []
    webhook = webhook_service(doc)
    services = await live_crds.service_names(kube, {webhook[0]}) if webhook else set()
    problems = check_transition(live, doc, objects, needed, services)
    info = crd_info(doc)
    if live is None:
        outcome.diffs[name] = crd_spec_diff(None, doc)
        outcome.steps.append(Step("crd", name, f"create (storage {info.storage_version})"))
        return problems
    labels_now = (live.get("metadata") or {}).get("labels") or {}
    relabel = any(labels_now.get(k) != v for k, v in doc["metadata"]["labels"].items())
    dropped = dropped_stored_versions(live, doc)
    try:
        # With no object stored, the versions the new CRD drops are forgotten (see execute).
        bridge = bridge_crd(live, doc) if not objects else None
        preview = await live_crds.apply_crd(kube, bridge or doc, dry_run=True)
        if bridge is not None:  # what the CRD is once the dropped versions are forgotten
            versions = (preview.get("spec") or {}).get("versions") or []
            preview["spec"]["versions"] = [v for v in versions if v.get("name") not in dropped]
    except ClusterError as err:
        # The API server itself refuses (e.g. a stored version dropped): our checks name the
        # objects; when they found nothing, the server's reason is the problem.
        if not problems:
            problems.append(Problem(name, f"the API server refuses the new CRD: {err.message}"))
        preview = doc
    diff = crd_spec_diff(live, preview)
    if diff:
        outcome.diffs[name] = diff
    before = crd_info(live)
    detail = ["update"] if diff else (["relabel"] if relabel else [])
    if other:
        detail.insert(0, f"take over from {other}, with its {len(objects)} object(s)")
        outcome.warnings.append(
            f"--take-over-crd {name}: the CRD of {other} and its {len(objects)} object(s) become "
            f"{owner.solution}'s; deactivating {owner.solution} with --force would delete them"
        )
    stale = sorted(set(before.stored_versions) - {info.storage_version})
    if before.storage_version != info.storage_version:
        detail.append(
            f"storage {before.storage_version} -> {info.storage_version}, "
            f"migrate {len(objects)} object(s)"
        )
    elif stale:
        detail.append(f"migrate {len(objects)} object(s) stored in {', '.join(stale)}")
    if dropped and not objects:
        detail.append(
            f"drop version(s) {', '.join(dropped)}: listed as stored, but no object exists"
        )
    if detail:
        outcome.steps.append(Step("crd", name, "; ".join(detail)))
    return problems


async def _plan_activation(
    kube: Kube,
    name: str,
    wanted: str,
    versions: Mapping[str, Imported],
    plan: _Plan,
    force: bool,
    take_over: frozenset[str] = frozenset(),
) -> None:
    if not versions:
        raise InvalidInput(
            f"solution {name} is not imported" + did_you_mean(name, plan.known),
            hint=f"import its archive first ({command('import', '<archive>')}); "
            f"see '{command('list')}'",
        )
    target = latest(list(versions)) if wanted == LATEST else wanted
    if target not in versions:
        raise InvalidInput(
            f"{name} {target} is not imported (imported: {', '.join(sort_versions(versions))})",
            hint="import that version's archive first",
        )
    item = versions[target]
    if item.problem:
        raise Refused(f"{name} {target}: {item.problem}")
    plan.outcome.active[name] = target
    converted: list[str] = []
    docs = [
        labelled(doc, name, target)
        for doc in await asyncio.to_thread(
            archive_crds, Path(item.archive), _pin(item, plan), converted
        )
    ]
    shipped = sorted(d["metadata"]["name"] for d in docs)
    unknown = sorted(take_over - set(shipped))
    if unknown:
        raise InvalidInput(
            f"--take-over-crd {', '.join(unknown)}: {name} {target} ships no such CRD "
            f"(it ships {', '.join(shipped) or 'none'})",
            hint="nothing was changed; name only CRDs of the version being activated",
        )
    needed = await _needed_versions(kube, name, versions, plan)
    owner = _Owner(name, take_over)
    problems: list[Problem] = []
    for doc in docs:
        crd_name = doc["metadata"]["name"]
        problems += await _plan_crd(kube, doc, needed.get(crd_name), plan.outcome, owner)
    steps = plan.outcome.steps
    for i, step in enumerate(steps):
        if step.action == "crd" and step.target in converted and step.detail:
            steps[i] = replace(step, detail=f"{step.detail} (converted from {CRD_V1BETA1})")
    if owner.foreign:
        flags = " ".join(f"--take-over-crd {c}" for c in owner.foreign)
        raise Refused(
            f"activating {name} {target} would take over CRDs it does not own: "
            + "; ".join(f"CRD {c} belongs to {who}" for c, who in owner.foreign.items()),
            hint=f"nothing was changed; if {name} is to own them from now on (their objects "
            f"included, which deactivating {name} with --force would delete), activate with "
            f"{flags}",
        )
    if problems and not force:
        raise Refused(
            f"activating {name} {target} is unsafe: " + "; ".join(map(str, problems)),
            hint="nothing was changed; migrate or delete those resources, or activate a "
            "compatible version (--force applies anyway and breaks them)",
        )
    plan.outcome.warnings += [f"forced despite: {p}" for p in problems]
    current = await live_crds.list_crds(kube, f"{PART_OF}={name},{MANAGED_BY}={FIELD_MANAGER}")
    kept = {d["metadata"]["name"] for d in docs}
    for crd in current:
        if crd["metadata"]["name"] not in kept:
            plan.outcome.warnings.append(
                f"CRD {crd['metadata']['name']} of {name} is not in {target}; it is left in "
                "place with its objects (delete it by hand once it is unused)"
            )
    plan.activations.append(_Activation(name, target, docs))


async def _plan_deactivation(kube: Kube, name: str, plan: _Plan, force: bool) -> None:
    labelled_crds = await live_crds.list_crds(
        kube, f"{PART_OF}={name},{MANAGED_BY}={FIELD_MANAGER}"
    )
    # Labels can be set by anyone: a CRD that we never applied is not ours to delete.
    crds = [c for c in labelled_crds if applied_by(c, FIELD_MANAGER)]
    for crd in labelled_crds:
        if crd not in crds:
            plan.outcome.warnings.append(
                f"CRD {crd['metadata']['name']} carries the labels of {name} but was not "
                "applied by Solutions; it is left in place with its objects"
            )
    if not crds:
        return
    envs = await read_environments(kube)
    users = sorted(
        f"{env.name}/{ns} ({cfg[name]})"
        for env in envs.values()
        for ns, cfg in env.namespaces.items()
        if name in cfg
    )
    holders: dict[str, list[str]] = {}
    used_in: set[str] = set()  # the namespaces holding objects
    for crd in crds:
        objects = await _objects(kube, crd)
        if objects:
            holders[crd["metadata"]["name"]] = [object_name(o) for o in objects]
            used_in |= {str((o.get("metadata") or {}).get("namespace", "")) for o in objects}
    reasons = [f"environments use {name}: {', '.join(users)}"] if users else []
    reasons += [
        f"{len(names)} {crd_name} object(s) exist: {', '.join(names[:10])}"
        for crd_name, names in sorted(holders.items())
    ]
    if reasons and not force:
        # Name the commands that get out: remove the solution, with its data, from each
        # environment that uses it or holds its objects.
        holding = {
            env.name
            for env in envs.values()
            for ns, cfg in env.namespaces.items()
            if name in cfg or ns in used_in
        }
        commands = [
            command("env", "delete-solution", e, name, "--delete-data") for e in sorted(holding)
        ]
        raise Refused(
            f"cannot deactivate {name}: " + "; ".join(reasons),
            hint="nothing was changed; remove them first"
            + (f" ({'; '.join(commands)})" if commands else "")
            + ", or use --force to delete the CRDs and, with them, every one of those objects",
        )
    if reasons:
        plan.outcome.warnings.append(f"--force: {'; '.join(reasons)}; they will be deleted")
    for crd in crds:
        crd_name = crd["metadata"]["name"]
        lost = holders.get(crd_name, [])
        detail = (
            f"delete, with its {len(lost)} object(s): {', '.join(lost)}"
            if lost
            else "delete (no object)"
        )
        plan.outcome.steps.append(Step("crd", crd_name, detail))
    plan.deactivations[name] = [c["metadata"]["name"] for c in crds]


def removal_commands(solution: str, places: list[str]) -> str:
    """The commands that remove ``solution`` from each ``env/namespace`` of ``places``."""
    return "; ".join(
        command("env", "delete-solution", env, solution, "-N", ns)
        for env, _, ns in (place.partition("/") for place in places)
    )


async def _plan_imports(
    imported: list[Imported],
    current: Records,
    config: SolutionsConfiguration,
    opts: ConvergeOptions,
    plan: _Plan,
    say: Say,
) -> None:
    recorded = {r.archive for versions in current.values() for r in versions}
    ids: dict[str, str] = {}
    for item in imported:
        if item.id and item.id in ids:
            raise Refused(
                f"{item.archive} and {ids[item.id]} are two different archives of the same "
                f"solution version {item.id}",
                hint="list only one of them in SolutionsConfiguration",
            )
        if item.id:
            ids[item.id] = item.archive
    for item in imported:
        if item.archive in recorded and item.pin is not None and not item.problem:
            continue
        say(f"checking {item.archive}")
        warnings, pin = await asyncio.to_thread(_check_new_archive, item, config, opts)
        plan.outcome.warnings += warnings
        plan.pins[item.archive] = pin
        if item.archive in recorded and not item.problem:
            # Recorded by MetalK8s or an older version, without a pin: verified now, pinned.
            plan.outcome.steps.append(Step("pin", str(item.id), pin.describe()))
            continue
        plan.new_archives.append(item)
        where = (
            f"served by the built-in registry at {config.registry.endpoint}/{item.id}/"
            if config.registry.mode is RegistryMode.BUILTIN
            else f"pushed to {config.registry.push_url}"
        )
        plan.outcome.steps.append(Step("images", str(item.id), where))


async def plan_convergence(
    kube: Kube, config: SolutionsConfiguration, opts: ConvergeOptions, say: Say
) -> _Plan:
    """Everything :func:`converge` would do, checked, with no change made."""
    plan = _Plan(outcome=ConvergeOutcome(dry_run=opts.dry_run))
    request_policy(config.trust.effective_policy(), opts.policy)  # refused before anything else
    current, exists = await read_records(kube)
    imported = await asyncio.to_thread(scan_config, config, current)
    in_scope = opts.solutions

    # 1. New archives: checked before anything changes.
    await _plan_imports(imported, current, config, opts, plan, say)

    # 2. Removals: refused while deployed in an environment.
    kept = {i.archive for i in imported}
    removed = [r for versions in current.values() for r in versions if r.archive not in kept]
    if removed:
        envs = await read_environments(kube)
        for record in removed:
            name = str(record.manifest.get("metadata", {}).get("name", ""))
            places = usage_of(envs, name, record.version)
            if places:
                raise Refused(
                    f"cannot remove {record.id}: it is deployed in {', '.join(places)}",
                    hint="nothing was changed; remove it from there first: "
                    + removal_commands(name, places),
                )

    # 3. Activations and deactivations.
    by_name = versions_by_name(imported)
    plan.known = frozenset(by_name)
    for name, wanted in sorted(config.active.items()):
        if in_scope is None or name in in_scope:
            await _plan_activation(
                kube, name, wanted, by_name.get(name, {}), plan, opts.force, opts.take_over
            )
    managed = await live_crds.list_crds(kube, f"{MANAGED_BY}={FIELD_MANAGER}")
    orphans = (
        {str((c["metadata"].get("labels") or {}).get(PART_OF, "")) for c in managed}
        - set(config.active)
        - {""}
    )
    for name in sorted(orphans):
        if in_scope is None or name in in_scope:
            await _plan_deactivation(kube, name, plan, opts.force)

    # 4. The cluster record.
    plan.records = desired_records(imported, config.active, plan.pins)
    plan.outcome.pins = {i.archive: i.pin for i in imported if i.pin} | plan.pins
    record_steps = record_diff(current, plan.records)
    if not exists and not record_steps:
        record_steps = [Step("record", "metalk8s-solutions", "create the empty ConfigMap")]
    plan.outcome.steps += record_steps
    plan.write_records = bool(record_steps)
    return plan


# -- execution --------------------------------------------------------------------------------


async def _migrate(kube: Kube, name: str) -> int:
    """Rewrite every object into the storage version, then trim ``storedVersions``."""
    live = await live_crds.get_crd(kube, name)
    if live is None:
        return 0
    info = crd_info(live)
    storage = info.storage_version
    if list(info.stored_versions) == [storage]:
        return 0
    objects = await live_crds.list_objects(kube, info.group, storage, info.plural)
    for obj in objects:
        await live_crds.rewrite_object(kube, info.group, storage, info.plural, obj)
    await live_crds.set_stored_versions(kube, name, [storage])
    return len(objects)


def _push_reporter(say: Say) -> Callable[[str, PushProgress], None]:
    last = [0.0]

    def report(solution_id: str, event: PushProgress) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and event.phase != "done":
            return
        last[0] = now
        say(
            f"pushing {solution_id}: {event.bytes_done / 1e6:.1f}/{event.bytes_total / 1e6:.1f} "
            f"MB, {event.blobs_done}/{event.blobs_total} blobs ({event.skipped} already there, "
            f"{event.mounted} mounted)"
        )

    return report


async def execute(
    kube: Kube, plan: _Plan, config: SolutionsConfiguration, imported_archives: list[str], say: Say
) -> None:
    if plan.new_archives and config.registry.mode is RegistryMode.PUSH:
        from metalk8s_solutions.engine.push import PushOptions, push_archives  # noqa: PLC0415

        known = tuple(Path(a) for a in imported_archives)
        await push_archives(
            PushOptions(
                archives=tuple(Path(i.archive) for i in plan.new_archives),
                registry=config.registry,
                known_archives=known,
                progress=_push_reporter(say),
                pins=plan.pins,
            )
        )
    for activation in plan.activations:
        for doc in activation.crds:
            name = doc["metadata"]["name"]
            live = await live_crds.get_crd(kube, name)
            bridge = bridge_crd(live, doc) if live is not None else None
            if bridge is not None:  # planned with no object in the versions it drops
                await live_crds.apply_crd(kube, bridge)
                await live_crds.wait_established(kube, name)
                await _migrate(kube, name)
            await live_crds.apply_crd(kube, doc)
            await live_crds.wait_established(kube, name)
            migrated = await _migrate(kube, name)
            if migrated:
                plan.outcome.migrated[name] = migrated
                say(f"migrated {migrated} {name} object(s) to the storage version")
    for crd_names in plan.deactivations.values():
        for crd_name in crd_names:
            await live_crds.delete_crd(kube, crd_name)
    if plan.write_records:
        await write_records(kube, plan.records)


async def converge(
    kube: Kube, config: SolutionsConfiguration, opts: ConvergeOptions, say: Say
) -> ConvergeOutcome:
    """Plan, then (unless ``opts.dry_run``) execute, the convergence to ``config``."""
    plan = await plan_convergence(kube, config, opts, say)
    if not opts.dry_run:
        await execute(kube, plan, config, list(config.archives), say)
    return plan.outcome
