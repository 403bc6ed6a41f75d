"""Import, unimport, list and apply Solution archives.

The imperative verbs are thin: under the SolutionsConfiguration lock they edit the configuration
in memory, run :func:`~.converge.converge` on it (which checks everything before changing
anything, and refuses what is unsafe), and write the file only once the cluster has converged.
A refusal or a failure leaves the file untouched; re-running an interrupted command converges.
``apply`` converges the cluster to the file as it is, without writing it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import KNOWN_KEYS, Policy, SolutionsConfiguration
from metalk8s_solutions.cluster.kube import Kube, connect
from metalk8s_solutions.cluster.state import Records, read_environments, read_records, usage_of
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.converge import (
    ConvergeOptions,
    ConvergeOutcome,
    converge,
    removal_commands,
)
from metalk8s_solutions.engine.environments.converge import converge_environments
from metalk8s_solutions.engine.environments.options import ConvergeOptions as EnvConvergeOptions
from metalk8s_solutions.engine.listings import solutions_listing
from metalk8s_solutions.engine.names import closest
from metalk8s_solutions.engine.state import (
    Context,
    Imported,
    Outcome,
    Say,
    Step,
    desired_records,
    read_archive_manifest,
    record_diff,
    resolve_active,
    scan_config,
)
from metalk8s_solutions.errors import InvalidInput, Refused, SolutionsError, command

__all__ = [  # the shared vocabulary, re-exported for the verbs of other modules
    "Context",
    "Imported",
    "Outcome",
    "Say",
    "Step",
    "apply_configuration",
    "desired_records",
    "import_archives",
    "list_solutions",
    "read_archive_manifest",
    "record_diff",
    "resolve_active",
    "scan_config",
    "unimport_archives",
]


def _resolved(config: SolutionsConfiguration, records: Records) -> dict[str, str]:
    """Active version per solution that ``config`` implies."""
    versions: dict[str, list[str]] = {}
    for item in scan_config(config, records):
        if item.manifest:
            versions.setdefault(item.manifest.name, []).append(item.manifest.version)
    return resolve_active(config.active, versions)


def _changed_activations(
    before: SolutionsConfiguration, after: SolutionsConfiguration, records: Records
) -> frozenset[str]:
    """Solutions whose active version changes between two configurations (``latest`` moves)."""
    old, new = _resolved(before, records), _resolved(after, records)
    return frozenset(n for n in set(old) | set(new) if old.get(n) != new.get(n))


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    archives: tuple[Path, ...]
    keys: tuple[Path, ...] = ()
    policy: Policy | None = None
    dry_run: bool = False


def _absolute(path: Path) -> Path:
    """``path`` made absolute, with ``..`` folded away when that names the same file."""
    absolute = path.absolute()
    if not absolute.exists():
        raise InvalidInput(f"archive {path} does not exist", hint="check the path")
    if not absolute.is_file():
        raise InvalidInput(f"archive {path} is not a file")
    folded = Path(os.path.normpath(absolute))
    return folded if folded.exists() and _same_file(folded, absolute) else absolute


def _same_file(a: str | Path, b: str | Path) -> bool:
    """One file under two names (``..``, symlinks, hard links); False when either is absent."""
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


async def import_archives(ctx: Context, opts: ImportOptions) -> ConvergeOutcome:
    """Check, then import, each archive of ``opts``."""
    if not opts.archives:
        raise InvalidInput("no archive given", hint=command("import", "<archive>"))
    paths = [_absolute(p) for p in opts.archives]
    manifests = {p: await asyncio.to_thread(read_archive_manifest, p) for p in paths}
    store = ConfigStore(ctx.config_path)
    async with connect(ctx.target) as kube:
        async with store.edit_async(dry_run=opts.dry_run) as edit:
            records, _ = await read_records(kube)
            taken = {
                i.id: i.archive
                for i in await asyncio.to_thread(scan_config, edit.config, records)
                if i.id
            }
            for path, manifest in list(manifests.items()):
                other = taken.get(manifest.id)
                if other is not None and other != str(path) and _same_file(other, path):
                    # the imported file itself, named another way: keep the name it has
                    paths[paths.index(path)] = Path(other)
                    manifests[Path(other)] = manifests.pop(path)
                    continue
                if other is not None and other != str(path):
                    raise Refused(
                        f"solution {manifest.id} is already imported from {other}; {path} is a "
                        "different archive with the same id",
                        hint=f"unimport it first ({command('unimport', other)}), or import "
                        "that same file",
                    )
                taken[manifest.id] = str(path)
            steps = []
            for path in paths:
                if str(path) not in edit.config.archives:
                    steps.append(Step("configure", str(path), "add to SolutionsConfiguration"))
                edit.config = edit.config.with_archive(str(path))
            # Activation changes only where importing moves the active version ("latest").
            options = ConvergeOptions(
                dry_run=opts.dry_run,
                keys=opts.keys,
                policy=opts.policy,
                solutions=await asyncio.to_thread(
                    _changed_activations, edit.original, edit.config, records
                ),
            )
            outcome = await converge(kube, edit.config, options, ctx.say)
            outcome.steps[:0] = steps
            # What was verified is pinned in the file too: the registry reads only the file.
            edit.config = edit.config.with_pins(outcome.pins)
        names = frozenset(m.name for m in manifests.values())
        await _refresh_environments(ctx, kube, outcome, names)
    return outcome


async def _refresh_environments(
    ctx: Context, kube: Kube, outcome: ConvergeOutcome, solutions: frozenset[str] | None
) -> None:
    """Converge the environments that run ``solutions`` (None: every environment) after the
    archives changed: their OperatorConfig lists every imported version, and objects edited or
    deleted by hand are restored.  A dry run only plans it.  An environment that cannot converge
    (e.g. it runs a version no longer imported) is reported, and does not undo what was done."""
    envs = await read_environments(kube, include_terminating=False)
    names = sorted(
        env.name
        for env in envs.values()
        if solutions is None
        or any(name in config for config in env.namespaces.values() for name in solutions)
    )
    for name in names:
        try:
            result = await converge_environments(
                ctx, EnvConvergeOptions(envs=(name,), dry_run=outcome.dry_run), connection=kube
            )
        except SolutionsError as err:
            outcome.warnings.append(
                f"environment {name} was not converged: {err}; fix it, then run "
                f"'{command('env', 'converge', name)}'"
            )
            continue
        outcome.steps += result.steps
        outcome.warnings += result.warnings


# -- unimport ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnimportOptions:
    refs: tuple[str, ...]  # archive paths or solution ids (<name>-<version>)
    dry_run: bool = False


def _find(ref: str, imported: list[Imported]) -> Imported:
    absolute = str(Path(ref).absolute())
    for item in imported:
        if item.archive in (ref, absolute) or item.id == ref:
            return item
    for item in imported:  # the same file under another name (``..``, a symlink)
        if _same_file(item.archive, ref):
            return item
    known = ", ".join(sorted(i.id or i.archive for i in imported)) or "none"
    raise InvalidInput(
        f"{ref} is not imported (imported: {known})",
        hint=f"give the archive path or the solution id <name>-<version>; see '{command('list')}'",
    )


async def unimport_archives(ctx: Context, opts: UnimportOptions) -> ConvergeOutcome:
    """Remove archives from SolutionsConfiguration and the cluster record, when safe."""
    if not opts.refs:
        raise InvalidInput("nothing to unimport", hint=command("unimport", "<archive>"))
    store = ConfigStore(ctx.config_path)
    async with connect(ctx.target) as kube:
        async with store.edit_async(dry_run=opts.dry_run) as edit:
            records, _ = await read_records(kube)
            imported = await asyncio.to_thread(scan_config, edit.config, records)
            targets = [_find(ref, imported) for ref in opts.refs]
            versions: dict[str, list[str]] = {}
            for item in imported:
                if item.manifest:
                    versions.setdefault(item.manifest.name, []).append(item.manifest.version)
            active = resolve_active(edit.config.active, versions)
            envs = await read_environments(kube)
            refusals: list[str] = []
            for item in targets:
                if item.manifest is None:
                    continue  # nothing is known of it; removing the entry is always safe
                name, version = item.manifest.name, item.manifest.version
                if active.get(name) == version:
                    refusals.append(
                        f"{item.id} is the active version of {name} (deactivate it first: "
                        f"{command('deactivate', name)}, or activate another version: "
                        f"{command('activate', name, '<version>')})"
                    )
                places = usage_of(envs, name, version)
                if places:
                    refusals.append(
                        f"{item.id} is deployed in {', '.join(places)} (remove it from there "
                        f"first: {removal_commands(name, places)})"
                    )
            if refusals:
                raise Refused("cannot unimport: " + "; ".join(refusals), hint="nothing was changed")
            steps = []
            for item in targets:
                steps.append(Step("configure", item.archive, "remove from SolutionsConfiguration"))
                edit.config = edit.config.without_archive(item.archive)
            changed = await asyncio.to_thread(
                _changed_activations, edit.original, edit.config, records
            )
            options = ConvergeOptions(dry_run=opts.dry_run, solutions=changed)
            outcome = await converge(kube, edit.config, options, ctx.say)
            outcome.steps[:0] = steps
        names = frozenset(i.manifest.name for i in targets if i.manifest)
        await _refresh_environments(ctx, kube, outcome, names)
    return outcome


# -- apply ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyOptions:
    dry_run: bool = False
    force: bool = False
    keys: tuple[Path, ...] = ()
    policy: Policy | None = None


def configuration_notes(config: SolutionsConfiguration, records: Records) -> list[str]:
    """What ``apply`` should say before it acts: keys that look like typos of the ones it reads
    (kept, not used), and removals that come from a key missing from the file."""
    notes: list[str] = []
    doc = config.document
    for section, known in KNOWN_KEYS.items():
        where = doc if not section else doc.get(section)
        if not isinstance(where, dict):
            continue
        for key in where:
            guess = closest(str(key), known) if key not in known else None
            if guess is not None:
                path = f"{section}.{key}" if section else str(key)
                notes.append(
                    f"unknown key '{path}' (did you mean '{guess}'?) is kept in the file but not "
                    "used"
                )
    recorded = [r for versions in records.values() for r in versions]
    active = sorted(f"{r.id}" for r in recorded if r.active)
    if doc and "active" not in doc and active:
        notes.append("the file has no 'active' key: this deactivates " + ", ".join(active))
    if doc and "archives" not in doc and recorded:
        notes.append(
            "the file has no 'archives' key: this unimports "
            + ", ".join(sorted(r.id for r in recorded))
        )
    return notes


def _check_trust_keys(config: SolutionsConfiguration) -> None:
    """Every key file of ``trust.keys`` is readable and a public key (refused otherwise)."""
    from metalk8s_solutions.archive.signing import trusted_keys  # noqa: PLC0415

    try:
        trusted_keys(Path(k) for k in config.trust.keys)
    except SolutionsError as err:
        raise InvalidInput(
            f"trust.keys: {err}",
            hint="fix the path in trust.keys (or put the key file back); nothing was changed",
        ) from err


async def apply_configuration(ctx: Context, opts: ApplyOptions) -> ConvergeOutcome:
    """Converge the cluster to SolutionsConfiguration as it is (the file is never written)."""
    store = ConfigStore(ctx.config_path)
    # No command may change the file while we converge to it.
    async with connect(ctx.target) as kube, store.locked_async():
        config = await store.read_async()
        await asyncio.to_thread(_check_trust_keys, config)
        records, _ = await read_records(kube)
        notes = configuration_notes(config, records)
        if not opts.dry_run:  # said before anything changes (a dry run lists them first)
            for note in notes:
                ctx.say(f"warning: {note}")
        options = ConvergeOptions(
            dry_run=opts.dry_run, force=opts.force, keys=opts.keys, policy=opts.policy
        )
        outcome = await converge(kube, config, options, ctx.say)
        outcome.warnings[:0] = notes
        # Environments too: restores operator objects deleted or edited by hand.
        await _refresh_environments(ctx, kube, outcome, None)
        return outcome


# -- list -----------------------------------------------------------------------------------


async def list_solutions(ctx: Context) -> dict[str, Any]:
    """Imported versions per solution: archive, active mark, problems, cluster record state."""
    config = await ConfigStore(ctx.config_path).read_async()
    records: Records | None = None
    cluster_error: str | None = None
    try:
        async with connect(ctx.target) as kube:
            records, _ = await read_records(kube)
    except SolutionsError as err:
        cluster_error = str(err)
    imported = await asyncio.to_thread(scan_config, config, records)
    return solutions_listing(ctx.config_path, config, records, cluster_error, imported)
