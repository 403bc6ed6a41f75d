"""What every verb shares: the context, plans as data, and the state read from the config.

Pure helpers turn SolutionsConfiguration (plus the cluster record, for archives that went
missing) into the imported versions, the resolved active versions and the desired cluster
record; :mod:`.converge` and the verbs build on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import LATEST, SolutionsConfiguration
from metalk8s_solutions.api.manifest import SolutionManifest, parse_manifest
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.versions import latest, version_key
from metalk8s_solutions.archive.pinning import changed, open_archive
from metalk8s_solutions.archive.product import read_solution_manifest
from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.cluster.state import (
    Records,
    SolutionRecord,
)
from metalk8s_solutions.errors import ArchiveChanged, ArchiveError, SolutionsError

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


def read_archive_manifest(path: Path, pin: Pin | None = None) -> SolutionManifest:
    """The manifest of an archive, read from the ISO without extracting anything; with a pin,
    checked against it (:class:`~metalk8s_solutions.errors.ArchiveChanged` otherwise)."""
    with open_archive(path, pin) as iso:
        manifest = read_solution_manifest(iso, f"{path}")
    if pin is not None and manifest.id != pin.id:
        raise changed(path, pin, f"it now holds {manifest.id}")
    return manifest


def pin_of(
    archive: str, config: SolutionsConfiguration, record: SolutionRecord | None
) -> tuple[Pin | None, str | None]:
    """The pin of ``archive`` (configuration first, then cluster record), or a problem when the
    two disagree (one of them was edited by hand)."""
    pinned = config.pins.get(archive)
    recorded = record.pin if record is not None else None
    if pinned is not None and recorded is not None and pinned != recorded:
        return pinned, (
            f"its pin in SolutionsConfiguration ({pinned.describe()}) differs from the one in "
            f"the cluster record ({recorded.describe()}); one of them was edited: restore it"
        )
    return pinned or recorded, None


@dataclass(frozen=True)
class Imported:
    """An archive listed in SolutionsConfiguration, with what we know of it."""

    archive: str
    manifest: SolutionManifest | None
    problem: str | None = None  # e.g. the file was moved or deleted after import
    pin: Pin | None = None  # what it held when verified at import (None: not pinned yet)
    changed: bool = False  # the problem: it no longer matches its pin

    def refusal(self, prefix: str) -> SolutionsError:
        """The error for using it: :class:`ArchiveChanged` when changed since import."""
        cls = ArchiveChanged if self.changed else ArchiveError
        return cls(f"{prefix}: {self.problem}", hint="nothing was changed")

    @property
    def id(self) -> str | None:
        return self.manifest.id if self.manifest else None


def scan_config(config: SolutionsConfiguration, records: Records | None = None) -> list[Imported]:
    """Read the manifest of each configured archive; missing files are reported, not raised."""
    known = {r.archive: r for versions in (records or {}).values() for r in versions}
    result: list[Imported] = []
    for archive in config.archives:
        path = Path(archive)
        record = known.get(archive)
        pin, conflict = pin_of(archive, config, record)
        is_changed = conflict is not None
        try:
            if conflict is not None:
                raise SolutionsError(conflict)
            result.append(Imported(archive, read_archive_manifest(path, pin), pin=pin))
        except (SolutionsError, OSError) as err:
            if not path.exists() and (pin is not None or record is not None):
                problem = (
                    "archive file is missing (moved or deleted after import); put it back or "
                    "unimport it"
                )
            elif not path.exists():  # listed, never imported: most likely a typo
                problem = "archive file does not exist; check the path in 'archives'"
            elif isinstance(err, ArchiveChanged):
                problem = str(err).removeprefix(f"archive {path} ")
                is_changed = True
            else:
                problem = conflict or f"archive is unreadable: {err}"
            manifest = None
            if record is not None:
                try:
                    manifest = _manifest_from_record(record)
                except SolutionsError:
                    manifest = None
            result.append(Imported(archive, manifest, problem, pin, is_changed))
    return result


def _manifest_from_record(record: SolutionRecord) -> SolutionManifest:
    import yaml  # noqa: PLC0415

    return parse_manifest(yaml.safe_dump(dict(record.manifest)).encode(), "cluster record")


# -- pure planning ------------------------------------------------------------------------


def resolve_active(active: Mapping[str, str], versions: Mapping[str, list[str]]) -> dict[str, str]:
    """Active version per solution, ``latest`` resolved in the one version order.

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


def desired_records(
    imported: list[Imported], active: Mapping[str, str], pins: Mapping[str, Pin] | None = None
) -> Records:
    """The cluster record that SolutionsConfiguration implies (``pins``: of archives pinned by
    this convergence, for those that have none yet)."""
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
                pin=item.pin or (pins or {}).get(item.archive),
            )
        )
    for versions_of in records.values():
        versions_of.sort(key=lambda r: version_key(r.version))
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
