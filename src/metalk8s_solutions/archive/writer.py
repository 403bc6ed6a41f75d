"""Write a Solution archive as an ISO 9660 image with Rock Ridge and Joliet, reproducibly.

pycdlib does the format work.  Two things are added around it:

- reproducibility: pycdlib stamps ``time.time()`` and local time into volume descriptors,
  directory records and Rock Ridge TF entries.  While an image is written, the ``time`` module
  seen by pycdlib is replaced by one frozen at ``SOURCE_DATE_EPOCH`` (UTC), and files are added
  in sorted order, so the same inputs give a byte-identical image;
- one read per input byte: every source is opened only when pycdlib copies its data, read once
  into reusable buffers and, when asked, hashed on a second thread while it is written
  (:class:`_Copier`); files whose bytes depend on that hashing (SHA256SUMS, its signatures)
  have their place reserved in the layout and are written into it at the end.  Nothing is held
  in memory but two copy buffers.

A file over 4 GiB is written as a multi-extent file, as xorriso writes one (``-iso-level 3``):
directory records of the same name, each for an extent of at most 4 GiB - 2 KiB, all but the last
flagged multi-extent, with Rock Ridge entries on each, in the primary and Joliet trees; the
extents are contiguous, so the file stays one byte range of the image.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any, BinaryIO

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.utils

from metalk8s_solutions.errors import ArchiveError

MAX_NAME = 255  # the Rock Ridge limit, in characters
MAX_JOLIET_NAME = 64  # Joliet's: a longer name is cut there in the Joliet tree, as mkisofs -J does
FILE_MODE = 0o100444
DIR_MODE = 0o040555
SECTOR = 2048
_COPY_BLOCK = 256 * 1024  # small enough to stay in cache between the copy in and the copy out
_SLOTS = 8  # blocks in the ring: two hash jobs in flight
_BATCH = 4  # blocks per hash job
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_TIME_LOCK = threading.Lock()
_PYCDLIB_TIME_USERS: tuple[Any, ...] = (
    pycdlib.pycdlib,
    pycdlib.headervd,
    pycdlib.dates,
    pycdlib.utils,
)


@dataclass(frozen=True)
class IsoFile:
    """A file to put in the image: its archive path, size and where its bytes come from.

    ``source`` is ``None`` for a reserved file, whose bytes are given at the end of the write
    (see :func:`write_iso`).
    """

    path: str
    size: int
    source: Path | Callable[[], BinaryIO] | None


class _Copier:
    """Reads every file once, into a ring of reusable buffers, and hashes it while it is written.

    pycdlib copies a file by calling ``read(n)`` on its stream and writing what it gets before
    the next ``read``.  Each ``read`` fills the next slot of a ring (no new ``bytes`` per block)
    and returns a view of it; when hashing, every ``_BATCH`` blocks (or at a file's end) the
    blocks are handed to one worker thread in one job (``hashlib`` releases the GIL), so the
    SHA-256 runs while pycdlib writes the next blocks.  A slot is refilled only once the hash
    job that covers it is done.
    """

    def __init__(self, pool: ThreadPoolExecutor | None) -> None:
        self.pool = pool
        self._ring = memoryview(bytearray(_SLOTS * _COPY_BLOCK))
        self._jobs: list[Future[None] | None] = [None] * _SLOTS
        self._next = 0
        self._batch: list[tuple[int, memoryview]] = []

    def buffer(self, size: int) -> tuple[memoryview, int]:
        """A free slot of ``size`` bytes (at most one block), and its index."""
        slot = self._next
        self._next = (slot + 1) % _SLOTS
        job = self._jobs[slot]
        if job is not None:
            job.result()
            self._jobs[slot] = None
        start = slot * _COPY_BLOCK
        return self._ring[start : start + size], slot

    def hash(self, slot: int, hasher: Any, view: memoryview, *, last: bool) -> None:
        """Add the block in ``slot`` to ``hasher``; ``last`` at the end of its file."""
        self._batch.append((slot, view))
        if len(self._batch) < _BATCH and not last:
            return
        views = [v for _, v in self._batch]
        if self.pool is None:
            _update(hasher, views)
        else:
            job = self.pool.submit(_update, hasher, views)
            for used, _ in self._batch:
                self._jobs[used] = job
        self._batch = []

    def drain(self) -> None:
        for slot, job in enumerate(self._jobs):
            if job is not None:
                job.result()
                self._jobs[slot] = None


def _update(hasher: Any, views: list[memoryview]) -> None:
    for view in views:
        hasher.update(view)


class _SourceStream:
    """One file's bytes for pycdlib: opened at first use, read once, closed at its end."""

    mode = "rb"  # pycdlib checks it

    def __init__(
        self,
        item: IsoFile,
        copier: _Copier,
        on_file: Callable[[str, str], None] | None,
    ) -> None:
        self._item = item
        self._copier = copier
        self._on_file = on_file
        self._stream: Any = None
        self._hasher: Any = None
        self._read = 0

    def _open(self) -> Any:
        source = self._item.source
        if isinstance(source, Path):
            try:
                return source.open("rb", buffering=0)
            except OSError as err:
                raise ArchiveError(f"{source}: cannot read: {err.strerror}") from err
        if source is None:
            raise ArchiveError(f"{self._item.path}: a reserved file has no source to read")
        return source()

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset != 0 or whence != 0 or self._read:
            raise ArchiveError(f"{self._item.path}: its source can only be read once, in order")
        return 0

    def read(self, size: int = -1) -> memoryview:
        if self._stream is None:
            self._stream = self._open()
            if self._on_file is not None:
                self._hasher = hashlib.sha256()
        if size > _COPY_BLOCK:  # write_iso gives pycdlib that block size; a short read is EOF to it
            raise ArchiveError(f"{self._item.path}: a read of {size} bytes is over one block")
        size = min(self._item.size - self._read, _COPY_BLOCK if size < 0 else size)
        view, index = self._copier.buffer(size)
        filled = 0
        while filled < size:
            try:
                got = _read_into(self._stream, view[filled:])
            except OSError as err:
                self.close()
                raise ArchiveError(f"{self._item.path}: cannot read its source: {err}") from err
            if not got:
                self.close()
                raise ArchiveError(
                    f"{self._item.path}: its source ended after {self._read + filled} of "
                    f"{self._item.size} bytes: was it changed during the build?"
                )
            filled += got
        self._read += filled
        if self._hasher is not None:
            self._copier.hash(index, self._hasher, view, last=self._read >= self._item.size)
        if self._read >= self._item.size:
            self._finish()
        return view

    def _finish(self) -> None:
        self.close()
        if self._hasher is not None and self._on_file is not None:
            self._copier.drain()
            self._on_file(self._item.path, self._hasher.hexdigest())

    def tell(self) -> int:
        return self._read

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _read_into(stream: Any, view: memoryview) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(view) or 0)
    data = stream.read(len(view))
    view[: len(data)] = data
    return len(data)


