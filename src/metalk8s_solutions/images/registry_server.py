"""The built-in registry: the read side of the OCI Distribution API, served from the ISO files.

MetalK8s loop-mounted each archive as root and put nginx in front of it.  We need neither: the
catalog of an archive gives, for every blob, its byte range in the ISO file, so a blob request is
answered with ``sendfile(2)`` from the open ISO straight to the socket.  No extraction, no mount,
no copy through Python's memory (with TLS the kernel cannot encrypt, so there the bytes are read
in 1 MiB chunks and written by the TLS layer).

Endpoints: ``/v2/``, manifests by tag and by digest (``GET``/``HEAD``), blobs with ``Range``,
tags list and catalog with ``n``/``last`` pagination, the referrers API, and ``/metrics``.  The
registry is read-only: pushes and deletes get ``405 UNSUPPORTED``.  Manifests are served as
stored, whatever the ``Accept`` header asks for (no conversion, like distribution for OCI and
Docker v2s2 content).

Which repositories exist is asked on every request from an :class:`IndexSource`, so imports and
unimports take effect without a restart; see :mod:`metalk8s_solutions.engine.registry`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import ipaddress
import json
import logging
import os
import re
import ssl
import time
from pathlib import Path
from typing import Any, Protocol

import bcrypt
from aiohttp import web

from metalk8s_solutions.errors import EnvironmentFailure, InvalidInput, command
from metalk8s_solutions.images.oci import OCI_INDEX
from metalk8s_solutions.images.registry_index import (
    ASCII_NUMBER,
    SHA256,
    TAG,
    UNSATISFIABLE,
    ArchiveFile,
    RegistryIndex,
    RegistryMetrics,
    RegistryProblem,
    Repository,
    Route,
    ascii_number,
    check_digest,
    check_name,
    is_digest,
    paginate,
    parse_range,
    route,
    unsupported,
)

API_VERSION_HEADER = "Docker-Distribution-API-Version"
DIGEST_HEADER = "Docker-Content-Digest"
CHUNK = 1024 * 1024
READ_METHODS = ("GET", "HEAD")

log = logging.getLogger("metalk8s_solutions.registry")
access_log = logging.getLogger("metalk8s_solutions.registry.access")

#: per-request notes for the access log and the counters
REPOSITORY = web.RequestKey("repository", str)
SENT = web.RequestKey("sent", int)


class IndexSource(Protocol):
    """Gives the index to answer a request from (cheap: called on every request)."""

    def current(self) -> RegistryIndex: ...


# -- read authentication ------------------------------------------------------------------------

REALM = "solutions registry"
_BCRYPT = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
#: bcrypt uses the first 72 bytes only (and refuses more): a longer password is wrong
_BCRYPT_MAX = 72
#: checked against when the user is unknown, so a wrong user costs as long as a wrong password
_DUMMY_HASH = bcrypt.hashpw(b"-", bcrypt.gensalt(10))
_CACHE_SIZE = 256


class BasicAuth:
    """Readers must log in (HTTP Basic) as a user of a htpasswd file of bcrypt hashes.

    The format docker-registry reads (``htpasswd -B``).  A bcrypt check costs milliseconds, so
    it runs in a worker thread and a successful login is remembered (by a SHA-256 of the
    header, at most 256 of them) for the life of the process.
    """

    def __init__(self, users: dict[str, bytes], realm: str = REALM) -> None:
        self.users = users
        self.realm = realm
        self._verified: dict[bytes, None] = {}
        #: bcrypt checks at a time: wrong guesses cannot take every core (logins already
        #: verified are answered from ``_verified`` without waiting)
        self._checks = asyncio.Semaphore(2)

    @classmethod
    def from_htpasswd(cls, path: Path) -> BasicAuth:
        """Read ``path``; every fault is one InvalidInput naming the file (and the line)."""
        hint = "create it with 'htpasswd -B -c FILE USER' (bcrypt, as docker-registry uses)"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise InvalidInput(f"htpasswd file {path} does not exist", hint=hint) from err
        except IsADirectoryError as err:
            raise InvalidInput(f"htpasswd file {path} is a directory", hint=hint) from err
        except UnicodeDecodeError as err:
            raise InvalidInput(f"htpasswd file {path} is not UTF-8 text", hint=hint) from err
        except OSError as err:
            raise EnvironmentFailure(
                f"cannot read htpasswd file {path}: {err.strerror or err}",
                hint="check its permissions",
            ) from err
        users: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user or not hashed:
                raise InvalidInput(f"htpasswd file {path}, line {number}: not USER:HASH", hint=hint)
            if not _BCRYPT.fullmatch(hashed):
                raise InvalidInput(
                    f"htpasswd file {path}, line {number}: the hash of {user!r} is not a "
                    "bcrypt hash",
                    hint="only bcrypt hashes are accepted: " + hint,
                )
            users[user] = hashed.encode()
        if not users:
            raise InvalidInput(f"htpasswd file {path} has no user", hint=hint)
        return cls(users)

    @property
    def challenge(self) -> str:
        return f'Basic realm="{self.realm}"'

    async def allows(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header holds the credentials of a user of the file."""
        if not header or not header.isascii():
            return False
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return False
        key = hashlib.sha256(header.encode()).digest()
        if key in self._verified:
            return True
        try:
            user, sep, password = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep or len(password.encode()) > _BCRYPT_MAX:
            return False
        hashed = self.users.get(user)
        async with self._checks:
            ok = await asyncio.to_thread(
                bcrypt.checkpw, password.encode(), hashed if hashed is not None else _DUMMY_HASH
            )
        if not ok or hashed is None:
            return False
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[key] = None
        return True


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- responses ----------------------------------------------------------------------------------


