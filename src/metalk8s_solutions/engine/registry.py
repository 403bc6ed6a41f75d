"""Run the built-in registry: which archives it serves, and how it follows the configuration.

The registry has no state of its own: it serves the archives that SolutionsConfiguration lists,
so a restart serves again with no re-import.  :class:`ArchiveWatcher` checks the configuration
file and each archive file about once a second (a few ``stat`` calls) and, when something
changed, loads the catalogs in a worker thread and swaps in a new index.  Imports and unimports
are thus served within a second, without a restart.

An archive that is moved or deleted after import is logged once, on one line, and requests for
its repositories get ``404 NAME_UNKNOWN`` whose message names the missing file and says to
re-import it; the other archives keep being served.  (404 rather than 503: the fault does not go
away by retrying, and clients show the message.)  The solution id of a missing archive is known
when it was served before; after a restart it is guessed from the file name
(``<name>-<version>.iso``), and otherwise every unknown-repository error mentions the missing
archives.

Each archive is checked against its pin (``pins`` of the configuration, written by ``import``)
whenever it is read: its ``SHA256SUMS`` must have the pinned digest and every file must match it
(the whole ISO is hashed once per load, in the worker thread), and it must hold the pinned
solution id.  An archive listed without a pin is pinned in memory by what it holds when first
read.  A file that no longer matches is not served (its repositories answer ``404`` naming the
problem), logged, and counted in ``solutions_archive_pin_mismatch_total``; a swapped file can
therefore never serve other content, nor claim another solution's repositories.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from metalk8s_solutions.api.config import SolutionsConfiguration
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.archive.pinning import PinnedIso, changed, first_seen_pin
from metalk8s_solutions.engine.config_store import load_config
from metalk8s_solutions.errors import ArchiveChanged, InvalidInput, Refused, SolutionsError
from metalk8s_solutions.images.catalog import SolutionImages, load_catalog
from metalk8s_solutions.images.registry_index import (
    ArchiveFile,
    RegistryIndex,
    RegistryMetrics,
    Unavailable,
    build_index,
)
from metalk8s_solutions.images.registry_server import (
    BasicAuth,
    RegistryServer,
    is_loopback,
    parse_listen,
    server_ssl_context,
)

log = logging.getLogger("metalk8s_solutions.registry")

Identity = tuple[int, ...]
MISSING = "is missing (moved or deleted after import); put it back or re-import it"
_ID_FROM_NAME = re.compile(r"^(?!-)[0-9a-z-]{1,63}(?<!-)-\d+\.\d+\.\d+[0-9A-Za-z.+-]*$")


def _identity(st: os.stat_result) -> Identity:
    # ctime too: an in-place edit that puts mtime back still changes it
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _stat(path: Path) -> Identity | None:
    try:
        return _identity(path.stat())
    except FileNotFoundError:
        return None
    except OSError:
        return (-1,)  # unreadable: try to load, which reports why


@dataclass
class _Served:
    catalog: SolutionImages
    file: ArchiveFile
    pin: Pin | None = None  # what it was checked against


@dataclass
class _Failed:
    identity: Identity | None
    reason: str
    solution_id: str | None
    pin: Pin | None = None


def _load(path: Path, pin: Pin) -> _Served:
    """Open ``path``, check every file against ``pin``, read its catalog (in a worker thread)."""
    handle = path.open("rb", buffering=0)
    try:
        identity = _identity(os.fstat(handle.fileno()))
        with PinnedIso(path, pin) as iso:
            iso.verify_all()
            catalog = load_catalog(path, iso)
        if catalog.solution_id != pin.id:
            raise changed(path, pin, f"it now holds {catalog.solution_id}")
        if _stat(path) != identity:
            raise OSError(f"{path} changed while it was being read")
    except BaseException:
        handle.close()
        raise
    return _Served(catalog, ArchiveFile(path, handle, identity), pin)


@dataclass
class ArchiveWatcher:
    """Follows SolutionsConfiguration and its archives; gives the registry its current index."""

    config_path: Path
    interval: float = 1.0
    metrics: RegistryMetrics | None = None
    _config_identity: Identity | None = field(default=None, init=False)
    _archives: tuple[str, ...] = field(default=(), init=False)
    _states: dict[str, _Served | _Failed] = field(default_factory=dict, init=False)
    _index: RegistryIndex = field(default_factory=RegistryIndex, init=False)
    _config_problem: str | None = field(default=None, init=False)
    _pins: dict[str, Pin] = field(default_factory=dict, init=False)  # from the configuration
    _seen: dict[str, Pin] = field(default_factory=dict, init=False)  # unpinned: as first read

    def current(self) -> RegistryIndex:
        return self._index

    def _read_config(self) -> bool:
        """Re-read the configuration if its file changed; True when the archive list changed."""
        identity = _stat(self.config_path)
        if identity == self._config_identity and self._config_identity is not None:
            return False
        try:
            config: SolutionsConfiguration = load_config(self.config_path)
        except SolutionsError as err:
            if self._config_problem != str(err):
                log.error("%s; still serving the archives of its last valid version", err)
                self._config_problem = str(err)
            self._config_identity = identity
            return False
        self._config_identity = identity
        self._config_problem = None
        pins = dict(config.pins)
        if config.archives == self._archives and pins == self._pins:
            return False
        self._archives = config.archives
        self._pins = pins
        return True

    async def refresh(self) -> bool:
        """Check the configuration and the archives once; True when the index changed."""
        changed = await asyncio.to_thread(self._read_config)
        listed = set(self._archives)
        for forgotten in [path for path in self._seen if path not in listed]:
            del self._seen[forgotten]  # unimported: a new import may hold something else
        for gone in [path for path in self._states if path not in listed]:
            state = self._states.pop(gone)
            if isinstance(state, _Served):
                state.file.retire()
                log.info(
                    "no longer serving %s (%s is not imported any more)",
                    state.catalog.solution_id,
                    gone,
                )
            changed = True
        for name in self._archives:
            changed |= await self._check(Path(name))
        if changed:
            self._rebuild()
        return changed

    async def _check(self, path: Path) -> bool:
        key = str(path)
        state = self._states.get(key)
        identity = _stat(path)
        pin = self._pins.get(key) or self._seen.get(key)
        same_pin = state is not None and (pin is None or pin == state.pin)
        if isinstance(state, _Served) and identity == state.file.identity and same_pin:
            return False
        if isinstance(state, _Failed) and identity == state.identity and same_pin:
            return False
        known_id = (
            state.catalog.solution_id
            if isinstance(state, _Served)
            else (state.solution_id if state else None)
        )
        if isinstance(state, _Served):
            state.file.retire()
        if identity is None:
            guessed = known_id or (path.stem if _ID_FROM_NAME.match(path.stem) else None)
            self._states[key] = _Failed(None, MISSING, guessed, pin)
            if self.metrics is not None:
                self.metrics.archive_errors += 1
            log.error(
                "archive %s%s %s",
                path,
                f" ({guessed})" if guessed else "",
                MISSING,
            )
            return True
        try:
            if pin is None:
                pin = self._seen[key] = await asyncio.to_thread(first_seen_pin, path)
            served = await asyncio.to_thread(_load, path, pin)
        except ArchiveChanged as err:
            reason = str(err).removeprefix(f"archive {path} ")
            self._states[key] = _Failed(identity, reason, pin.id if pin else known_id, pin)
            if self.metrics is not None:
                self.metrics.pin_mismatches += 1
            log.error("archive %s %s; not serving it", path, reason)
            return True
        except (SolutionsError, OSError) as err:
            reason = f"cannot be read ({getattr(err, 'strerror', None) or err}); re-import it"
            self._states[key] = _Failed(identity, reason, known_id, pin)
            if self.metrics is not None:
                self.metrics.archive_errors += 1
            log.error("archive %s %s", path, reason)
            return True
        self._states[key] = served
        catalog = served.catalog
        if self.metrics is not None:
            self.metrics.picked_up(catalog.solution_id)
        log.info(
            "%s %s from %s: %s",
            "read again" if state is not None else "read",
            catalog.solution_id,
            path,
            ", ".join(f"{image}:{tag}" for image, tag, _ in catalog.image_refs()),
        )
        return True

    def _rebuild(self) -> None:
        served: list[tuple[SolutionImages, ArchiveFile]] = []
        unavailable: list[Unavailable] = []
        owners: dict[str, str] = {}
        for name in self._archives:
            state = self._states.get(name)
            if isinstance(state, _Failed):
                unavailable.append(Unavailable(name, state.reason, state.solution_id))
            elif isinstance(state, _Served):
                owner = owners.setdefault(state.catalog.solution_id, name)
                if owner == name:
                    served.append((state.catalog, state.file))
                else:
                    reason = (
                        f"holds {state.catalog.solution_id}, already served from {owner}; "
                        "unimport one of them"
                    )
                    log.error("archive %s %s", name, reason)
                    unavailable.append(Unavailable(name, reason, None))
        self._index = build_index(served, unavailable)
        log.info(
            "serving %d repositories of %s",
            len(self._index.repositories),
            ", ".join(catalog.solution_id for catalog, _ in served) or "no archive",
        )

    async def run(self) -> None:
        """Refresh every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:  # a bug must not stop the registry from serving what it has
                log.exception("checking the configuration failed")

    def close(self) -> None:
        for state in self._states.values():
            if isinstance(state, _Served):
                state.file.retire()
        self._states.clear()
        self._index = RegistryIndex()


