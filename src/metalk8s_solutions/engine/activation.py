"""Activate and deactivate a Solution version: its CRDs, applied safely, for every environment.

Activation resolves the version (``latest`` by semantic-version order), reads the version's CRDs
from its archive, checks the live cluster (:mod:`.crds`), applies the CRDs with server-side apply
under our field manager, migrates stored objects when the storage version changes and trims
``status.storedVersions``, then records ``active`` in SolutionsConfiguration and the cluster
record.  Deactivation refuses while custom resources of its CRDs exist or an environment uses the
solution, and never deletes a custom resource without ``--force`` spelling it out.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import LATEST
from metalk8s_solutions.api.semver import latest
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.cluster import crds as live_crds
from metalk8s_solutions.cluster.kube import FIELD_MANAGER, Kube, connect
from metalk8s_solutions.cluster.state import EnvironmentView, read_environments, read_records
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.crds import (
    Problem,
    check_transition,
    crd_info,
    object_name,
    spec_diff,
)
from metalk8s_solutions.engine.solutions import (
    Context,
    Imported,
    Outcome,
    Step,
    resolve_active,
    scan_config,
    sync_records,
)
from metalk8s_solutions.errors import ClusterError, InvalidInput, Refused

PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION_LABEL = "solutions.metalk8s.scality.com/version"
CRD_DIR = "operator/deploy/crds/"


@dataclass
class ActivationOutcome(Outcome):
    """The plan or result of an activation: steps, CRD diffs, refusals overridden."""

    solution: str = ""
    version: str = ""
    diffs: dict[str, str] = field(default_factory=dict)
    migrated: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "solution": self.solution,
            "version": self.version,
            "diffs": self.diffs,
            "migrated": self.migrated,
        }


@dataclass(frozen=True)
class ActivateOptions:
    name: str
    version: str = LATEST
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class DeactivateOptions:
    name: str
    force: bool = False
    dry_run: bool = False


def label_value(text: str) -> str:
    """``text`` as a valid label value (semantic versions may hold ``+``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63].strip("_.-")


def archive_crds(archive: Path) -> list[dict[str, Any]]:
    """The CRD documents of an archive, read straight from the ISO."""
    docs: list[dict[str, Any]] = []
    with IsoReader(archive) as iso:
        for path in sorted(iso.files()):
            if path.startswith(CRD_DIR) and path.endswith((".yaml", ".yml")):
                for doc in load_yaml_documents(iso.read_bytes(path), f"{archive}:{path}"):
                    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                        docs.append(doc)
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


def _versions_of(imported: list[Imported], name: str) -> dict[str, Imported]:
    return {
        i.manifest.version: i
        for i in imported
        if i.manifest is not None and i.manifest.name == name
    }


async def _needed_versions(
    envs: Mapping[str, EnvironmentView], name: str, by_version: Mapping[str, Imported]
) -> dict[str, dict[str, set[str]]]:
    """CRD name -> reason -> versions the operators deployed in environments need served."""
    needed: dict[str, dict[str, set[str]]] = {}
    for env in envs.values():
        for namespace, config in env.namespaces.items():
            version = config.get(name)
            item = by_version.get(version or "")
            if version is None or item is None or item.problem:
                continue
            for doc in await asyncio.to_thread(archive_crds, Path(item.archive)):
                info = crd_info(doc)
                reason = f"the operator of {name} {version} in environment {env.name} ({namespace})"
                needed.setdefault(info.name, {})[reason] = info.served
    return needed


async def _objects(kube: Kube, live: Mapping[str, Any]) -> list[dict[str, Any]]:
    info = crd_info(live)
    version = info.storage_version or next(iter(sorted(info.served)), "")
    if not version:
        return []
    return await live_crds.list_objects(kube, info.group, version, info.plural)


