"""What the built-in registry serves, as plain data: repositories, their tags, manifests and blobs.

The registry (:mod:`metalk8s_solutions.images.registry_server`) answers every request from one
immutable :class:`RegistryIndex`, built from the catalogs of the imported archives and swapped
whole when an archive is imported, unimported, moved or deleted.  Everything here is pure (no
sockets, no event loop) so the protocol details are unit-tested in milliseconds: the routing of
``/v2/...`` paths, ``Range`` headers, ``n``/``last`` pagination, error bodies and the counters a
``/metrics`` endpoint exposes.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from metalk8s_solutions.images.catalog import Extent, ManifestEntry, SolutionImages

#: Repository name components and references, as in the distribution spec.
NAME = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")

MAX_PAGE = 10_000
#: ASCII digits only: ``str.isdigit()`` also accepts '²' or Arabic-Indic digits, which ``int()``
#: then rejects
ASCII_NUMBER = re.compile(r"[0-9]+")
#: more digits than any size or count we serve: read as "very large" without calling int() on
#: them (int() refuses strings of more than 4300 digits)
_MAX_DIGITS = 18
_VERY_LARGE = 10**_MAX_DIGITS


# -- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryProblem:
    """An error answer: HTTP status and the spec's error code and message."""

    status: int
    code: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"errors": [{"code": self.code, "message": self.message}]}).encode()


def name_unknown(name: str, why: str = "") -> RegistryProblem:
    return RegistryProblem(404, "NAME_UNKNOWN", why or f"repository {name} is not known")


def unsupported(message: str, status: int = 405) -> RegistryProblem:
    return RegistryProblem(status, "UNSUPPORTED", message)


# -- the open ISO files -------------------------------------------------------------------------


class ArchiveFile:
    """An open ISO file, shared by the requests that serve from it.

    The registry keeps each archive open while it serves it, so every byte it sends comes from
    the very file its catalog was read from, even while that path is being replaced.  When the
    archive stops being served the file is *retired*: it is closed once the last transfer using
    it ends (closing it under a running ``sendfile`` could let the descriptor number be reused by
    another file).  Only the event loop's thread touches the counters.
    """

    def __init__(self, path: Path, handle: BinaryIO, identity: tuple[int, ...]) -> None:
        self.path = path
        self.handle = handle
        #: (st_dev, st_ino, st_size, st_mtime_ns) of the file when it was opened
        self.identity = identity
        self._users = 0
        self._retired = False
        self._lock = threading.Lock()

    def acquire(self) -> BinaryIO:
        with self._lock:
            if self.handle.closed:
                raise ValueError(f"{self.path} is no longer served")
            self._users += 1
        return self.handle

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self.handle.close()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            close = self._users == 0
        if close:
            self.handle.close()

    @property
    def closed(self) -> bool:
        return self.handle.closed


# -- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    """One repository ``<solution id>/<image>`` and what it may serve."""

    name: str
    solution_id: str
    image: str
    tags: dict[str, str]
    manifests: dict[str, ManifestEntry]
    blobs: dict[str, Extent]
    archive: ArchiveFile

    def manifest(self, reference: str) -> ManifestEntry | None:
        digest = self.tags.get(reference, reference)
        return self.manifests.get(digest)


@dataclass(frozen=True)
class Unavailable:
    """An archive listed in the configuration that cannot be served, and why."""

    archive: str
    reason: str
    #: the solution id it held (known when it was served before, or from its file name)
    solution_id: str | None = None

    def problem(self, name: str) -> RegistryProblem:
        return name_unknown(
            name,
            f"repository {name} cannot be served: archive {self.archive} {self.reason}",
        )


