"""Read an ISO 9660 image (Rock Ridge, Joliet) straight from the file: no mount, no extraction.

Loop-mounting needs root and a kernel module many admin nodes lack, so archives are read here,
in user space.  The reader parses the directory tree once, eagerly and within hard bounds (entry
count, depth, directory size, continuation areas, loops, extents past the end of the file), and
then gives, for every file, its byte extent ``(offset, size)`` in the ISO file: file data is
contiguous in ISO 9660, so a registry can serve a blob as a plain range of the ISO.

A file over 4 GiB is recorded as several directory records of the same name, each for one extent
of at most 4 GiB - 2 KiB, all but the last flagged "multi-extent" (ECMA-119 9.1.6).  The file is
the concatenation of its extents; xorriso and our writer place them back to back, so the file is
still one byte range of the ISO, and that is what the reader requires (extents with a gap or out
of order are rejected with a clear error, as are interleaved files).
"""

from __future__ import annotations

import enum
import os
import stat
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from metalk8s_solutions.api.streams import FileInfo, Window
from metalk8s_solutions.errors import ArchiveError, command

SECTOR = 2048
_FIRST_DESCRIPTOR = 16


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


@dataclass(frozen=True)
class IsoEntry:
    """One entry of the image; ``offset``/``size`` locate a file's bytes in the ISO file."""

    path: str
    kind: EntryKind
    offset: int
    size: int
    mode: int | None = None
    target: str | None = None


@dataclass(frozen=True)
class IsoLimits:
    max_entries: int = 200_000
    max_depth: int = 32
    max_directory_bytes: int = 16 * 1024 * 1024
    max_path_length: int = 1024
    max_continuations: int = 16


@dataclass
class _Record:
    name: str
    extent: int
    size: int
    is_dir: bool
    mode: int | None
    symlink: str | None
    relocated: bool
    child_link: int | None
    multi_extent: bool = False