# -- running it ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeOptions:
    """``solutions registry serve``: unset fields come from the configuration's ``registry``."""

    config: Path
    listen: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    interval: float = 1.0
    auth_htpasswd: Path | None = None
    insecure_public: bool = False


@dataclass
class RunningRegistry:
    """A registry that is serving: where, and its watcher and counters."""

    address: str
    scheme: str
    watcher: ArchiveWatcher
    metrics: RegistryMetrics
    server: RegistryServer

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True)
class _Settings:
    listen: str
    cert: Path | None
    key: Path | None
    htpasswd: Path | None
    insecure_public: bool


def _settings(options: ServeOptions) -> _Settings:
    settings = load_config(options.config).registry
    listen = options.listen or settings.listen
    cert = options.tls_cert or (Path(settings.tls_cert) if settings.tls_cert else None)
    key = options.tls_key or (Path(settings.tls_key) if settings.tls_key else None)
    if (cert is None) != (key is None):
        raise InvalidInput(
            "TLS needs both a certificate and its key",
            hint="give --tls-cert and --tls-key (or registry.tlsCert and registry.tlsKey)",
        )
    htpasswd = options.auth_htpasswd or (
        Path(settings.auth_htpasswd) if settings.auth_htpasswd else None
    )
    public = options.insecure_public or settings.insecure_public
    return _Settings(listen, cert, key, htpasswd, public)