@dataclass(frozen=True)
class RegistryIndex:
    """Every repository the registry serves now, and the archives it cannot serve."""

    repositories: dict[str, Repository] = field(default_factory=dict)
    unavailable: tuple[Unavailable, ...] = ()

    def names(self) -> list[str]:
        return sorted(self.repositories)

    def lookup(self, name: str) -> Repository | RegistryProblem:
        repository = self.repositories.get(name)
        if repository is not None:
            return repository
        prefix = name.partition("/")[0]
        for item in self.unavailable:
            if item.solution_id == prefix:
                return item.problem(name)
        unknown = [u for u in self.unavailable if u.solution_id is None]
        if unknown:
            listed = "; ".join(f"{u.archive} {u.reason}" for u in unknown)
            return name_unknown(
                name,
                f"repository {name} is not known (and {len(unknown)} archive(s) of the "
                f"configuration cannot be served: {listed})",
            )
        return name_unknown(name)


def repositories_of(catalog: SolutionImages, archive: ArchiveFile) -> list[Repository]:
    """The repositories of one archive, each limited to the blobs its image references."""
    result = []
    for image in sorted(catalog.tags):
        owned = catalog.repository_blobs.get(image, set())
        result.append(
            Repository(
                name=f"{catalog.solution_id}/{image}",
                solution_id=catalog.solution_id,
                image=image,
                tags={**catalog.tags[image], **catalog.signature_tags.get(image, {})},
                manifests={d: m for d, m in catalog.manifests.items() if d in owned},
                blobs={d: e for d, e in catalog.blobs.items() if d in owned},
                archive=archive,
            )
        )
    return result


def build_index(
    served: Iterable[tuple[SolutionImages, ArchiveFile]], unavailable: Sequence[Unavailable] = ()
) -> RegistryIndex:
    repositories: dict[str, Repository] = {}
    for catalog, archive in served:
        for repository in repositories_of(catalog, archive):
            repositories.setdefault(repository.name, repository)
    return RegistryIndex(repositories, tuple(unavailable))


# -- routing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """What a ``/v2/...`` path asks for: ``kind`` is one of the endpoints below."""

    kind: str  # base, catalog, tags, manifest, blob, upload, referrers, metrics, unknown
    name: str = ""
    reference: str = ""


_V2 = re.compile(
    r"^/v2/(?P<name>.+)/(?:(?P<kind>manifests|blobs|referrers)/(?P<ref>[^/]+)|(?P<tags>tags/list))$"
)
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads(?:/.*)?$")


def route(path: str) -> Route:
    if path in ("/v2", "/v2/"):
        return Route("base")
    if path == "/v2/_catalog":
        return Route("catalog")
    if path == "/metrics":
        return Route("metrics")
    upload = _UPLOAD.match(path)
    if upload:
        return Route("upload", upload.group("name"))
    match = _V2.match(path)
    if match is None:
        return Route("unknown")
    if match.group("tags"):
        return Route("tags", match.group("name"))
    kind = {"manifests": "manifest", "blobs": "blob", "referrers": "referrers"}[match.group("kind")]
    return Route(kind, match.group("name"), match.group("ref"))


def check_name(name: str) -> RegistryProblem | None:
    if len(name) > 255 or not NAME.match(name):
        return RegistryProblem(400, "NAME_INVALID", f"invalid repository name {name!r}")
    return None


_HEX_LENGTHS = {"sha256": 64, "sha512": 128}


def check_digest(reference: str) -> RegistryProblem | None:
    algorithm, _, encoded = reference.partition(":")
    length = _HEX_LENGTHS.get(algorithm)
    wrong_hex = length is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", encoded)
    if wrong_hex or not DIGEST.match(reference):
        return RegistryProblem(400, "DIGEST_INVALID", f"invalid digest {reference!r}")
    return None


def is_digest(reference: str) -> bool:
    return ":" in reference


# -- Range --------------------------------------------------------------------------------------

