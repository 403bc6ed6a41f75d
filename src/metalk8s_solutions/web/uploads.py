"""Request bodies: credentials before any byte is read, sizes capped, uploads streamed to disk.

:class:`BodyLimits` (an ASGI middleware) answers a mutating request without credentials before
reading its body, refuses a body larger than its limit (413) from its ``Content-Length`` without
reading it, and reads any other body, up to the limit, before the application sees it.  Archive
uploads are the exception: :func:`receive_archive` streams their multipart body straight into a
temporary file of the upload folder, counting and hashing it in a worker thread, and removes it
when the upload fails, is too large or the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metalk8s_solutions.api.streams import sha256_stream
from metalk8s_solutions.errors import EnvironmentFailure, InvalidInput, Refused, command
from metalk8s_solutions.web.errors import ErrorInfo, WebError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
#: the largest body of a JSON or form request (a login, an operation, an instance)
BODY_LIMIT = 1 * MiB
#: the largest body a Solution UI may send to the Kubernetes API (the API server's own cap)
SOLUTION_UI_BODY_LIMIT = 3 * MiB
#: the largest uploaded archive, unless ``solutions ui --upload-limit`` says otherwise
DEFAULT_UPLOAD_LIMIT = 20 * GiB
#: what a multipart upload may add to its archive: boundaries, part headers, small fields
FORM_OVERHEAD = 64 * KiB
FIELD_LIMIT = 4 * KiB
MAX_FIELDS = 8
FLUSH = 1 * MiB
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.iso$")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``20GiB``, ``500M``, ``1048576``: a size in bytes (K, M, G, T are powers of 1024)."""
    found = _SIZE.match(text)
    if not found or int(found.group(1)) <= 0:
        raise InvalidInput(
            f"size {text!r} is not a positive number of bytes",
            hint="write it like 20GiB, 500MiB or 1048576",
        )
    return int(found.group(1)) * _UNITS[found.group(2).upper()]


def show_size(size: int) -> str:
    for unit, factor in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def too_large(what: str, limit: int, hint: str) -> WebError:
    return WebError(413, "too-large", f"{what} is larger than {show_size(limit)}", hint=hint)


# -- the middleware ----------------------------------------------------------------------------


Respond = Callable[[Request, ErrorInfo], Response]


@dataclass(frozen=True)
class BodyPolicy:
    """What :class:`BodyLimits` allows on one application."""

    #: largest body of an ordinary request
    limit: int
    #: has the request credentials (a bearer token or a live session)? Reads only headers.
    authenticated: Callable[[Request], bool]
    #: paths that take a mutating request without credentials (logging in)
    open_paths: frozenset[str] = frozenset()
    #: paths that stream their body themselves (archive uploads), with their limit
    upload_paths: frozenset[str] = frozenset()
    upload_limit: Callable[[Request], int] = field(default=lambda _: DEFAULT_UPLOAD_LIMIT)


class BodyLimits:
    """Pure ASGI middleware applying a :class:`BodyPolicy` before the application reads a body.

    ``respond(request, info)`` builds the error answer (JSON for the API, a page otherwise).
    """

    def __init__(self, app: ASGIApp, policy: BodyPolicy, respond: Respond) -> None:
        self.app = app
        self.policy = policy
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        policy = self.policy
        path = request.url.path
        refusal: WebError | None = None
        anonymous = not policy.authenticated(request)
        if request.method in MUTATING and path not in policy.open_paths and anonymous:
            refusal = WebError(
                401, "unauthenticated", "not logged in", hint="log in with a Kubernetes token"
            )
        upload = path in policy.upload_paths and request.method == "POST"
        if upload:
            limit = policy.upload_limit(request) + FORM_OVERHEAD
        else:  # a caller without credentials (logging in, a stray GET) sends little
            limit = min(policy.limit, ANONYMOUS_BODY_LIMIT) if anonymous else policy.limit
        length = request.headers.get("content-length")
        if refusal is None and length is not None:
            if not (length.isascii() and length.isdigit()) or len(length) > 18:
                refusal = WebError(400, "invalid-request", "the Content-Length header is invalid")
            elif int(length) > limit:
                refusal = (
                    too_large("the archive", limit - FORM_OVERHEAD, _UPLOAD_HINT)
                    if upload
                    else too_large("the request body", limit, _BODY_HINT)
                )
        if refusal is None and not upload:
            try:
                body = await _read_capped(receive, limit)
            except WebError as err:
                refusal = err
            else:
                receive = _replay(body, receive)
        if refusal is not None:
            info = ErrorInfo(refusal.status, refusal.kind, refusal.message, refusal.hint)
            response = self.respond(request, info)
            response.headers["Connection"] = "close"  # the unread body is not waited for
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