@contextmanager
def _frozen_time(epoch: int) -> Iterator[None]:
    fake = SimpleNamespace(
        time=lambda: float(epoch),
        localtime=time.gmtime,
        gmtime=time.gmtime,
        strftime=time.strftime,
        strptime=time.strptime,
        struct_time=time.struct_time,
        mktime=time.mktime,
        timezone=0,
    )
    with _TIME_LOCK:
        saved = [module.time for module in _PYCDLIB_TIME_USERS]
        for module in _PYCDLIB_TIME_USERS:
            module.time = fake
        try:
            yield
        finally:
            for module, original in zip(_PYCDLIB_TIME_USERS, saved, strict=True):
                module.time = original


def check_archive_path(path: str) -> None:
    """Refuse a path the image cannot hold faithfully."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArchiveError(f"{path!r}: not a relative path inside the archive")
    for part in parts:
        if len(part) > MAX_NAME:
            raise ArchiveError(
                f"{path}: the name {part[:20]}… is longer than {MAX_NAME} characters"
            )


def write_iso(
    output: Path,
    files: Sequence[IsoFile],
    *,
    volume_id: str,
    epoch: int,
    progress: Callable[[int, int], None] | None = None,
    on_file: Callable[[str, str], None] | None = None,
    finish: Callable[[], Mapping[str, bytes]] | None = None,
) -> None:
    """Write ``files`` into a new image at ``output`` (overwritten), reading each source once.

    With ``on_file``, every file with a source is hashed while it is copied and
    ``on_file(path, sha256 hex)`` is called once its bytes are read (raising aborts the write).
    Files whose ``source`` is ``None`` are *reserved*: ``size`` bytes of zeros hold their place,
    and once every other file is written ``finish()`` gives their bytes, written into that place.
    A reserved file's final size may differ from ``size`` (a signature's length is known only
    once made) but must fill the same number of sectors, so the layout does not change; the
    size in its directory records is then corrected.
    """
    ordered = sorted(files, key=lambda f: f.path)
    directories = _directories(ordered, reserving=finish is not None)
    reserved = {item.path: item.size for item in ordered if item.source is None}
    pool = ThreadPoolExecutor(1, thread_name_prefix="iso-hash") if on_file is not None else None
    copier = _Copier(pool)
    streams: list[_SourceStream] = []
    with _frozen_time(epoch):
        iso: Any = pycdlib.PyCdlib()
        try:
            iso.new(
                interchange_level=4,
                vol_ident=volume_id[:16],  # the Joliet volume id holds 16 characters
                sys_ident="LINUX",
                app_ident_str="metalk8s-solutions",
                rock_ridge="1.09",
                joliet=3,
            )
            for directory in sorted(directories, key=lambda d: (d.count("/"), d)):
                iso.add_directory(
                    "/" + directory,
                    rr_name=PurePosixPath(directory).name,
                    joliet_path=_joliet(directory),
                    file_mode=DIR_MODE,
                )
            for item in ordered:
                stream: Any
                if item.source is None:
                    stream = io.BytesIO(bytes(item.size))  # a placeholder, filled at the end
                else:
                    stream = _SourceStream(item, copier, on_file)
                    streams.append(stream)
                    if item.size == 0 and on_file is not None:
                        on_file(item.path, _EMPTY_SHA256)  # pycdlib never reads an empty file
                iso.add_fp(
                    stream,
                    item.size,
                    "/" + item.path,
                    rr_name=PurePosixPath(item.path).name,
                    joliet_path=_joliet(item.path),
                    file_mode=FILE_MODE,
                )
            iso.write(os.fspath(output), blocksize=_COPY_BLOCK, progress_cb=progress)
            copier.drain()
            if finish is not None:
                _fill_reserved(iso, output, reserved, finish())
        except pycdlib.pycdlibexception.PyCdlibException as err:
            raise ArchiveError(f"{output}: cannot write the image: {err}") from err
        finally:
            for opened in streams:
                opened.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            iso.close()


def _joliet(path: str) -> str:
    """The Joliet path of ``path``: each name cut at Joliet's 64 characters (Rock Ridge readers,
    ours among them, see the whole name; ``sboms/sha256-<hex>.spdx.json`` is one such)."""
    return "/" + "/".join(part[:MAX_JOLIET_NAME] for part in path.split("/"))


def _directories(ordered: Sequence[IsoFile], *, reserving: bool) -> set[str]:
    """The directories to create for ``ordered``, after checking every file can be written."""
    directories: set[str] = set()
    for item in ordered:
        check_archive_path(item.path)
        if item.source is None and (item.size == 0 or not reserving):
            raise ArchiveError(f"{item.path}: a reserved file needs a size and a finish step")
        parent = PurePosixPath(item.path).parent
        while str(parent) != ".":
            directories.add(str(parent))
            parent = parent.parent
    return directories


def _fill_reserved(
    iso: Any, output: Path, reserved: Mapping[str, int], contents: Mapping[str, bytes]
) -> None:
    """Write the reserved files' bytes into their extents; correct their recorded sizes."""
    if set(contents) != set(reserved):
        raise ArchiveError(
            f"{output}: the reserved files are {sorted(reserved)}, not {sorted(contents)}"
        )
    fd = os.open(output, os.O_RDWR)
    try:
        for path, data in contents.items():
            size = reserved[path]
            if not data or -(-len(data) // SECTOR) != -(-size // SECTOR):
                raise ArchiveError(
                    f"{output}: {path} has {len(data)} bytes, which does not fit the "
                    f"{size} bytes reserved for it"
                )
            records = [
                iso.get_record(iso_path="/" + path),
                iso.get_record(joliet_path=_joliet(path)),
            ]
            extent = records[0].extent_location()
            os.pwrite(fd, data, extent * SECTOR)
            if len(data) != size:
                for record in records:
                    _patch_size(fd, record.parent, extent, len(data))
    finally:
        os.close(fd)


def _patch_size(fd: int, directory: Any, extent: int, size: int) -> None:
    """Set the data length of the records of ``directory`` that point at ``extent``."""
    area = os.pread(fd, directory.get_data_length(), directory.extent_location() * SECTOR)
    base = directory.extent_location() * SECTOR
    found = 0
    pos = 0
    while pos < len(area):
        length = area[pos]
        if length == 0:  # the rest of this sector is padding
            pos = (pos // SECTOR + 1) * SECTOR
            continue
        if struct.unpack_from("<I", area, pos + 2)[0] == extent:
            os.pwrite(fd, struct.pack("<I", size) + struct.pack(">I", size), base + pos + 10)
            found += 1
        pos += length
    if found != 1:
        raise ArchiveError(f"cannot correct the size of the file at sector {extent}")