def check_exposure(host: str, *, auth: BasicAuth | None, insecure_public: bool) -> None:
    """Refuse to serve every imported image, without a login, beyond this machine."""
    if auth is not None or insecure_public or is_loopback(host):
        return
    raise Refused(
        f"refusing to serve images without authentication on {host or 'every interface'}: "
        "anyone who reaches the port could pull every imported image",
        hint="pass --auth-htpasswd FILE (bcrypt, 'htpasswd -B'; or set registry.authHtpasswd) "
        "to require a login, or --insecure-public (registry.insecurePublic: true) to serve them "
        "openly on a network you trust",
    )


@contextlib.asynccontextmanager
async def running_registry(options: ServeOptions) -> AsyncIterator[RunningRegistry]:
    """Start the registry in the running event loop; stop it when the block ends."""
    settings = _settings(options)
    host, port = parse_listen(settings.listen)
    auth = BasicAuth.from_htpasswd(settings.htpasswd) if settings.htpasswd else None
    check_exposure(host, auth=auth, insecure_public=settings.insecure_public)
    cert, key = settings.cert, settings.key
    context = server_ssl_context(cert, key) if cert and key else None
    metrics = RegistryMetrics()
    watcher = ArchiveWatcher(options.config, options.interval, metrics)
    await watcher.refresh()
    server = RegistryServer(watcher, host, port, ssl_context=context, metrics=metrics, auth=auth)
    address = await server.start()
    task = asyncio.create_task(watcher.run(), name="archive-watcher")
    try:
        yield RunningRegistry(address, server.scheme, watcher, metrics, server)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop()
        watcher.close()


async def serve(
    options: ServeOptions, ready: Callable[[RunningRegistry], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM (or until cancelled)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with running_registry(options) as registry:
            if ready is not None:
                ready(registry)
            await stop.wait()
            log.info("stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def registry_in_thread(options: ServeOptions, timeout: float = 30.0) -> Iterator[RunningRegistry]:
    """Run the registry in a background thread, for synchronous callers (tests, journeys)."""
    loop = asyncio.new_event_loop()
    started: asyncio.Future[RunningRegistry] = loop.create_future()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            async with running_registry(options) as registry:
                started.set_result(registry)
                await stop.wait()
        except BaseException as err:
            if not started.done():
                started.set_exception(err)
            else:
                failure.append(err)

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="registry", daemon=True
    )
    thread.start()
    try:
        registry = asyncio.run_coroutine_threadsafe(_wait(started), loop).result(timeout)
        yield registry
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        loop.close()


async def _wait(future: asyncio.Future[RunningRegistry]) -> RunningRegistry:
    return await future