class IsoReader:
    """The entries of an ISO image, and streams over its files.

    ``IsoReader(path)`` parses the whole directory tree or raises :class:`ArchiveError` naming the
    file and what is wrong.  It keeps one descriptor open: use it as a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], limits: IsoLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or IsoLimits()
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as err:
            raise ArchiveError(f"{self.path}: cannot open: {err.strerror}") from err
        try:
            self._file_size = os.fstat(self._fd).st_size
            self.rock_ridge = False
            self.joliet = False
            self.entries: dict[str, IsoEntry] = {}
            self._parse()
        except BaseException:
            os.close(self._fd)
            raise

    # -- public API ---------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return str(self.path)

    def files(self) -> dict[str, FileInfo]:
        return {p: FileInfo(p, e.size) for p, e in self.entries.items() if e.kind is EntryKind.FILE}

    def special(self) -> dict[str, str]:
        return {
            p: str(e.kind)
            for p, e in self.entries.items()
            if e.kind in (EntryKind.SYMLINK, EntryKind.OTHER)
        }

    def extent(self, path: str) -> tuple[int, int]:
        """``(offset, size)`` of a regular file's bytes in the ISO file."""
        entry = self.entries.get(path)
        if entry is None or entry.kind is not EntryKind.FILE:
            raise ArchiveError(f"{self.path}: no file {path}")
        return entry.offset, entry.size

    def open(self, path: str) -> BinaryIO:
        """A read-only stream over one file, independent of any other open stream."""
        offset, size = self.extent(path)
        return Window(self._fd, offset, size)  # type: ignore[return-value]

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as stream:
            return stream.read()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> IsoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- parsing ------------------------------------------------------------------------------

    def _fail(self, message: str) -> ArchiveError:
        return ArchiveError(f"SOL001 {self.path}: {message}", hint="the archive is corrupt")

    def _pread(self, offset: int, size: int) -> bytes:
        if offset < 0 or offset + size > self._file_size:
            raise self._fail(
                f"data at byte {offset} (+{size}) lies past the end of the file "
                f"({self._file_size} bytes): the ISO is truncated"
            )
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise self._fail("short read: the ISO is truncated")
        return data

    def _parse(self) -> None:
        if self._file_size < (_FIRST_DESCRIPTOR + 2) * SECTOR:
            raise ArchiveError(
                f"SOL001 {self.path}: not an ISO 9660 image ({self._file_size} bytes is too small)"
            )
        primary: bytes | None = None
        joliet: bytes | None = None
        for index in range(_FIRST_DESCRIPTOR, _FIRST_DESCRIPTOR + 64):
            desc = self._pread(index * SECTOR, SECTOR)
            if desc[1:6] != b"CD001":
                if primary is None:
                    raise ArchiveError(
                        f"SOL001 {self.path}: not an ISO 9660 image (no volume descriptor)"
                    )
                raise self._fail("volume descriptor set is not terminated")
            kind = desc[0]
            if kind == 255:
                break
            if kind == 1 and primary is None:
                primary = desc
            elif kind == 2 and desc[88:91] in (b"%/@", b"%/C", b"%/E"):
                joliet = desc
        else:
            raise self._fail("too many volume descriptors")
        if primary is None:
            raise self._fail("no primary volume descriptor")
        if struct.unpack_from("<H", primary, 128)[0] != SECTOR:
            raise self._fail("only 2048-byte logical blocks are supported")
        volume_bytes = struct.unpack_from("<I", primary, 80)[0] * SECTOR
        if volume_bytes > self._file_size:
            raise self._fail(
                f"the volume is {volume_bytes} bytes but the file has {self._file_size}: "
                "the ISO is truncated"
            )
        root = _root_record(primary)
        first = self._pread(root.extent * SECTOR, SECTOR)
        self.rock_ridge = self._has_susp(first)
        self.joliet = joliet is not None
        if not self.rock_ridge and joliet is not None:
            root = _root_record(joliet)
        self._walk(root, use_joliet=not self.rock_ridge and joliet is not None)

    def _has_susp(self, sector: bytes) -> bool:
        length = sector[0]
        if length < 34:
            return False
        name_len = sector[32]
        su = 33 + name_len + (1 - name_len % 2)
        return sector[su : su + 2] == b"SP" and sector[su + 4 : su + 6] == b"\xbe\xef"

    def _walk(self, root: _Record, *, use_joliet: bool) -> None:
        queue: deque[tuple[str, int, int, int]] = deque([("", root.extent, root.size, 0)])
        visited: set[int] = set()
        while queue:
            prefix, extent, size, depth = queue.popleft()
            if extent in visited:
                raise self._fail(f"directory loop at {prefix or '/'}")
            visited.add(extent)
            if depth > self.limits.max_depth:
                raise self._fail(f"{prefix}: deeper than {self.limits.max_depth} levels")
            if size > self.limits.max_directory_bytes:
                raise self._fail(f"{prefix or '/'}: directory of {size} bytes is too large")
            data = self._pread(extent * SECTOR, size)
            seen: set[str] = set()
            for record in self._records(data, use_joliet):
                path = f"{prefix}/{record.name}" if prefix else record.name
                if record.name in seen:
                    raise ArchiveError(f"SOL022 {self.path}: {path} appears twice")
                seen.add(record.name)
                if len(path) > self.limits.max_path_length:
                    raise self._fail(
                        f"path longer than {self.limits.max_path_length}: {path[:80]}…"
                    )
                if len(self.entries) >= self.limits.max_entries:
                    raise self._fail(f"more than {self.limits.max_entries} entries")
                self._add(path, record, depth, queue)

    def _add(
        self, path: str, record: _Record, depth: int, queue: deque[tuple[str, int, int, int]]
    ) -> None:
        if record.symlink is not None or (record.mode is not None and stat.S_ISLNK(record.mode)):
            kind = EntryKind.SYMLINK
        elif record.is_dir or record.child_link is not None:
            kind = EntryKind.DIRECTORY
        elif record.mode is not None and not stat.S_ISREG(record.mode):
            kind = EntryKind.OTHER
        else:
            kind = EntryKind.FILE
        offset = record.extent * SECTOR
        if kind is EntryKind.FILE and record.size and offset + record.size > self._file_size:
            raise self._fail(f"{path} extends past the end of the file: the ISO is truncated")
        self.entries[path] = IsoEntry(path, kind, offset, record.size, record.mode, record.symlink)
        if kind is EntryKind.DIRECTORY:
            extent, size = record.extent, record.size
            if record.child_link is not None:
                extent = record.child_link
                size = struct.unpack_from("<I", self._pread(extent * SECTOR, 34), 10)[0]
            queue.append((path, extent, size, depth + 1))

    def _records(self, data: bytes, use_joliet: bool) -> list[_Record]:
        records = []
        pending: _Record | None = None  # the extents so far of a multi-extent file
        pos = 0
        while pos < len(data):
            length = data[pos]
            if length == 0:
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            if (
                length < 34
                or pos + length > len(data)
                or pos // SECTOR != (pos + length - 1) // SECTOR
            ):
                raise self._fail(f"malformed directory record at byte {pos} of a directory")
            raw = data[pos : pos + length]
            pos += length
            name_len = raw[32]
            if name_len == 1 and raw[33] in (0, 1):
                continue
            record = self._parse_record(raw, 0, self.rock_ridge and not use_joliet, use_joliet)
            if record is None:
                continue
            if pending is not None:
                self._check_next_extent(pending, record)
                pending.size += record.size
                if record.multi_extent:
                    continue
                record, pending = pending, None
            elif record.multi_extent:
                if record.is_dir:
                    raise self._fail(f"{record.name}: a directory flagged multi-extent")
                pending = record
                continue
            if not record.relocated:
                records.append(record)
        if pending is not None:
            raise self._fail(f"{pending.name}: the last extent of a multi-extent file is missing")
        return records

    def _check_next_extent(self, pending: _Record, record: _Record) -> None:
        """``record`` must be the next extent of ``pending``, right after the previous one."""
        if record.name != pending.name:
            raise self._fail(
                f"{pending.name}: the last extent of a multi-extent file is missing "
                f"({record.name} follows it)"
            )
        if record.is_dir:
            raise self._fail(f"{record.name}: a directory flagged multi-extent")
        if record.extent * SECTOR != pending.extent * SECTOR + pending.size:
            raise ArchiveError(
                f"SOL001 {self.path}: {record.name}: the extents of this multi-extent file are "
                f"not contiguous (one ends at byte {pending.extent * SECTOR + pending.size}, the "
                f"next starts at byte {record.extent * SECTOR}): not supported",
                hint="rebuild the archive with "
                f"'{command('build', '<source>', '-o', '<archive>')}' (or xorriso -iso-level 3), "
                "which write the extents of a large file back to back",
            )

    def _parse_record(self, raw: bytes, pos: int, rock_ridge: bool, joliet: bool) -> _Record | None:
        length = raw[pos]
        if length < 34 or len(raw) < pos + length:
            return None
        extent, size = (
            struct.unpack_from("<I", raw, pos + 2)[0],
            struct.unpack_from("<I", raw, pos + 10)[0],
        )
        flags = raw[pos + 25]
        if raw[pos + 26] or raw[pos + 27]:
            raise self._fail("interleaved file: not supported")
        name_len = raw[pos + 32]
        if 33 + name_len > length:
            raise self._fail("malformed directory record (name past its end)")
        raw_name = raw[pos + 33 : pos + 33 + name_len]
        record = _Record(
            "", extent, size, bool(flags & 0x02), None, None, False, None, bool(flags & 0x80)
        )
        rr_name: str | None = None
        if rock_ridge:
            su_start = pos + 33 + name_len + (1 - name_len % 2)
            rr_name = self._susp(raw[su_start : pos + length], record)
        if rr_name is not None:
            name = rr_name
        elif joliet:
            name = raw_name.decode("utf-16-be", errors="replace").split(";")[0]
        else:
            name = raw_name.decode("ascii", errors="replace").split(";")[0]
            if name.endswith(".") and not record.is_dir:
                name = name[:-1]
        if name in ("", ".", "..") or "/" in name or "\x00" in name:
            raise ArchiveError(
                f"SOL021 {self.path}: entry name {name!r} escapes its directory or is invalid"
            )
        record.name = name
        return record

    def _susp(self, area: bytes, record: _Record) -> str | None:  # noqa: PLR0912 - one per entry
        name_parts: list[bytes] = []
        link_parts: list[str] = []
        has_name = False
        continuations = 0
        while True:
            pos = 0
            next_area: bytes | None = None
            while pos + 4 <= len(area):
                sig, length = area[pos : pos + 2], area[pos + 2]
                if length < 4 or pos + length > len(area):
                    break
                body = area[pos : pos + length]
                if sig == b"NM" and length >= 5:
                    if not body[4] & 0x06:
                        has_name = True
                        name_parts.append(body[5:])
                elif sig == b"PX" and length >= 12:
                    record.mode = struct.unpack_from("<I", body, 4)[0]
                elif sig == b"SL" and length >= 5:
                    link_parts.extend(_symlink_components(body[5:]))
                    record.symlink = "/".join(link_parts)
                elif sig == b"RE":
                    record.relocated = True
                elif sig == b"CL" and length >= 12:
                    record.child_link = struct.unpack_from("<I", body, 4)[0]
                elif sig == b"CE" and length >= 28:
                    block, offset, size = (
                        struct.unpack_from("<I", body, i)[0] for i in (4, 12, 20)
                    )
                    if size > SECTOR:
                        raise self._fail("Rock Ridge continuation area too large")
                    next_area = self._pread(block * SECTOR + offset, size)
                elif sig == b"ST":
                    break
                pos += length
            if next_area is None:
                break
            continuations += 1
            if continuations > self.limits.max_continuations:
                raise self._fail("too many Rock Ridge continuation areas")
            area = next_area
        if not has_name:
            return None
        return b"".join(name_parts).decode("utf-8", errors="replace")


def _root_record(descriptor: bytes) -> _Record:
    extent, size = (
        struct.unpack_from("<I", descriptor, 158)[0],
        struct.unpack_from("<I", descriptor, 166)[0],
    )
    return _Record("", extent, size, True, None, None, False, None)


def _symlink_components(data: bytes) -> list[str]:
    parts = []
    pos = 0
    while pos + 2 <= len(data):
        flags, length = data[pos], data[pos + 1]
        text = data[pos + 2 : pos + 2 + length].decode("utf-8", errors="replace")
        if flags & 0x02:
            text = "."
        elif flags & 0x04:
            text = ".."
        elif flags & 0x08:
            text = ""
        parts.append(text)
        pos += 2 + length
    return parts