#: the largest body of a request without credentials (a login form is a few hundred bytes)
ANONYMOUS_BODY_LIMIT = 64 * KiB
_BODY_HINT = "send a smaller request"
_UPLOAD_HINT = (
    "copy the archive to the admin node and import it by path, or raise the limit: "
    f"'{command('ui', '--upload-limit', '<size>')}'"
)


async def _read_capped(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large("the request body", limit, _BODY_HINT)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # e.g. http.disconnect, for streaming answers

    return replayed


# -- streaming an archive to disk ----------------------------------------------------------------


class _Spool:
    """The temporary file of one upload, written and hashed in a worker thread."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / f".{name}.{secrets.token_hex(4)}.part"
        self.digest = hashlib.sha256()
        self.size = 0
        self._file: BinaryIO | None = None
        self._pending: asyncio.Future[None] | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("xb")

    def _write(self, data: bytes) -> None:
        assert self._file is not None  # noqa: S101 - opened first
        self.digest.update(data)
        self._file.write(data)

    async def _run(self, work: Callable[[], None]) -> None:
        # Shielded: a cancelled request leaves the thread's write running, and :meth:`discard`
        # removes the file once it has ended.
        self._pending = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            await asyncio.shield(self._pending)
        except OSError as err:
            raise EnvironmentFailure(
                f"cannot store the upload in {self.path.parent}: {err.strerror}",
                hint="free space there, or choose another: "
                f"'{command('ui', '--upload-dir', '<dir>')}'",
            ) from err
        self._pending = None

    async def open(self) -> None:
        await self._run(self._open)

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        await self._run(lambda: self._write(data))

    async def close(self) -> None:
        file = self._file
        if file is not None:
            await self._run(file.close)

    def discard(self) -> None:
        """Remove the file now, or as soon as a write still running in a thread ends."""

        def remove(_: object = None) -> None:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

        if self._pending is not None and not self._pending.done():
            self._pending.add_done_callback(remove)
        else:
            remove()


def _same_content(existing: Path, size: int, hexdigest: str) -> bool:
    """Does ``existing`` hold ``size`` bytes of digest ``hexdigest``? (streamed, not loaded)"""
    if existing.stat().st_size != size:
        return False
    with existing.open("rb") as stream:
        found, _ = sha256_stream(stream)
    return found == hexdigest


def _settle(spool: Path, target: Path, size: int, hexdigest: str) -> None:
    """Move the upload to ``target``, unless a file of that name exists (then it must be the same
    bytes: nothing changes).  ``link`` never replaces an existing file, even in a race."""
    try:
        try:
            os.link(spool, target)
        except FileExistsError:
            if not _same_content(target, size, hexdigest):
                raise Refused(
                    f"{target} already exists with different content",
                    hint="rename the file, or unimport and delete the other one first",
                ) from None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise EnvironmentFailure(
                    f"cannot store the upload as {target}: {err.strerror}",
                    hint=f"check the upload directory ('{command('ui', '--upload-dir', '<dir>')}')",
                ) from err
            spool.replace(target)  # a file system without hard links
    finally:
        with contextlib.suppress(OSError):
            spool.unlink()


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class ReceivedArchive:
    path: Path
    fields: dict[str, str]


class _Receiver:
    """One multipart upload: python-multipart's callbacks queue events, :meth:`feed` acts on
    them (asynchronously: the file is written in a worker thread)."""

    def __init__(
        self,
        boundary: bytes,
        folder: Path,
        limit: int,
        field_name: str,
        before_file: Callable[[dict[str, str]], Awaitable[None]],
    ) -> None:
        self.folder = folder
        self.limit = limit
        self.field_name = field_name
        self.before_file = before_file
        self.fields: dict[str, str] = {}
        self.spool: _Spool | None = None
        self.target: Path | None = None
        self.received = 0
        self._events: list[tuple[str, Any]] = []
        self._part: _Part | None = None
        self._buffer = bytearray()
        self._header = (bytearray(), bytearray())
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": lambda d, a, b: self._header[0].extend(d[a:b]),
                "on_header_value": lambda d, a, b: self._header[1].extend(d[a:b]),
                "on_header_end": self._header_end,
                "on_headers_finished": lambda: self._events.append(("headers", None)),
                "on_part_data": lambda d, a, b: self._events.append(("data", d[a:b])),
                "on_part_end": lambda: self._events.append(("end", None)),
            },
        )

    def _begin(self) -> None:
        self._events.append(("begin", _Part()))

    def _header_end(self) -> None:
        name, value = self._header
        self._events.append(("header", (bytes(name).lower().decode("latin-1"), bytes(value))))
        name.clear()
        value.clear()

    async def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit + FORM_OVERHEAD:
            raise too_large("the archive", self.limit, _UPLOAD_HINT)
        self.parser.write(chunk)
        events, self._events = self._events, []
        for kind, value in events:
            if kind == "begin":
                self._part = value
            elif self._part is None:
                continue
            elif kind == "header":
                self._part.headers[value[0]] = value[1]
            elif kind == "headers":
                await self._headers_done(self._part)
            elif kind == "data":
                await self._data(self._part, value)
            elif kind == "end":
                if self._part.filename is None:
                    self.fields[self._part.name] = self._part.data.decode("utf-8", "replace")
                self._part = None

    async def _headers_done(self, part: _Part) -> None:
        _, params = parse_options_header(part.headers.get("content-disposition", b""))
        part.name = params.get(b"name", b"").decode("utf-8", "replace")
        raw = params.get(b"filename")
        if raw is None:
            if len(self.fields) >= MAX_FIELDS:
                raise InvalidInput("the upload form has too many fields")
            return
        part.filename = raw.decode("utf-8", "replace")
        if part.name != self.field_name or self.spool is not None:
            raise InvalidInput(
                f"the upload must hold one file, in the form field {self.field_name!r}"
            )
        name = Path(part.filename).name
        if not SAFE_NAME.match(name):
            raise InvalidInput(
                f"archive file name {name!r} is not acceptable",
                hint="use letters, digits, '.', '_', '+', '-', ending in .iso",
            )
        await self.before_file(self.fields)
        self.target = self.folder / name
        self.spool = _Spool(self.folder, name)
        await self.spool.open()

    async def _data(self, part: _Part, data: bytes) -> None:
        if part.filename is None:
            part.data.extend(data)
            if len(part.data) > FIELD_LIMIT:
                raise too_large(f"form field {part.name!r}", FIELD_LIMIT, _BODY_HINT)
            return
        assert self.spool is not None  # noqa: S101 - opened with the part's headers
        self._buffer.extend(data)
        if self.spool.size + len(self._buffer) > self.limit:
            raise too_large("the archive", self.limit, _UPLOAD_HINT)
        if len(self._buffer) >= FLUSH:
            await self.spool.write(bytes(self._buffer))
            self._buffer.clear()

    async def finish(self) -> ReceivedArchive:
        self.parser.finalize()
        if self.spool is None or self.target is None:
            raise InvalidInput(
                "choose an archive file to upload",
                hint=f"send it as the form field {self.field_name!r}",
            )
        if self._buffer:
            await self.spool.write(bytes(self._buffer))
            self._buffer.clear()
        await self.spool.close()
        spool, target = self.spool, self.target
        await asyncio.to_thread(_settle, spool.path, target, spool.size, spool.digest.hexdigest())
        return ReceivedArchive(target, dict(self.fields))


async def receive_archive(
    request: Request,
    folder: Path,
    limit: int,
    before_file: Callable[[dict[str, str]], Awaitable[None]],
    *,
    field_name: str = "archive",
) -> ReceivedArchive:
    """Stream the multipart body of ``request``: small text fields, and one archive (part
    ``field_name``, at most ``limit`` bytes) saved as ``folder/<its file name>`` (the same name
    must mean the same bytes).

    ``before_file(fields)`` runs before the first byte of the archive is written (the CSRF check
    of a form, whose fields come first).  Every failure leaves no file behind.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            "an archive upload must be a multipart/form-data request",
            hint=f"send the archive as the form field {field_name!r}",
        )
    receiver = _Receiver(boundary, folder, limit, field_name, before_file)
    done = False
    try:
        async for chunk in request.stream():
            await receiver.feed(chunk)
        received = await receiver.finish()
        done = True
        return received
    except MultipartParseError as err:
        raise InvalidInput(
            f"the upload is not a valid multipart/form-data body: {err}",
            hint=f"send the archive as the form field {field_name!r}",
        ) from None
    except ClientDisconnect:
        raise WebError(
            400,
            "interrupted",
            "the upload was interrupted before its end; nothing was kept",
            hint="upload the archive again",
        ) from None
    finally:
        if receiver.spool is not None and not done:
            receiver.spool.discard()