def problem_response(problem: RegistryProblem, **headers: str) -> web.Response:
    return web.Response(
        status=problem.status,
        body=problem.body(),
        content_type="application/json",
        headers=headers or None,
    )


def _json(data: Any, **headers: str) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), content_type="application/json", headers=headers or None
    )


def _next_link(path: str, n: str | None, last: str | None) -> dict[str, str]:
    if last is None:
        return {}
    return {"Link": f'<{path}?n={n}&last={last}>; rel="next"'}


def _read_exact(archive: ArchiveFile, offset: int, size: int) -> bytes:
    handle = archive.acquire()
    try:
        data = os.pread(handle.fileno(), size, offset)
    finally:
        archive.release()
    if len(data) != size:
        raise OSError(errno.EIO, f"{archive.path} is shorter than its catalog says")
    return data


async def _send_range(
    request: web.Request,
    response: web.StreamResponse,
    archive: ArchiveFile,
    offset: int,
    count: int,
) -> int:
    """Send ``count`` bytes of ``archive`` from ``offset`` after the headers; bytes sent."""
    handle = archive.acquire()
    try:
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("client went away")
        loop = asyncio.get_running_loop()
        sent = 0
        if transport.get_extra_info("sslcontext") is None:
            with contextlib.suppress(NotImplementedError, asyncio.SendfileNotAvailableError):
                sent = await loop.sendfile(transport, handle, offset, count, fallback=False)
                if sent != count:  # the file shrank under us: the client must not wait forever
                    transport.abort()
                    raise OSError(errno.EIO, f"{archive.path}: short read")
                await response.write_eof()
                return sent
        fd = handle.fileno()
        while sent < count:
            size = min(CHUNK, count - sent)
            chunk = await loop.run_in_executor(None, os.pread, fd, size, offset + sent)
            if not chunk:
                transport.abort()
                raise OSError(errno.EIO, f"{archive.path}: short read")
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return sent
    finally:
        archive.release()


# -- the handlers -------------------------------------------------------------------------------


