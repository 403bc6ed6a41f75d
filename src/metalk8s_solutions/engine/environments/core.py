"""What every environment verb shares: the outcome, the imported versions, the session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import IngressSettings, SolutionsConfiguration
from metalk8s_solutions.api.manifest import SolutionManifest
from metalk8s_solutions.api.monitoring import load_monitoring
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.streams import read_limited
from metalk8s_solutions.api.versions import sort_versions
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.layout import crd_files
from metalk8s_solutions.archive.pinning import open_archive
from metalk8s_solutions.archive.product import operator_roles
from metalk8s_solutions.cluster.apply import Change, request
from metalk8s_solutions.cluster.envstate import EnvironmentState
from metalk8s_solutions.cluster.kube import Kube, connect
from metalk8s_solutions.cluster.resources import read_crd, read_environment_states
from metalk8s_solutions.cluster.state import ENV_LABEL, Records, read_records
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.engine.crds import convert_v1beta1
from metalk8s_solutions.engine.desired import VersionContent, check_env_name
from metalk8s_solutions.engine.names import closest, did_you_mean
from metalk8s_solutions.engine.state import (
    Context,
    Imported,
    Outcome,
    Step,
    resolve_active,
    scan_config,
)
from metalk8s_solutions.engine.wording import PlanFacts, plan_sentences
from metalk8s_solutions.errors import InvalidInput, Missing, Refused, SolutionsError, command

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
        imported, config.registry.endpoint, resolve_active(config.active, versions), config.ingress
    )


@contextlib.asynccontextmanager
async def session(ctx: Context, kube: Kube | None = None) -> AsyncIterator[Kube]:
    """``kube`` when the caller has a connection (web UI, tests, benchmark), else a new one."""
    if kube is not None:
        yield kube
        return
    async with connect(ctx.target) as fresh:
        yield fresh


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


def pick_namespaces(state: EnvironmentState, wanted: Sequence[str]) -> list[str]:
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


def deployed_targets(
    state: EnvironmentState, solution: str, wanted: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The namespaces asked for (``wanted``; default: all), and those running ``solution``."""
    candidates = pick_namespaces(state, wanted)
    return candidates, [ns for ns in candidates if solution in state.namespaces[ns].config]


async def version_to_deploy(
    ctx: Context, kube: Kube, solution: str, version: str
) -> tuple[Inventory, VersionContent]:
    """The inventory, and what the archive of ``solution`` ``version`` holds (Refused when it is
    not imported, or its archive is missing or changed)."""
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(solution, version)
    content = await asyncio.to_thread(load_version_content, Path(archive), inventory.pin(archive))
    return inventory, content


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
