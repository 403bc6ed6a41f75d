"""Push mode: copy every image of a solution archive into any OCI registry.

Images of solution version ``<id>`` land under ``<prefix>/<id>/<image>:<tag>``.  A push is a plan
and its execution:

- **plan** (HEAD requests only, also what ``--dry-run`` shows): every blob each repository needs
  is *skipped* when the repository already has it (so an interrupted push resumes where it
  stopped), *mounted* (cross-repository blob mount) when the registry holds it in another
  repository — one we push in this run, or one of the related repositories the caller names,
  e.g. the previous versions of the same solution — and *uploaded* otherwise, once per digest;
- **blobs**: uploads run a few at a time, largest first, each streamed straight from its byte
  range of the ISO file (``os.pread``, never extracted, never held whole in memory): a
  monolithic ``POST`` + ``PUT ?digest=``, or ``PATCH`` chunks when asked to or when the registry
  refuses a large body.  A refused mount (``202``) falls back to an upload in the session the
  registry opened.  Broken connections and busy registries are retried;
- **manifests** last, children before parents (an index after its manifests), with their exact
  bytes and media type so that digests are preserved; a tag already pointing at the right
  digest is left alone.

The result lists each image by digest (``<registry>/<prefix>/<id>/<image>@sha256:…``): deployments
reference images that way, so a rescheduled pod gets exactly the same bytes.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

# lightkube's HTTP client (httpx2 keeps httpx's API): one HTTP stack in the process, not two.
import httpx2 as httpx

from metalk8s_solutions.errors import ArchiveError, RegistryError, command
from metalk8s_solutions.images.catalog import Extent, SolutionImages
from metalk8s_solutions.images.client import (
    RegistryClient,
    RegistryTarget,
    RegistryUnavailable,
    join_location,
    pull_scope,
    push_scope,
)
from metalk8s_solutions.images.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

#: Blob uploads at once.  On a 2-core machine pushing to a local registry, 4 keeps both cores
#: busy (bench/push_vs_skopeo.py); more only adds contention.
DEFAULT_CONCURRENCY = 4
#: HEAD requests at once while planning.
CHECK_CONCURRENCY = 16
#: Bytes read from the ISO file and handed to the socket at a time.
READ_SIZE = 1024 * 1024
#: Chunk size when the registry refuses a monolithic upload (HTTP 413).
FALLBACK_CHUNK = 16 * 1024 * 1024
RETRIES = 3
_T = TypeVar("_T")
ACCEPT_MANIFESTS = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))


class Action(enum.StrEnum):
    """What happens to one blob in one repository."""

    SKIP = "skip"  # the repository has it already
    MOUNT = "mount"  # cross-repository mount from ``source``
    UPLOAD = "upload"  # its bytes are sent


@dataclass(frozen=True)
class BlobStep:
    """One blob of one repository, and how it gets there."""

    digest: str
    size: int
    repository: str
    action: Action
    source: str | None = None  # the repository a mount comes from


@dataclass(frozen=True)
class PushProgress:
    """Where a push stands; ``bytes_total`` counts the bytes to upload (mounts and skips are
    free), ``blobs_total`` the blobs of every repository."""

    phase: str  # "check", "blobs", "manifests", "done"
    bytes_done: int
    bytes_total: int
    blobs_done: int
    blobs_total: int
    skipped: int
    mounted: int


ProgressCallback = Callable[[PushProgress], None]


@dataclass(frozen=True)
class PushResult:
    """What a push did (or, with ``dry_run``, would do)."""

    solution_id: str
    registry: str  # host[:port]
    prefix: str
    uploaded_blobs: int
    uploaded_bytes: int
    mounted_blobs: int
    mounted_bytes: int
    skipped_blobs: int
    skipped_bytes: int
    manifests_pushed: int
    manifests_skipped: int
    duration: float
    #: ``image:tag`` -> ``<registry>/<prefix>/<id>/<image>@sha256:…``
    images: Mapping[str, str]
    #: ``image:tag`` -> manifest digest
    digests: Mapping[str, str] = field(default_factory=dict)
    steps: tuple[BlobStep, ...] = ()
    dry_run: bool = False

    def references_at(self, endpoint: str) -> dict[str, str]:
        """``image:tag`` -> ``<endpoint>/<id>/<image>@sha256:…``, for nodes that pull from
        ``endpoint`` (the registry as nodes see it, prefix included)."""
        base = endpoint.rstrip("/")
        return {
            ref: f"{base}/{self.solution_id}/{ref.rpartition(':')[0]}@{digest}"
            for ref, digest in self.digests.items()
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "solution": self.solution_id,
            "registry": self.registry,
            "prefix": self.prefix,
            "dryRun": self.dry_run,
            "blobs": {
                "uploaded": {"count": self.uploaded_blobs, "bytes": self.uploaded_bytes},
                "mounted": {"count": self.mounted_blobs, "bytes": self.mounted_bytes},
                "skipped": {"count": self.skipped_blobs, "bytes": self.skipped_bytes},
            },
            "manifests": {"pushed": self.manifests_pushed, "skipped": self.manifests_skipped},
            "durationSeconds": round(self.duration, 3),
            "images": dict(self.images),
        }


def plan_blobs(
    needs: Mapping[str, Sequence[str]],
    sizes: Mapping[str, int],
    present: Collection[tuple[str, str]],
    elsewhere: Mapping[str, str],
) -> list[BlobStep]:
    """Decide, for each (repository, blob), whether to skip, mount or upload it.

    ``needs`` maps each digest to the repositories that must hold it, in push order;
    ``present`` holds the (repository, digest) pairs the registry already has; ``elsewhere``
    maps a digest to a related repository that has it.  Each digest is uploaded at most once;
    its other repositories mount it.
    """
    steps: list[BlobStep] = []
    for digest in sorted(needs, key=lambda d: (-sizes[d], d)):
        repositories = list(dict.fromkeys(needs[digest]))
        size = sizes[digest]
        holders = [r for r in repositories if (r, digest) in present]
        source = holders[0] if holders else elsewhere.get(digest)
        for repository in repositories:
            if (repository, digest) in present:
                steps.append(BlobStep(digest, size, repository, Action.SKIP))
            elif source is None:
                steps.append(BlobStep(digest, size, repository, Action.UPLOAD))
                source = repository
            else:
                steps.append(BlobStep(digest, size, repository, Action.MOUNT, source))
    return steps


def manifest_children(data: bytes, known: Collection[str]) -> list[str]:
    """Digests of the manifests an index lists (those of the archive), in order."""
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    children: list[str] = []
    for entry in entries:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if isinstance(digest, str) and digest in known and digest not in children:
            children.append(digest)
    return children


@dataclass
class _Counters:
    bytes_done: int = 0
    bytes_total: int = 0
    blobs_done: int = 0
    blobs_total: int = 0
    skipped: int = 0
    mounted: int = 0
    uploaded_blobs: int = 0
    uploaded_bytes: int = 0
    mounted_bytes: int = 0
    manifests_pushed: int = 0
    manifests_skipped: int = 0
    phase: str = "check"
    callback: ProgressCallback | None = field(default=None, repr=False)

    def report(self) -> None:
        if self.callback is not None:
            self.callback(
                PushProgress(
                    self.phase,
                    self.bytes_done,
                    self.bytes_total,
                    self.blobs_done,
                    self.blobs_total,
                    self.skipped,
                    self.mounted,
                )
            )


class _Files:
    """Open ISO files, read by byte range."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    def fd(self, path: Path) -> int:
        if path not in self._fds:
            try:
                self._fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as err:
                raise ArchiveError(
                    f"archive {path}: cannot read it ({err.strerror})",
                    hint="it was moved or deleted after import: put it back or import it again",
                ) from err
        return self._fds[path]

    def read(self, extent: Extent) -> bytes:
        data = os.pread(self.fd(extent.archive), extent.size, extent.offset)
        if len(data) != extent.size:
            raise ArchiveError(
                f"archive {extent.archive}: truncated",
                hint="it was modified after import: obtain a fresh copy",
            )
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class _Pusher:
    """One push of one catalog (see the module docstring)."""

    def __init__(
        self,
        catalog: SolutionImages,
        target: RegistryTarget,
        client: RegistryClient,
        *,
        related: Sequence[str],
        concurrency: int,
        chunk_size: int | None,
        counters: _Counters,
    ) -> None:
        self.catalog = catalog
        self.target = target
        self.client = client
        self.related = [r for r in dict.fromkeys(related) if r != catalog.solution_id]
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.checks = asyncio.Semaphore(CHECK_CONCURRENCY)
        self.chunk_size = chunk_size
        self.counters = counters
        self.files = _Files()

    def repository(self, image: str) -> str:
        return self.target.repository(self.catalog.solution_id, image)

    # -- plan ---------------------------------------------------------------------------------

    def needs(self) -> dict[str, list[str]]:
        needs: dict[str, list[str]] = {}
        for image in sorted(self.catalog.tags):
            for digest in sorted(self.catalog.repository_blobs.get(image, ())):
                if digest in self.catalog.manifests:
                    continue
                if digest not in self.catalog.blobs:
                    raise ArchiveError(
                        f"archive {self.catalog.archive}: image {image} needs blob {digest}, "
                        "which the archive does not hold",
                        hint=f"run '{command('validate', str(self.catalog.archive))}'",
                    )
                needs.setdefault(digest, []).append(self.repository(image))
        return needs

    async def has_blob(self, repository: str, digest: str, *, ours: bool) -> bool:
        scopes = (push_scope(repository),) if ours else (pull_scope(repository),)
        async with self.checks:
            resp = await self.client.request(
                "HEAD",
                f"/v2/{repository}/blobs/{digest}",
                scopes=scopes,
                repository=repository,
                follow_redirects=True,
            )
        if resp.status_code == 200:
            return True
        if resp.status_code == 404 or not ours:
            return False  # a related repository we may not read is just not a source
        raise self.client.status_error(resp, f"checking blob {digest}", repository)

    async def find_elsewhere(self, digest: str, wanted_by: Sequence[str]) -> str | None:
        images = [r.rsplit("/", 1)[-1] for r in wanted_by]
        images += [i for i in sorted(self.catalog.tags) if i not in images]
        for solution_id in self.related:
            for image in images:
                candidate = self.target.repository(solution_id, image)
                if await self.has_blob(candidate, digest, ours=False):
                    return candidate
        return None

    async def plan(self) -> list[BlobStep]:
        needs = self.needs()
        pairs = [(repo, digest) for digest, repos in needs.items() for repo in repos]
        found = await asyncio.gather(*(self.has_blob(r, d, ours=True) for r, d in pairs))
        present = {pair for pair, hit in zip(pairs, found, strict=True) if hit}
        missing = [d for d, repos in needs.items() if not any((r, d) in present for r in repos)]
        elsewhere: dict[str, str] = {}
        if self.related:
            sources = await asyncio.gather(*(self.find_elsewhere(d, needs[d]) for d in missing))
            elsewhere = {d: s for d, s in zip(missing, sources, strict=True) if s is not None}
        sizes = {digest: self.catalog.blobs[digest].size for digest in needs}
        return plan_blobs(needs, sizes, present, elsewhere)

    # -- blobs --------------------------------------------------------------------------------

    def body(
        self, extent: Extent, start: int, length: int, sent: list[int]
    ) -> AsyncIterator[bytes]:
        fd = self.files.fd(extent.archive)

        async def chunks() -> AsyncIterator[bytes]:
            position, end = extent.offset + start, extent.offset + start + length
            while position < end:
                data = os.pread(fd, min(READ_SIZE, end - position), position)
                if not data:
                    raise ArchiveError(
                        f"archive {extent.archive}: truncated",
                        hint="it was modified after import: obtain a fresh copy",
                    )
                position += len(data)
                sent[0] += len(data)
                self.counters.bytes_done += len(data)
                self.counters.report()
                yield data

        return chunks()

    def chunk_body(
        self, extent: Extent, start: int, length: int, sent: list[int]
    ) -> Callable[[], AsyncIterator[bytes]]:
        return lambda: self.body(extent, start, length, sent)

    async def start_upload(self, repository: str) -> str:
        resp = await self.client.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scopes=(push_scope(repository),),
            repository=repository,
            headers={"Content-Length": "0"},
        )
        if resp.status_code != 202 or "Location" not in resp.headers:
            raise self.client.status_error(resp, "starting an upload", repository)
        return resp.headers["Location"]

    async def upload(self, step: BlobStep, location: str | None) -> None:
        extent = self.catalog.blobs[step.digest]
        sent = [0]
        try:
            if location is None:
                location = await self.start_upload(step.repository)
            chunked = self.chunk_size is not None and step.size > self.chunk_size
            if not chunked:
                resp = await self.put_blob(step, location, extent, sent)
                if resp.status_code == 413:
                    chunked = True
                    location = await self.start_upload(step.repository)
                    self.chunk_size = self.chunk_size or FALLBACK_CHUNK
                    self.counters.bytes_done -= sent[0]
                    sent[0] = 0
            if chunked:
                resp = await self.patch_blob(step, location, extent, sent)
            if resp.status_code != 201:
                raise self.client.status_error(
                    resp, f"uploading blob {step.digest}", step.repository
                )
        except BaseException:
            self.counters.bytes_done -= sent[0]  # a retry sends these bytes again
            raise

    async def put_blob(
        self, step: BlobStep, location: str, extent: Extent, sent: list[int]
    ) -> httpx.Response:
        url = join_location(self.target.url, location, {"digest": step.digest})
        if url.scheme == "http":
            self.files.fd(extent.archive)  # a clear error if the archive is gone

            def count(n: int) -> None:
                sent[0] += n
                self.counters.bytes_done += n
                self.counters.report()

            return await self.client.put_file(
                url,
                scopes=(push_scope(step.repository),),
                repository=step.repository,
                headers={"Content-Type": "application/octet-stream"},
                path=extent.archive,
                offset=extent.offset,
                count=step.size,
                sent=count,
            )
        return await self.client.request(
            "PUT",
            join_location(self.target.url, location, {"digest": step.digest}),
            scopes=(push_scope(step.repository),),
            repository=step.repository,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(step.size),
            },
            body=lambda: self.body(extent, 0, step.size, sent),
        )

    async def patch_blob(
        self, step: BlobStep, location: str, extent: Extent, sent: list[int]
    ) -> httpx.Response:
        assert self.chunk_size is not None  # noqa: S101
        start = 0
        while start < step.size:
            length = min(self.chunk_size, step.size - start)
            body = self.chunk_body(extent, start, length, sent)
            resp = await self.client.request(
                "PATCH",
                join_location(self.target.url, location),
                scopes=(push_scope(step.repository),),
                repository=step.repository,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(length),
                    "Content-Range": f"{start}-{start + length - 1}",
                },
                body=body,
            )
            if resp.status_code != 202 or "Location" not in resp.headers:
                raise self.client.status_error(
                    resp, f"uploading a chunk of blob {step.digest}", step.repository
                )
            location = resp.headers["Location"]
            start += length
        return await self.client.request(
            "PUT",
            join_location(self.target.url, location, {"digest": step.digest}),
            scopes=(push_scope(step.repository),),
            repository=step.repository,
            headers={"Content-Length": "0"},
        )

    async def mount(self, step: BlobStep) -> bool:
        """Mount ``step`` from its source; False when the registry refused and it was uploaded."""
        assert step.source is not None  # noqa: S101
        resp = await self.client.request(
            "POST",
            httpx.URL(
                f"{self.target.url}/v2/{step.repository}/blobs/uploads/",
                params={"mount": step.digest, "from": step.source},
            ),
            scopes=(push_scope(step.repository), pull_scope(step.source)),
            repository=step.repository,
            headers={"Content-Length": "0"},
        )
        if resp.status_code == 201:
            return True
        if resp.status_code == 202 and "Location" in resp.headers:
            self.counters.bytes_total += step.size
            await self.upload(step, resp.headers["Location"])
            return False
        raise self.client.status_error(resp, f"mounting blob {step.digest}", step.repository)

    async def retrying(self, action: Callable[[], Awaitable[_T]]) -> _T:
        for attempt in range(RETRIES - 1):
            try:
                return await action()
            except RegistryUnavailable:
                await asyncio.sleep(0.5 * 2**attempt)
        return await action()

    async def transfer(self, step: BlobStep) -> None:
        async with self.slots:
            if step.action is Action.UPLOAD:
                await self.retrying(lambda: self.upload(step, None))
                self.counters.uploaded_blobs += 1
                self.counters.uploaded_bytes += step.size
            else:
                mounted = await self.retrying(lambda: self.mount(step))
                if mounted:
                    self.counters.mounted += 1
                    self.counters.mounted_bytes += step.size
                else:
                    self.counters.uploaded_blobs += 1
                    self.counters.uploaded_bytes += step.size
        self.counters.blobs_done += 1
        self.counters.report()

    async def push_digest(self, steps: Sequence[BlobStep]) -> None:
        """The upload of one digest, then its mounts into the other repositories."""
        for step in steps:
            await self.transfer(step)

    async def push_blobs(self, steps: Sequence[BlobStep]) -> None:
        by_digest: dict[str, list[BlobStep]] = {}
        for step in steps:
            if step.action is not Action.SKIP:
                by_digest.setdefault(step.digest, []).append(step)
        tasks = [asyncio.create_task(self.push_digest(group)) for group in by_digest.values()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- manifests ----------------------------------------------------------------------------

    async def tagged_digest(self, repository: str, tag: str) -> str | None:
        resp = await self.client.request(
            "HEAD",
            f"/v2/{repository}/manifests/{tag}",
            scopes=(push_scope(repository),),
            repository=repository,
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if resp.status_code == 200:
            return str(resp.headers.get("Docker-Content-Digest", ""))
        if resp.status_code == 404:
            return None
        raise self.client.status_error(resp, f"checking tag {tag}", repository)

    def manifest_tree(self, digest: str) -> Iterator[str]:
        """``digest`` and the manifests below it, children first."""
        entry = self.catalog.manifests[digest]
        for child in manifest_children(self.files.read(entry.extent), self.catalog.manifests):
            if child != digest:
                yield from self.manifest_tree(child)
        yield digest

    async def put_manifest(self, repository: str, digest: str, reference: str) -> None:
        entry = self.catalog.manifests[digest]
        data = self.files.read(entry.extent)

        async def send() -> None:
            resp = await self.client.request(
                "PUT",
                f"/v2/{repository}/manifests/{reference}",
                scopes=(push_scope(repository),),
                repository=repository,
                headers={"Content-Type": entry.media_type},
                content=data,
            )
            if resp.status_code not in (200, 201):
                raise self.client.status_error(resp, f"pushing manifest {reference}", repository)
            answered = resp.headers.get("Docker-Content-Digest")
            if answered and answered != digest:
                raise self.client.fail(
                    f"the registry stored manifest {reference} as {answered}, not {digest}",
                    repository=repository,
                    hint="the registry rewrites manifests; use a registry that keeps them "
                    "(distribution, Harbor, zot)",
                )

        await self.retrying(send)

    async def push_tag(self, image: str, tag: str, digest: str, *, dry_run: bool) -> None:
        repository = self.repository(image)
        async with self.slots:
            if await self.tagged_digest(repository, tag) == digest:
                self.counters.manifests_skipped += 1
                return
            if dry_run:
                self.counters.manifests_pushed += 1
                return
            for reference in self.manifest_tree(digest):
                await self.put_manifest(repository, reference, reference)
            await self.put_manifest(repository, digest, tag)
            self.counters.manifests_pushed += 1

    async def push_manifests(self, *, dry_run: bool) -> None:
        """The images' tags, then their cosign signature tags (which name them)."""
        for refs in (self.catalog.image_refs(), self.catalog.signature_refs()):
            await asyncio.gather(
                *(self.push_tag(image, tag, digest, dry_run=dry_run) for image, tag, digest in refs)
            )

    def image_references(self) -> dict[str, str]:
        return {
            f"{image}:{tag}": f"{self.target.host}/{self.repository(image)}@{digest}"
            for image, tag, digest in self.catalog.image_refs()
        }


async def push_images(
    catalog: SolutionImages,
    target: RegistryTarget,
    *,
    related: Sequence[str] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_size: int | None = None,
    progress: ProgressCallback | None = None,
    dry_run: bool = False,
) -> PushResult:
    """Push every image of ``catalog`` into ``target`` (see the module docstring).

    ``related`` names other solution ids (e.g. the other imported versions of this solution)
    whose repositories under the same prefix may already hold some of the blobs: those are
    mounted rather than uploaded.  ``chunk_size`` forces chunked uploads of blobs larger than
    it.  With ``dry_run``, only HEAD requests are sent and the result says what would happen.
    Raises :class:`RegistryError` (or :class:`ArchiveError` when the ISO file is unreadable).
    """
    started = time.monotonic()
    counters = _Counters(callback=progress)
    async with RegistryClient(target, connections=max(concurrency, CHECK_CONCURRENCY)) as client:
        pusher = _Pusher(
            catalog,
            target,
            client,
            related=related,
            concurrency=concurrency,
            chunk_size=chunk_size,
            counters=counters,
        )
        try:
            await client.ping()
            counters.report()
            steps = await pusher.plan()
            skipped = [s for s in steps if s.action is Action.SKIP]
            counters.blobs_total = len(steps)
            counters.blobs_done = counters.skipped = len(skipped)
            counters.bytes_total = sum(s.size for s in steps if s.action is Action.UPLOAD)
            if dry_run:
                await pusher.push_manifests(dry_run=True)
                uploads = [s for s in steps if s.action is Action.UPLOAD]
                mounts = [s for s in steps if s.action is Action.MOUNT]
                counters.uploaded_blobs, counters.uploaded_bytes = (
                    len(uploads),
                    sum(s.size for s in uploads),
                )
                counters.mounted, counters.mounted_bytes = len(mounts), sum(s.size for s in mounts)
            else:
                counters.phase = "blobs"
                counters.report()
                await pusher.push_blobs(steps)
                counters.phase = "manifests"
                counters.report()
                await pusher.push_manifests(dry_run=False)
                counters.phase = "done"
                counters.report()
        finally:
            pusher.files.close()
    return PushResult(
        solution_id=catalog.solution_id,
        registry=target.host,
        prefix=target.prefix,
        uploaded_blobs=counters.uploaded_blobs,
        uploaded_bytes=counters.uploaded_bytes,
        mounted_blobs=counters.mounted,
        mounted_bytes=counters.mounted_bytes,
        skipped_blobs=len(skipped),
        skipped_bytes=sum(s.size for s in skipped),
        manifests_pushed=counters.manifests_pushed,
        manifests_skipped=counters.manifests_skipped,
        duration=time.monotonic() - started,
        images=pusher.image_references(),
        digests={f"{i}:{t}": d for i, t, d in catalog.image_refs()},
        steps=tuple(steps),
        dry_run=dry_run,
    )


__all__ = [
    "Action",
    "BlobStep",
    "PushProgress",
    "PushResult",
    "RegistryError",
    "RegistryTarget",
    "manifest_children",
    "plan_blobs",
    "push_images",
]
