"""Reading and rewriting the SolutionsConfiguration file safely.

Every change goes through :meth:`ConfigStore.edit` (blocking code) or
:meth:`ConfigStore.edit_async` (coroutines): an exclusive ``flock`` on a sidecar lock file
serialises concurrent commands, the new content is written to a temporary file in the same
directory, fsync'd, renamed over the old one and the directory fsync'd.  A crash at any point
leaves either the old file or the new one, never a mix; two commands at once never lose an entry.

Coroutines never block their event loop on the lock or on the file: within a process they queue
on an :class:`asyncio.Lock` per lock file (so at most one of them waits for the ``flock``), the
one at the head polls the ``flock`` without blocking, and reading and writing the file run in a
worker thread.  A web server thus keeps answering while a CLI command holds the lock for
minutes, and its own concurrent operations wait their turn instead of deadlocking.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from metalk8s_solutions.api.config import SolutionsConfiguration, parse_config
from metalk8s_solutions.errors import EnvironmentFailure, InvalidInput

if TYPE_CHECKING:  # asyncio is imported where used: 'solutions list' reads the file without it
    import asyncio

T = TypeVar("T")

CONFIG_ENV = "SOLUTIONS_CONFIG"
DEFAULT_CONFIG = Path("/etc/metalk8s/solutions.yaml")

#: how long a coroutine sleeps between two tries of a lock held by another process, at most
POLL_MAX = 0.2

#: per event loop, one asyncio.Lock per lock file (an asyncio.Lock belongs to one loop)
_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _loop_lock(path: Path) -> asyncio.Lock:
    import asyncio  # noqa: PLC0415

    locks = _LOOP_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(path, asyncio.Lock())


async def _in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a worker thread; if the caller is cancelled meanwhile, wait for it to end
    before the cancellation goes on (so that the lock is never released under a running write)."""
    import asyncio  # noqa: PLC0415

    task = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        raise


def _close_opened(opening: asyncio.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


def _os_failure(action: str, path: Path, err: OSError) -> EnvironmentFailure:
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "run as a user who may write it (root on the admin node), or use --config"
    else:
        hint = "check the path and the disk"
    return EnvironmentFailure(f"cannot {action} {path}: {err.strerror}", hint=hint)


def load_config(path: Path) -> SolutionsConfiguration:
    """The configuration in ``path``; an absent file is an empty configuration."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SolutionsConfiguration()
    except IsADirectoryError as err:
        raise InvalidInput(f"{path} is a directory, not a SolutionsConfiguration file") from err
    except OSError as err:
        raise _os_failure("read", path, err) from err
    return parse_config(data, str(path))


@dataclass
class Edit:
    """The configuration being edited; assign ``config`` to change it."""

    original: SolutionsConfiguration
    config: SolutionsConfiguration

    @property
    def changed(self) -> bool:
        return self.config.to_yaml() != self.original.to_yaml()


class ConfigStore:
    """The SolutionsConfiguration file at ``path`` and its lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(f".{path.name}.lock")

    def read(self) -> SolutionsConfiguration:
        return load_config(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive lock (blocks while another command holds it)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise _os_failure("lock", self.lock_path, err) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _open_lock(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise _os_failure("lock", self.lock_path, err) from err

    @contextlib.asynccontextmanager
    async def locked_async(self) -> AsyncIterator[None]:
        """Hold the exclusive lock, waiting for it without blocking the event loop."""
        import asyncio  # noqa: PLC0415

        async with _loop_lock(self.lock_path.absolute()):
            opening = asyncio.ensure_future(asyncio.to_thread(self._open_lock))
            try:
                fd = await asyncio.shield(opening)
            except asyncio.CancelledError:
                opening.add_done_callback(_close_opened)  # cancelled while opening: no fd leak
                raise
            try:
                delay = 0.005
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, POLL_MAX)
                    except OSError as err:
                        raise _os_failure("lock", self.lock_path, err) from err
                yield
            finally:
                os.close(fd)  # closing releases the lock

    async def read_async(self) -> SolutionsConfiguration:
        """:meth:`read`, in a worker thread."""
        return await _in_thread(self.read)

    def _begin_edit(self) -> SolutionsConfiguration:
        self._remove_stale_temporaries()
        return self.read()

    @contextlib.asynccontextmanager
    async def edit_async(self, *, dry_run: bool = False) -> AsyncIterator[Edit]:
        """:meth:`edit` for coroutines: the lock is awaited, the file read and written in a
        worker thread; the event loop goes on meanwhile."""
        async with self.locked_async():
            current = await _in_thread(self._begin_edit)
            edit = Edit(original=current, config=current)
            yield edit
            if edit.changed and not dry_run:
                config = edit.config
                await _in_thread(lambda: self.write(config))

    @contextlib.contextmanager
    def edit(self, *, dry_run: bool = False) -> Iterator[Edit]:
        """Lock, read, let the caller change ``edit.config``, then write it atomically.

        Nothing is written when the block raises, when nothing changed, or on ``dry_run``.
        """
        with self.locked():
            current = self._begin_edit()
            edit = Edit(original=current, config=current)
            yield edit
            if edit.changed and not dry_run:
                self.write(edit.config)

    def _remove_stale_temporaries(self) -> None:
        """Temp files left by a writer killed before its rename (we hold the lock: none live)."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*"):
            if leftover != self.lock_path:
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def write(self, config: SolutionsConfiguration) -> None:
        """Atomically replace the file (call with the lock held); comments and the keys that
        no command owns are kept as they are in the file."""
        try:
            previous: str | None = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            previous = None
        import tempfile  # noqa: PLC0415

        data = config.to_yaml(previous).encode()
        directory = self.path.parent
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
            tmp = Path(tmp_name)
        except OSError as err:
            raise _os_failure("write", self.path, err) from err
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileNotFoundError):
                mode = self.path.stat().st_mode & 0o777
                tmp.chmod(mode)
            tmp.replace(self.path)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _os_failure("write", self.path, err) from err