class _Registry:
    def __init__(
        self, source: IndexSource, metrics: RegistryMetrics, auth: BasicAuth | None = None
    ) -> None:
        self.source = source
        self.metrics = metrics
        self.auth = auth

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        request[REPOSITORY] = "-"
        request[SENT] = 0
        status = 500
        try:
            response = await self.dispatch(request)
            status = response.status
            return response
        except (ConnectionError, asyncio.CancelledError):
            status = 499  # the client went away mid-answer
            raise
        except OSError as err:
            log.error("%s %s: %s", request.method, request.path, err)
            status = 500
            return problem_response(RegistryProblem(500, "UNKNOWN", "cannot read the archive"))
        finally:
            repository, sent = request[REPOSITORY], request[SENT]
            self.metrics.record(repository, status, sent)
            if status >= 500:
                self.metrics.errors += 1
            access_log.info(
                '%s "%s %s" %d %d %s %.3fs',
                request.remote or "-",
                request.method,
                request.path_qs,
                status,
                sent,
                repository,
                time.monotonic() - started,
            )

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if self.auth is not None and not await self.auth.allows(
            request.headers.get("Authorization")
        ):
            return problem_response(
                RegistryProblem(
                    401,
                    "UNAUTHORIZED",
                    "authentication required: log in with a user of the registry",
                ),
                **{"WWW-Authenticate": self.auth.challenge},
            )
        target = route(request.path)
        if target.kind == "unknown":
            return problem_response(unsupported(f"no such endpoint: {request.path}", 404))
        if request.method not in READ_METHODS:
            return problem_response(
                unsupported(
                    f"{request.method} is not supported: this registry is read-only "
                    "(images are served from imported archives; use "
                    f"'{command('import', '<archive>')}')"
                ),
                Allow="GET, HEAD",
            )
        if target.kind == "base":
            return _json({})
        if target.kind == "metrics":
            index = self.source.current()
            self.metrics.archives_served = len(
                {r.archive.path for r in index.repositories.values()}
            )
            self.metrics.archives_unavailable = len(index.unavailable)
            return web.Response(
                text=self.metrics.render(), content_type="text/plain", charset="utf-8"
            )
        if target.kind == "catalog":
            return self.catalog(request)
        if target.kind == "upload":
            return problem_response(
                unsupported("blob uploads are not supported: this registry is read-only")
            )
        problem = check_name(target.name)
        if problem is not None:
            return problem_response(problem)
        found = self.source.current().lookup(target.name)
        if isinstance(found, RegistryProblem):
            return problem_response(found)
        request[REPOSITORY] = found.name
        if target.kind == "tags":
            return self.tags(request, found)
        if target.kind == "manifest":
            return self.manifest(request, found, target)
        if target.kind == "referrers":
            return self.referrers(request, found, target)
        return await self.blob(request, found, target)

    def catalog(self, request: web.Request) -> web.Response:
        n, last = request.query.get("n"), request.query.get("last")
        page = paginate(self.source.current().names(), n, last)
        if isinstance(page, RegistryProblem):
            return problem_response(page)
        names, following = page
        return _json({"repositories": names}, **_next_link("/v2/_catalog", n, following))

    def tags(self, request: web.Request, repository: Repository) -> web.Response:
        n, last = request.query.get("n"), request.query.get("last")
        page = paginate(sorted(repository.tags), n, last)
        if isinstance(page, RegistryProblem):
            return problem_response(page)
        tags, following = page
        path = f"/v2/{repository.name}/tags/list"
        return _json({"name": repository.name, "tags": tags}, **_next_link(path, n, following))

    def manifest(self, request: web.Request, repository: Repository, target: Route) -> web.Response:
        reference = target.reference
        if is_digest(reference):
            problem = check_digest(reference)
            if problem is not None:
                return problem_response(problem)
            entry = repository.manifests.get(reference)
        elif TAG.match(reference):
            entry = repository.manifests.get(repository.tags.get(reference, ""))
        else:
            return problem_response(
                RegistryProblem(400, "MANIFEST_INVALID", f"invalid tag {reference!r}")
            )
        if entry is None:
            return problem_response(
                RegistryProblem(
                    404,
                    "MANIFEST_UNKNOWN",
                    f"manifest {reference} is not in repository {repository.name}",
                )
            )
        data = _read_exact(repository.archive, entry.extent.offset, entry.extent.size)
        headers = {DIGEST_HEADER: entry.digest, "ETag": f'"{entry.digest}"'}
        if request.method == "GET":
            request[SENT] = len(data)
        return web.Response(body=data, headers={"Content-Type": entry.media_type, **headers})

    def referrers(
        self, request: web.Request, repository: Repository, target: Route
    ) -> web.Response:
        problem = check_digest(target.reference)
        if problem is not None:
            return problem_response(problem)
        wanted = request.query.get("artifactType")
        descriptors = []
        for digest, entry in sorted(repository.manifests.items()):
            data = _read_exact(repository.archive, entry.extent.offset, entry.extent.size)
            with contextlib.suppress(ValueError):
                doc = json.loads(data)
                subject = doc.get("subject") if isinstance(doc, dict) else None
                if not isinstance(subject, dict) or subject.get("digest") != target.reference:
                    continue
                config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
                artifact_type = doc.get("artifactType") or config.get("mediaType")
                if wanted and artifact_type != wanted:
                    continue
                descriptor: dict[str, Any] = {
                    "mediaType": entry.media_type,
                    "digest": digest,
                    "size": entry.extent.size,
                }
                if artifact_type:
                    descriptor["artifactType"] = artifact_type
                if isinstance(doc.get("annotations"), dict):
                    descriptor["annotations"] = doc["annotations"]
                descriptors.append(descriptor)
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        headers = {"Content-Type": OCI_INDEX}
        if wanted:
            headers["OCI-Filters-Applied"] = "artifactType"
        return web.Response(body=json.dumps(body).encode(), headers=headers)

    async def blob(
        self, request: web.Request, repository: Repository, target: Route
    ) -> web.StreamResponse:
        digest = target.reference
        problem = check_digest(digest)
        if problem is not None:
            return problem_response(problem)
        extent = repository.blobs.get(digest) if SHA256.match(digest) else None
        if extent is None:
            return problem_response(
                RegistryProblem(
                    404, "BLOB_UNKNOWN", f"blob {digest} is not in repository {repository.name}"
                )
            )
        wanted = parse_range(request.headers.get("Range"), extent.size)
        if wanted == UNSATISFIABLE:
            return problem_response(
                RegistryProblem(
                    416,
                    "SIZE_INVALID",
                    f"range {request.headers.get('Range')} is outside blob {digest} "
                    f"({extent.size} bytes)",
                ),
                **{"Content-Range": f"bytes */{extent.size}"},
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                DIGEST_HEADER: digest,
                "ETag": f'"{digest}"',
                "Accept-Ranges": "bytes",
                "Cache-Control": "max-age=31536000",
            }
        )
        start, count = 0, extent.size
        if isinstance(wanted, tuple):
            start, end = wanted
            count = end - start + 1
            response.set_status(206)
            response.headers["Content-Range"] = f"bytes {start}-{end}/{extent.size}"
        response.content_length = count
        if request.method == "HEAD" or count == 0:
            await response.prepare(request)
            await response.write_eof()
            return response
        request[SENT] = await _send_range(
            request, response, repository.archive, extent.offset + start, count
        )
        return response


