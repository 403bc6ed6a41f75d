"""Stream primitives shared by the archive and image layers.

Blobs can be gigabytes: they are never loaded whole.  A :class:`Window` exposes a byte range of a
larger file (a file inside an ISO, a member of an uncompressed tarball) as a read-only stream
using ``pread``, so several windows over one descriptor never disturb each other.  A
:class:`FileSource` is anything that lists files and opens them (an ISO, a directory, a build
plan) so that the same checks run on all of them.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from metalk8s_solutions.errors import ArchiveError

CHUNK = 4 * 1024 * 1024
Progress = Callable[[int], None]


class Window(io.RawIOBase):
    """Read-only view of ``size`` bytes at ``offset`` of an open file descriptor."""

    def __init__(self, fd: int, offset: int, size: int, *, close_fd: bool = False) -> None:
        super().__init__()
        self._fd = fd
        self._offset = offset
        self._size = size
        self._pos = 0
        self._close_fd = close_fd

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        got = os.preadv(self._fd, [view[:want]], self._offset + self._pos)
        if got == 0:
            raise ArchiveError("unexpected end of file: the file is truncated")
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed and self._close_fd:
            os.close(self._fd)
        super().close()


def open_window(path: str | os.PathLike[str], offset: int, size: int) -> BinaryIO:
    """A window with its own descriptor, closed with the stream."""
    fd = os.open(path, os.O_RDONLY)
    return io.BufferedReader(Window(fd, offset, size, close_fd=True), CHUNK)


def sha256_stream(stream: BinaryIO, progress: Progress | None = None) -> tuple[str, int]:
    """Hex SHA-256 and length of a stream, one pass over large buffers."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    raw: Any = getattr(stream, "raw", stream)
    while True:
        n = raw.readinto(view)
        if not n:
            break
        digest.update(view[:n])
        total += n
        if progress is not None:
            progress(n)
    return digest.hexdigest(), total


@dataclass(frozen=True)
class FileInfo:
    """A regular file of a source: its path (``/``-separated, relative) and size."""

    path: str
    size: int


class FileSource(Protocol):
    """Something holding the files of an archive: an ISO, a directory, a build plan."""

    @property
    def label(self) -> str:
        """How to name the source in messages (its path)."""
        ...

    def files(self) -> Mapping[str, FileInfo]:
        """Regular files, by path."""
        ...

    def special(self) -> Mapping[str, str]:
        """Entries that are not regular files or directories (symlinks...), path -> kind."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A stream over one regular file."""
        ...


def read_limited(source: FileSource, path: str, limit: int) -> bytes:
    """The whole content of a small file, or ArchiveError if larger than ``limit``."""
    info = source.files().get(path)
    if info is None:
        raise ArchiveError(f"{source.label}: {path} is missing")
    if info.size > limit:
        raise ArchiveError(
            f"{source.label}: {path} is {info.size} bytes, larger than the limit of {limit}"
        )
    with source.open(path) as stream:
        data = stream.read(limit + 1)
    if len(data) != info.size:
        raise ArchiveError(f"{source.label}: {path} is truncated")
    return data