async def _plan_crd(
    kube: Kube,
    doc: dict[str, Any],
    needed: Mapping[str, set[str]] | None,
    outcome: ActivationOutcome,
) -> list[Problem]:
    """Check one CRD against the live cluster; add its diff and step to ``outcome``."""
    name = doc["metadata"]["name"]
    live = await live_crds.get_crd(kube, name)
    objects = await _objects(kube, live) if live else []
    service = ((doc["spec"].get("conversion") or {}).get("webhook") or {}).get("clientConfig", {})
    webhook_ns = {service.get("service", {}).get("namespace", "")} - {""}
    services = await live_crds.service_names(kube, webhook_ns) if webhook_ns else set()
    problems = check_transition(live, doc, objects, needed, services)
    info = crd_info(doc)
    if live is None:
        outcome.diffs[name] = spec_diff(None, doc)
        outcome.steps.append(Step("crd", name, f"create (storage {info.storage_version})"))
        return problems
    try:
        preview = await live_crds.apply_crd(kube, doc, dry_run=True)
    except ClusterError as err:
        # The API server itself refuses (e.g. a stored version dropped): our own checks name
        # the objects; when they found nothing, the server's reason is the problem.
        if not problems:
            problems.append(Problem(name, f"the API server refuses the new CRD: {err.message}"))
        preview = doc
    diff = spec_diff(live, preview)
    if diff:
        outcome.diffs[name] = diff
    before = crd_info(live)
    detail = ["update"] if diff else []
    stale = sorted(set(before.stored_versions) - {info.storage_version})
    if before.storage_version != info.storage_version:
        detail.append(
            f"storage {before.storage_version} -> {info.storage_version}, "
            f"migrate {len(objects)} object(s)"
        )
    elif stale:
        detail.append(f"migrate {len(objects)} object(s) stored in {', '.join(stale)}")
    if detail:
        outcome.steps.append(Step("crd", name, "; ".join(detail)))
    return problems


async def _left_behind(
    name: str, by_version: Mapping[str, Imported], previous: str, target: str
) -> list[str]:
    """Warnings for CRDs the previous active version had and the target lacks."""
    old = await asyncio.to_thread(archive_crds, Path(by_version[previous].archive))
    new = await asyncio.to_thread(archive_crds, Path(by_version[target].archive))
    gone = {d["metadata"]["name"] for d in old} - {d["metadata"]["name"] for d in new}
    return [
        f"CRD {crd} of {name} {previous} is not in {target}; it is left in place with its "
        "objects (delete it by hand once it is unused)"
        for crd in sorted(gone)
    ]


async def activate(ctx: Context, opts: ActivateOptions) -> ActivationOutcome:
    """Make ``opts.version`` of ``opts.name`` the active version, safely."""
    store = ConfigStore(ctx.config_path)
    config = store.read()
    outcome = ActivationOutcome(dry_run=opts.dry_run, solution=opts.name)
    async with connect(ctx.target) as kube:
        records, _ = await read_records(kube)
        imported = await asyncio.to_thread(scan_config, config, records)
        by_version = _versions_of(imported, opts.name)
        if not by_version:
            raise InvalidInput(
                f"solution {opts.name} is not imported",
                hint="import its archive first (solutions import ARCHIVE); see 'solutions list'",
            )
        target = latest(list(by_version)) if opts.version == LATEST else opts.version
        if target not in by_version:
            raise InvalidInput(
                f"{opts.name} {target} is not imported (imported: {', '.join(sorted(by_version))})",
                hint="import that version's archive first",
            )
        outcome.version = target
        item = by_version[target]
        if item.problem:
            raise Refused(f"{opts.name} {target}: {item.problem}")
        new_crds = [
            labelled(doc, opts.name, target)
            for doc in await asyncio.to_thread(archive_crds, Path(item.archive))
        ]
        envs = await read_environments(kube)
        needed = await _needed_versions(envs, opts.name, by_version)
        problems: list[Problem] = []
        for doc in new_crds:
            problems += await _plan_crd(kube, doc, needed.get(doc["metadata"]["name"]), outcome)
        if problems and not opts.force:
            raise Refused(
                f"activating {opts.name} {target} is unsafe: " + "; ".join(map(str, problems)),
                hint="nothing was changed; migrate or delete those resources, or activate a "
                "compatible version (--force applies anyway and breaks them)",
            )
        outcome.warnings += [f"forced despite: {p}" for p in problems]
        previous = resolve_active(config.active, {opts.name: list(by_version)}).get(opts.name)
        if previous and previous != target and previous in by_version:
            outcome.warnings += await _left_behind(opts.name, by_version, previous, target)
        desired = config.with_active(opts.name, opts.version)
        if desired.active != config.active:
            outcome.steps.append(
                Step("configure", opts.name, f"active: {opts.version} in SolutionsConfiguration")
            )
        if opts.dry_run:
            outcome.steps += await sync_records(kube, desired, dry_run=True)
            return outcome
        for doc in new_crds:
            name = doc["metadata"]["name"]
            await live_crds.apply_crd(kube, doc)
            await live_crds.wait_established(kube, name)
            outcome.migrated[name] = await _migrate(kube, name)
        with store.edit() as edit:
            edit.config = edit.config.with_active(opts.name, opts.version)
            final = edit.config
        outcome.steps += await sync_records(kube, final, dry_run=False)
    return outcome


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