async def _add_api_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER] = "registry/2.0"


def create_app(
    source: IndexSource, metrics: RegistryMetrics | None = None, auth: BasicAuth | None = None
) -> web.Application:
    """The aiohttp application answering every path from ``source``'s current index."""
    registry = _Registry(source, metrics or RegistryMetrics(), auth)
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_route("*", "/{tail:.*}", registry.handle)
    app.on_response_prepare.append(_add_api_header)
    return app


# -- the listening server -----------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every interface) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not ASCII_NUMBER.fullmatch(port) or ascii_number(port) > 65535:
        raise InvalidInput(
            f"listen address {value!r} is not HOST:PORT",
            hint="e.g. 127.0.0.1:5000, [::1]:5000 or :5000 for every interface",
        )
    return host.strip("[]"), ascii_number(port)


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context from PEM files, with errors that name the file."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert, key):
        if not path.is_file():
            raise InvalidInput(f"TLS file {path} does not exist or is not a file")
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as err:
        raise InvalidInput(
            f"cannot use TLS certificate {cert} with key {key}: {err.reason or err}",
            hint="give a PEM certificate (chain) and the PEM private key that matches it",
        ) from err
    except OSError as err:
        raise EnvironmentFailure(f"cannot read {cert} or {key}: {err.strerror}") from err
    return context


class RegistryServer:
    """The registry listening on ``host:port`` (port 0: the kernel picks one)."""

    def __init__(
        self,
        source: IndexSource,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        metrics: RegistryMetrics | None = None,
        auth: BasicAuth | None = None,
    ) -> None:
        self.metrics = metrics or RegistryMetrics()
        self.app = create_app(source, self.metrics, auth)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    async def start(self) -> str:
        """Listen; returns the bound address ``host:port``."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            where = f"{self.host or '*'}:{self.port}"
            if err.errno == errno.EADDRINUSE:
                raise EnvironmentFailure(
                    f"port {self.port} on {self.host or 'every interface'} is already in use, so "
                    "the registry cannot listen there",
                    hint="stop what uses it (see 'ss -ltnp') or choose another address "
                    "with --listen",
                ) from err
            raise EnvironmentFailure(f"cannot listen on {where}: {err.strerror}") from err
        self._runner = runner
        return self.address

    @property
    def address(self) -> str:
        if self._runner is None or not self._runner.addresses:
            return f"{self.host}:{self.port}"
        host, port = self._runner.addresses[0][:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