UNSATISFIABLE = "unsatisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end_inclusive)`` of a single ``bytes=`` range, ``UNSATISFIABLE``, or None.

    None means "send the whole blob": no header, another unit, several ranges or a malformed
    value (RFC 9110 lets a server ignore a Range it does not support).
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if (first and not ASCII_NUMBER.fullmatch(first)) or (last and not ASCII_NUMBER.fullmatch(last)):
        return None
    if first == "":
        if last == "":
            return None
        suffix = ascii_number(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return (max(size - suffix, 0), size - 1)
    start = ascii_number(first)
    end = ascii_number(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return (start, min(end, size - 1))


def ascii_number(text: str) -> int:
    """The value of a string of ASCII digits (checked by the caller), capped at 10**18."""
    digits = text.lstrip("0")
    return int(digits or "0") if len(digits) <= _MAX_DIGITS else _VERY_LARGE


# -- pagination ---------------------------------------------------------------------------------


def paginate(
    items: Sequence[str], n: str | None, last: str | None
) -> tuple[list[str], str | None] | RegistryProblem:
    """The page of sorted ``items`` after ``last``, at most ``n`` long, and the next ``last``."""
    after = [item for item in items if last is None or item > last]
    if n is None or n == "":
        return after, None
    if not ASCII_NUMBER.fullmatch(n):
        return RegistryProblem(
            400, "PAGINATION_NUMBER_INVALID", f"invalid n={n[:20]!r}: n is a number of items"
        )
    count = min(ascii_number(n), MAX_PAGE)
    page = after[:count]
    more = len(after) > count > 0
    return page, (page[-1] if more else None)


# -- metrics ------------------------------------------------------------------------------------


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class RegistryMetrics:
    """Requests and bytes served, per repository; rendered in the Prometheus text format.

    Only repositories the registry knows are labels (anything else counts under ``-``), so a
    client asking for random names cannot grow the series without bound.
    """

    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    archives_served: int = 0
    archives_unavailable: int = 0
    #: solution id -> times an archive of it was (re)read and picked up (imports, re-imports)
    imports: dict[str, int] = field(default_factory=dict)
    #: archives that could not be read (missing, corrupt), and server-side failures
    archive_errors: int = 0
    #: archives refused because they no longer match their pin (changed after import)
    pin_mismatches: int = 0
    errors: int = 0

    def picked_up(self, solution_id: str) -> None:
        self.imports[solution_id] = self.imports.get(solution_id, 0) + 1

    def record(self, repository: str, status: int, sent: int) -> None:
        key = (repository, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if sent:
            self.bytes_sent[repository] = self.bytes_sent.get(repository, 0) + sent

    def render(self) -> str:
        lines = [
            "# HELP solutions_registry_requests_total Requests answered, by repository and status.",
            "# TYPE solutions_registry_requests_total counter",
        ]
        for (repository, status), count in sorted(self.requests.items()):
            lines.append(
                f'solutions_registry_requests_total{{repository="{_label(repository)}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP solutions_registry_bytes_sent_total Bytes of manifests and blobs sent.",
            "# TYPE solutions_registry_bytes_sent_total counter",
        ]
        for repository, sent in sorted(self.bytes_sent.items()):
            lines.append(
                f'solutions_registry_bytes_sent_total{{repository="{_label(repository)}"}} {sent}'
            )
        lines += [
            "# HELP solutions_registry_archives Archives of the configuration, by state.",
            "# TYPE solutions_registry_archives gauge",
            f'solutions_registry_archives{{state="served"}} {self.archives_served}',
            f'solutions_registry_archives{{state="unavailable"}} {self.archives_unavailable}',
            "# HELP solutions_registry_imports_total Archives picked up (read and served), "
            "by solution id.",
            "# TYPE solutions_registry_imports_total counter",
        ]
        lines += [
            f'solutions_registry_imports_total{{solution="{_label(sid)}"}} {count}'
            for sid, count in sorted(self.imports.items())
        ]
        lines += [
            "# HELP solutions_registry_archive_errors_total Archives that could not be read.",
            "# TYPE solutions_registry_archive_errors_total counter",
            f"solutions_registry_archive_errors_total {self.archive_errors}",
            "# HELP solutions_archive_pin_mismatch_total Archives refused: changed since import.",
            "# TYPE solutions_archive_pin_mismatch_total counter",
            f"solutions_archive_pin_mismatch_total {self.pin_mismatches}",
            "# HELP solutions_registry_errors_total Requests that failed on the server side.",
            "# TYPE solutions_registry_errors_total counter",
            f"solutions_registry_errors_total {self.errors}",
        ]
        return "\n".join(lines) + "\n"