async def deactivate(ctx: Context, opts: DeactivateOptions) -> Outcome:
    """Remove the active mark of ``opts.name`` and its CRDs, refusing while they hold data."""
    store = ConfigStore(ctx.config_path)
    config = store.read()
    outcome = Outcome(dry_run=opts.dry_run)
    async with connect(ctx.target) as kube:
        selector = f"{PART_OF}={opts.name},{MANAGED_BY}={FIELD_MANAGER}"
        crds = await live_crds.list_crds(kube, selector)
        envs = await read_environments(kube)
        users = sorted(
            f"{env.name}/{ns} ({cfg[opts.name]})"
            for env in envs.values()
            for ns, cfg in env.namespaces.items()
            if opts.name in cfg
        )
        holders: dict[str, list[str]] = {}
        for crd in crds:
            objects = await _objects(kube, crd)
            if objects:
                holders[crd["metadata"]["name"]] = [object_name(o) for o in objects]
        if opts.name not in config.active and not crds:
            return outcome  # nothing active, nothing applied: already deactivated
        reasons = []
        if users:
            reasons.append(f"environments use {opts.name}: {', '.join(users)}")
        for crd_name, names in sorted(holders.items()):
            reasons.append(f"{len(names)} {crd_name} object(s) exist: {', '.join(names[:10])}")
        if reasons and not opts.force:
            raise Refused(
                f"cannot deactivate {opts.name}: " + "; ".join(reasons),
                hint="nothing was changed; remove them first, or use --force to delete the CRDs "
                "and, with them, every one of those objects",
            )
        for crd in crds:
            crd_name = crd["metadata"]["name"]
            lost = holders.get(crd_name, [])
            detail = (
                f"delete, with its {len(lost)} object(s): {', '.join(lost)}"
                if lost
                else ("delete (no object)")
            )
            outcome.steps.append(Step("crd", crd_name, detail))
        if reasons:
            outcome.warnings.append(
                "--force: " + "; ".join(reasons) + " — they will be deleted or left without CRDs"
            )
        desired = config.without_active(opts.name)
        if desired.active != config.active:
            outcome.steps.append(
                Step("configure", opts.name, "remove the active mark from SolutionsConfiguration")
            )
        if opts.dry_run:
            outcome.steps += await sync_records(kube, desired, dry_run=True)
            return outcome
        for crd in crds:
            await live_crds.delete_crd(kube, crd["metadata"]["name"])
        with store.edit() as edit:
            edit.config = edit.config.without_active(opts.name)
            final = edit.config
        outcome.steps += await sync_records(kube, final, dry_run=False)
    return outcome
