"""Reading an imported archive against its pin (:mod:`metalk8s_solutions.api.pin`).

:class:`PinnedIso` is an :class:`~.iso.IsoReader` that refuses (:class:`ArchiveChanged`) an
archive whose ``SHA256SUMS`` no longer has the pinned digest, or that holds another solution, and
checks each file it hands out against its ``SHA256SUMS`` line: a reader gets the verified bytes or
an error, never the bytes of a file swapped after import.  Small files are read into memory,
verified, then served from there, so the file cannot change between the check and the read.
:meth:`PinnedIso.verify_all` checks every file (the registry does, since it serves blobs as byte
ranges of the ISO).  An archive pinned by its whole file (no ``SHA256SUMS``) is hashed whole when
opened; the digest is remembered per file identity (device, inode, size, mtime and ctime), so a
process hashes an unchanged file once.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import BinaryIO

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.streams import CHUNK, Window, read_limited, sha256_stream
from metalk8s_solutions.archive.checksums import MAX_SUMS_BYTES, SUMS_PATH, is_covered, parse_sums
from metalk8s_solutions.archive.iso import IsoLimits, IsoReader
from metalk8s_solutions.archive.product import read_solution_manifest
from metalk8s_solutions.errors import ArchiveChanged

IN_MEMORY = 16 * 1024 * 1024  # files up to this size are verified and served from memory
_WHOLE: dict[tuple[int, ...], str] = {}
_WHOLE_LOCK = threading.Lock()


def _identity(fd: int) -> tuple[int, ...]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _whole_digest(fd: int) -> str:
    key = _identity(fd)
    with _WHOLE_LOCK:
        known = _WHOLE.get(key)
    if known is not None:
        return known
    with io.BufferedReader(Window(fd, 0, key[2]), CHUNK) as stream:
        hexdigest, _ = sha256_stream(stream)
    digest = f"sha256:{hexdigest}"
    with _WHOLE_LOCK:
        _WHOLE[key] = digest
    return digest


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a whole file (the pin of an archive without SHA256SUMS)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _whole_digest(fd)
    finally:
        os.close(fd)


def sums_digest(sums: bytes) -> str:
    return f"sha256:{hashlib.sha256(sums).hexdigest()}"


def changed(path: object, pin: Pin, what: str) -> ArchiveChanged:
    return ArchiveChanged(
        f"archive {path} changed since it was imported ({what}; pinned: {pin.describe()})",
        hint="it is not used: put the original file back, or unimport it and import the new "
        "file after checking where it comes from",
    )


class PinnedIso(IsoReader):
    """An ISO whose every read is checked against ``pin``; :class:`ArchiveChanged` otherwise."""

    def __init__(
        self, path: str | os.PathLike[str], pin: Pin, limits: IsoLimits | None = None
    ) -> None:
        super().__init__(path, limits)
        self.pin = pin
        self._sums: dict[str, str] | None = None
        try:
            self._check_pin()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PinnedIso:
        return self

    def _check_pin(self) -> None:
        files = super().files()
        if self.pin.whole_file:
            digest = _whole_digest(self._fd)
            if digest != self.pin.digest:
                raise changed(self.path, self.pin, f"the file's SHA-256 is now {digest[:19]}…")
            return
        if SUMS_PATH not in files:
            raise changed(self.path, self.pin, "it has no SHA256SUMS any more")
        if files[SUMS_PATH].size > MAX_SUMS_BYTES:
            raise changed(self.path, self.pin, "its SHA256SUMS is too large")
        data = self._verified_bytes(SUMS_PATH)
        digest = sums_digest(data)
        if digest != self.pin.digest:
            raise changed(self.path, self.pin, f"its SHA256SUMS is now {digest[:19]}…")
        self._sums = parse_sums(data, str(self.path))

    def _verified_bytes(self, path: str) -> bytes:
        with super().open(path) as stream:
            return stream.read()

    def _expected(self, path: str) -> str | None:
        """The pinned hex digest of ``path`` (None: covered by the whole-file pin)."""
        if self._sums is None:
            return None
        if path == SUMS_PATH:
            return self.pin.digest.removeprefix("sha256:")
        expected = self._sums.get(path)
        if expected is None:
            raise changed(self.path, self.pin, f"{path} is not listed in its SHA256SUMS")
        return expected

    def open(self, path: str) -> BinaryIO:
        expected = self._expected(path)
        if expected is None:
            return super().open(path)
        _, size = self.extent(path)
        if size <= IN_MEMORY:
            data = self._verified_bytes(path)
            if hashlib.sha256(data).hexdigest() != expected:
                raise changed(self.path, self.pin, f"{path} does not match its SHA256SUMS line")
            return io.BytesIO(data)
        with super().open(path) as stream:
            hexdigest, _ = sha256_stream(stream)
        if hexdigest != expected:
            raise changed(self.path, self.pin, f"{path} does not match its SHA256SUMS line")
        return super().open(path)

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as stream:
            return stream.read()

    def verify_all(self) -> None:
        """Check every file listed in SHA256SUMS (the whole file was checked when opened)."""
        if self._sums is None:
            return
        files = super().files()
        for path, expected in sorted(self._sums.items()):
            if path not in files:
                raise changed(self.path, self.pin, f"{path} is missing")
            with super().open(path) as stream:
                hexdigest, _ = sha256_stream(stream)
            if hexdigest != expected:
                raise changed(self.path, self.pin, f"{path} does not match its SHA256SUMS line")
        unlisted = sorted(p for p in files if is_covered(p) and p not in self._sums)
        if unlisted:
            raise changed(self.path, self.pin, f"{unlisted[0]} is not listed in its SHA256SUMS")


def first_seen_pin(path: Path) -> Pin:
    """A pin of what ``path`` holds now, for an archive listed without one (signer unknown):
    the registry holds it in memory, so a file changed later is refused all the same."""
    with IsoReader(path) as iso:
        files = iso.files()
        sid = read_solution_manifest(iso, str(path)).id
        if SUMS_PATH in files:
            return Pin(sid, sums_digest(read_limited(iso, SUMS_PATH, MAX_SUMS_BYTES)))
    return Pin(sid, file_digest(path), whole_file=True)


def open_archive(path: str | os.PathLike[str], pin: Pin | None) -> IsoReader:
    """The archive at ``path``, checked against ``pin`` when it has one."""
    return IsoReader(path) if pin is None else PinnedIso(path, pin)
