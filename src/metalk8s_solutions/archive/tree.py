"""An extracted archive (or any directory) seen as a :class:`FileSource`.

Walks without following symlinks, within bounds on entries and depth, and reports symlinks and
special files instead of reading through them, so a hostile tree cannot make us read outside it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from metalk8s_solutions.api.streams import FileInfo
from metalk8s_solutions.errors import ArchiveError

MAX_ENTRIES = 200_000
MAX_DEPTH = 32


class DirectorySource:
    """The regular files under ``root``, by ``/``-separated relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, FileInfo] = {}
        self._special: dict[str, str] = {}
        self._scan()

    @property
    def label(self) -> str:
        return str(self.root)

    def _scan(self) -> None:
        stack: list[tuple[Path, str, int]] = [(self.root, "", 0)]
        count = 0
        while stack:
            directory, prefix, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise ArchiveError(f"{self.root}: {prefix} is deeper than {MAX_DEPTH} levels")
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as err:
                raise ArchiveError(f"{directory}: cannot read: {err.strerror}") from err
            for entry in entries:
                count += 1
                if count > MAX_ENTRIES:
                    raise ArchiveError(f"{self.root}: more than {MAX_ENTRIES} entries")
                path = f"{prefix}{entry.name}"
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append((Path(entry.path), path + "/", depth + 1))
                elif stat.S_ISREG(mode):
                    self._files[path] = FileInfo(path, entry.stat(follow_symlinks=False).st_size)
                else:
                    self._special[path] = "symlink" if stat.S_ISLNK(mode) else "special"

    def files(self) -> dict[str, FileInfo]:
        return self._files

    def special(self) -> dict[str, str]:
        return self._special

    def open(self, path: str) -> BinaryIO:
        if path not in self._files:
            raise ArchiveError(f"{self.root}: no file {path}")
        fd = os.open(self.root / path, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb", buffering=0)
