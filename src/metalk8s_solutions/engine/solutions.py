"""Import, unimport and list Solution archives.

An import checks every archive (validate, verify per the policy) and that the cluster answers
before anything changes; then makes the images available (push mode pushes them; the built-in
registry serves whatever SolutionsConfiguration lists), records the archive in
SolutionsConfiguration (locked, atomic) and converges the cluster record ``metalk8s-solutions``.
Every step is idempotent, so re-running an interrupted import converges.  Unimport refuses while
a version is active or deployed in an environment, and then changes nothing at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import LATEST, Policy, SolutionsConfiguration
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.manifest import SolutionManifest, parse_manifest
from metalk8s_solutions.api.semver import latest, parse_version
from metalk8s_solutions.api.streams import read_limited
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube, connect
from metalk8s_solutions.cluster.state import (
    Records,
    SolutionRecord,
    read_environments,
    read_records,
    usage_of,
    write_records,
)
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.validate import ValidateOptions, validate
from metalk8s_solutions.errors import ArchiveError, InvalidInput, Refused, SolutionsError

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Context:
    """What every verb needs: the configuration file and the cluster."""

    config_path: Path
    target: ClusterTarget
    say: Say = _quiet


@dataclass(frozen=True)
class Step:
    """One change of a plan; ``dry_run`` prints these and stops."""

    action: str
    target: str
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"action": self.action, "target": self.target, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.action} {self.target}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Outcome:
    """What a verb did (or, with ``dry_run``, would do)."""

    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "steps": [s.to_json() for s in self.steps],
            "warnings": self.warnings,
        }


# -- reading archives ---------------------------------------------------------------------


def read_archive_manifest(path: Path) -> SolutionManifest:
    """The manifest of an archive, read from the ISO without extracting anything."""
    with IsoReader(path) as iso:
        return parse_manifest(read_limited(iso, "manifest.yaml", 1024 * 1024), f"{path}")


@dataclass(frozen=True)
class Imported:
    """An archive listed in SolutionsConfiguration, with what we know of it."""

    archive: str
    manifest: SolutionManifest | None
    problem: str | None = None  # e.g. the file was moved or deleted after import

    @property
    def id(self) -> str | None:
        return self.manifest.id if self.manifest else None


def scan_config(config: SolutionsConfiguration, records: Records | None = None) -> list[Imported]:
    """Read the manifest of each configured archive; missing files are reported, not raised."""
    known = {r.archive: r for versions in (records or {}).values() for r in versions}
    result: list[Imported] = []
    for archive in config.archives:
        path = Path(archive)
        try:
            result.append(Imported(archive, read_archive_manifest(path)))
        except (SolutionsError, OSError) as err:
            problem = (
                "archive file is missing (moved or deleted after import); put it back or "
                "unimport it"
                if not path.exists()
                else f"archive is unreadable: {err}"
            )
            record = known.get(archive)
            manifest = None
            if record is not None:
                try:
                    manifest = _manifest_from_record(record)
                except SolutionsError:
                    manifest = None
            result.append(Imported(archive, manifest, problem))
    return result


def _manifest_from_record(record: SolutionRecord) -> SolutionManifest:
    import yaml  # noqa: PLC0415

    return parse_manifest(yaml.safe_dump(dict(record.manifest)).encode(), "cluster record")


# -- pure planning ------------------------------------------------------------------------


def resolve_active(active: Mapping[str, str], versions: Mapping[str, list[str]]) -> dict[str, str]:
    """Active version per solution, ``latest`` resolved by semantic-version order.

    A solution whose configured version is not imported (or that has none) is left out.
    """
    resolved: dict[str, str] = {}
    for name, wanted in active.items():
        available = versions.get(name, [])
        if not available:
            continue
        if wanted == LATEST:
            resolved[name] = latest(available)
        elif wanted in available:
            resolved[name] = wanted
    return resolved


def desired_records(imported: list[Imported], active: Mapping[str, str]) -> Records:
    """The cluster record that SolutionsConfiguration implies."""
    versions: dict[str, list[str]] = {}
    for item in imported:
        if item.manifest is not None:
            versions.setdefault(item.manifest.name, []).append(item.manifest.version)
    resolved = resolve_active(active, versions)
    records: Records = {}
    for item in imported:
        m = item.manifest
        if m is None:
            continue
        records.setdefault(m.name, []).append(
            SolutionRecord(
                name=m.display_name,
                id=m.id,
                version=m.version,
                archive=item.archive,
                manifest=m.to_dict(),
                active=resolved.get(m.name) == m.version,
            )
        )
    for versions_of in records.values():
        versions_of.sort(key=lambda r: parse_version(r.version))
    return records


def record_diff(current: Records, desired: Records) -> list[Step]:
    """Steps that turn the cluster record ``current`` into ``desired``."""
    steps: list[Step] = []
    now = {r.id: r for rs in current.values() for r in rs}
    want = {r.id: r for rs in desired.values() for r in rs}
    for sid in sorted(want.keys() - now.keys()):
        steps.append(Step("record", sid, "add to ConfigMap metalk8s-solutions"))
    for sid in sorted(now.keys() - want.keys()):
        steps.append(Step("record", sid, "remove from ConfigMap metalk8s-solutions"))
    for sid in sorted(want.keys() & now.keys()):
        if want[sid].to_json() != now[sid].to_json():
            steps.append(Step("record", sid, "update in ConfigMap metalk8s-solutions"))
    return steps


# -- shared convergence of the record -------------------------------------------------------


async def sync_records(kube: Kube, config: SolutionsConfiguration, *, dry_run: bool) -> list[Step]:
    """Make ``metalk8s-solutions`` match ``config``; returns the steps (applied unless dry)."""
    current, exists = await read_records(kube)
    desired = desired_records(await asyncio.to_thread(scan_config, config, current), config.active)
    steps = record_diff(current, desired)
    if not exists and not steps:
        steps = [Step("record", "metalk8s-solutions", "create the empty ConfigMap")]
    if steps and not dry_run:
        await write_records(kube, desired)
    return steps


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    archives: tuple[Path, ...]
    keys: tuple[Path, ...] = ()
    policy: Policy | None = None
    dry_run: bool = False


def _absolute(path: Path) -> Path:
    absolute = path.absolute()
    if not absolute.exists():
        raise InvalidInput(f"archive {path} does not exist", hint="check the path")
    if not absolute.is_file():
        raise InvalidInput(f"archive {path} is not a file")
    return absolute


def _check_archive(path: Path, config: SolutionsConfiguration, opts: ImportOptions) -> Any:
    """Validate and verify one archive (no change anywhere); returns the result."""
    result = validate(
        ValidateOptions(
            path=path,
            keys=opts.keys + tuple(Path(k) for k in config.trust.keys),
            policy=opts.policy or config.trust.effective_policy(),
        )
    )
    if not result.valid:
        errors = [f for f in result.findings if f.level is Severity.ERROR]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ArchiveError(
            f"archive {path} is not valid: {first}{more}",
            hint=f"nothing was changed; run 'solutions validate {path}' for the full report",
        )
    return result


async def import_archives(ctx: Context, opts: ImportOptions) -> Outcome:
    """Check, then import, each archive of ``opts``."""
    if not opts.archives:
        raise InvalidInput("no archive given", hint="solutions import ARCHIVE.iso ...")
    paths = [_absolute(p) for p in opts.archives]
    store = ConfigStore(ctx.config_path)
    config = store.read()
    outcome = Outcome(dry_run=opts.dry_run)
    manifests: dict[Path, SolutionManifest] = {}
    for path in paths:
        ctx.say(f"checking {path}")
        result = await asyncio.to_thread(_check_archive, path, config, opts)
        outcome.warnings += [f"{path}: {f}" for f in result.findings if f.level is Severity.WARNING]
        manifest = result.report.manifest
        assert manifest is not None  # a valid archive has a manifest  # noqa: S101
        manifests[path] = manifest
    ids: dict[str, Path] = {}
    for path, manifest in manifests.items():
        if manifest.id in ids and ids[manifest.id] != path:
            raise Refused(
                f"{path} and {ids[manifest.id]} are two different archives of the same "
                f"solution version {manifest.id}",
                hint="import only one of them",
            )
        ids[manifest.id] = path
    async with connect(ctx.target) as kube:
        current_records, _ = await read_records(kube)
        taken = {
            item.id: item.archive
            for item in await asyncio.to_thread(scan_config, config, current_records)
            if item.id
        }
        for path, manifest in manifests.items():
            other = taken.get(manifest.id)
            if other is not None and other != str(path):
                raise Refused(
                    f"solution {manifest.id} is already imported from {other}; {path} is a "
                    "different archive with the same id",
                    hint=f"unimport {other} first, or import that same file",
                )
        new = [p for p in paths if str(p) not in config.archives]
        for path in new:
            outcome.steps.append(Step("configure", str(path), "add to SolutionsConfiguration"))
            images = (
                f"served by the built-in registry at {config.registry.endpoint}/"
                f"{manifests[path].id}/"
                if config.registry.mode.value == "builtin"
                else f"pushed to {config.registry.push_url}"
            )
            outcome.steps.append(Step("images", manifests[path].id, images))
        desired = config
        for path in paths:
            desired = desired.with_archive(str(path))
        if opts.dry_run:
            outcome.steps += await sync_records(kube, desired, dry_run=True)
            return outcome
        if config.registry.mode.value != "builtin":
            raise Refused(
                "push mode is configured (registry.mode: push) but this build cannot push yet",
                hint="set registry.mode: builtin and run 'solutions registry serve'",
            )
        with store.edit() as edit:
            for path in paths:
                edit.config = edit.config.with_archive(str(path))
            final = edit.config
        outcome.steps += await sync_records(kube, final, dry_run=False)
    return outcome


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
    known = ", ".join(sorted(i.id or i.archive for i in imported)) or "none"
    raise InvalidInput(
        f"{ref} is not imported (imported: {known})",
        hint="give the archive path or the solution id <name>-<version>; see 'solutions list'",
    )


async def unimport_archives(ctx: Context, opts: UnimportOptions) -> Outcome:
    """Remove archives from SolutionsConfiguration and the cluster record, when safe."""
    if not opts.refs:
        raise InvalidInput("nothing to unimport", hint="solutions unimport ARCHIVE|ID ...")
    store = ConfigStore(ctx.config_path)
    outcome = Outcome(dry_run=opts.dry_run)
    async with connect(ctx.target) as kube:
        with store.edit(dry_run=opts.dry_run) as edit:
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
                        f"{item.id} is the active version of {name} "
                        f"(deactivate it, or activate another version, first)"
                    )
                places = usage_of(envs, name, version)
                if places:
                    refusals.append(
                        f"{item.id} is deployed in {', '.join(places)} "
                        "(remove it from those environments first)"
                    )
            if refusals:
                raise Refused("cannot unimport: " + "; ".join(refusals), hint="nothing was changed")
            for item in targets:
                outcome.steps.append(
                    Step("configure", item.archive, "remove from SolutionsConfiguration")
                )
                edit.config = edit.config.without_archive(item.archive)
            outcome.steps += await sync_records(kube, edit.config, dry_run=True)
        if not opts.dry_run:
            await sync_records(kube, store.read(), dry_run=False)
    return outcome


# -- list -----------------------------------------------------------------------------------


async def list_solutions(ctx: Context) -> dict[str, Any]:
    """Imported versions per solution: archive, active mark, problems, cluster record state."""
    config = ConfigStore(ctx.config_path).read()
    records: Records | None = None
    cluster_error: str | None = None
    try:
        async with connect(ctx.target) as kube:
            records, _ = await read_records(kube)
    except SolutionsError as err:
        cluster_error = str(err)
    imported = await asyncio.to_thread(scan_config, config, records)
    versions: dict[str, list[str]] = {}
    for item in imported:
        if item.manifest:
            versions.setdefault(item.manifest.name, []).append(item.manifest.version)
    active = resolve_active(config.active, versions)
    recorded = {r.id for rs in (records or {}).values() for r in rs}
    solutions: dict[str, list[dict[str, Any]]] = {}
    for item in imported:
        m = item.manifest
        key = m.name if m else "(unknown)"
        entry = {
            "id": item.id,
            "name": m.display_name if m else None,
            "version": m.version if m else None,
            "archive": item.archive,
            "active": bool(m and active.get(m.name) == m.version),
            "recorded": None if records is None else (item.id in recorded),
            "problem": item.problem,
        }
        solutions.setdefault(key, []).append(entry)
    for entries in solutions.values():
        entries.sort(
            key=lambda e: parse_version(e["version"]) if e["version"] else parse_version("0.0.0")
        )
    return {
        "config": str(ctx.config_path),
        "activeConfigured": dict(config.active),
        "solutions": solutions,
        "clusterError": cluster_error,
    }
