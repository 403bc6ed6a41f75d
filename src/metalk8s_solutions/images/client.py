"""A small async client of the OCI Distribution API's write side, for push mode.

It owns what every request to a foreign registry needs and nothing else: the connection pool
(HTTP/1.1, TLS verified against the system store, a custom CA file, or not at all when
``insecure``), authentication (none, HTTP basic, or the bearer-token challenge flow with a token
cached per scope), and the translation of every failure into one :class:`RegistryError` whose
message names the registry and the repository and says what to do.  What to push, and in which
order, is :mod:`metalk8s_solutions.images.push`'s business.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# lightkube's HTTP client (httpx2 keeps httpx's API): one HTTP stack in the process, not two.
import httpx2 as httpx

from metalk8s_solutions.errors import InvalidInput, RegistryError, command

#: A repository name component per the distribution spec (lowercase, separators inside).
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_HOST_PORT = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?$"
)
_CHALLENGE_PARAM = re.compile(r'([a-zA-Z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
#: Tokens are refreshed this long before the server says they expire.
_TOKEN_MARGIN = 10.0
_DEFAULT_TOKEN_LIFETIME = 60.0
#: Bytes handed to sendfile(2) at a time (the progress line moves after each).
_SENDFILE_PIECE = 8 * 1024 * 1024
_CONNECT_TIMEOUT = 30.0
#: No progress for this long on an upload connection is a failure (as httpx's read/write timeouts).
_IO_TIMEOUT = 300.0


@dataclass(frozen=True)
class RegistryTarget:
    """Where to push: a registry URL, a repository prefix, and how to trust and log in to it.

    ``url`` is ``https://host[:port]`` or ``http://host[:port]``; without a scheme, https is
    used (plain http when ``insecure``).  ``insecure`` also disables certificate verification.
    """

    url: str
    prefix: str = ""
    ca_file: Path | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        url = self.url.strip().rstrip("/")
        if "://" not in url:
            url = ("http://" if self.insecure else "https://") + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not _HOST_PORT.match(parts.netloc):
            raise InvalidInput(
                f"registry URL {self.url!r} is not valid",
                hint="use https://host[:port] (or http://host[:port] with insecure)",
            )
        if parts.path not in ("", "/") or parts.query:
            raise InvalidInput(
                f"registry URL {self.url!r} must not have a path",
                hint="put the path in the repository prefix (pushPrefix) instead",
            )
        object.__setattr__(self, "url", f"{parts.scheme}://{parts.netloc}")
        prefix = self.prefix.strip("/")
        for component in prefix.split("/") if prefix else ():
            if not _COMPONENT.match(component):
                raise InvalidInput(
                    f"repository prefix {self.prefix!r} is not valid: {component!r} must be "
                    "lowercase letters and digits, separated by '.', '_' or '-'",
                    hint="fix pushPrefix (or --prefix)",
                )
        object.__setattr__(self, "prefix", prefix)
        if (self.username is None) != (self.password is None):
            raise InvalidInput(
                "registry credentials need both a username and a password",
                hint="set both username and passwordFile, or neither",
            )

    @property
    def host(self) -> str:
        """``host[:port]`` as it appears in image references."""
        return urlsplit(self.url).netloc

    def repository(self, solution_id: str, image: str) -> str:
        """``<prefix>/<solution id>/<image>`` (no leading slash when the prefix is empty)."""
        return "/".join(part for part in (self.prefix, solution_id, image) if part)


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str  # lowercase: "basic" or "bearer"
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (or ``Basic realm="…"``)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        match.group(1).lower(): (
            match.group(2).replace('\\"', '"') if match.group(2) is not None else match.group(3)
        )
        for match in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


@dataclass
class _Token:
    value: str
    expires: float


BodyFactory = Callable[[], AsyncIterator[bytes]]


def _ssl_failure(err: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    text = str(err)
    if "CERTIFICATE_VERIFY_FAILED" in text or "WRONG_VERSION_NUMBER" in text:
        return ssl.SSLError(text)
    return None


def _error_details(resp: httpx.Response) -> tuple[list[str], str]:
    """The error codes and a one-line message from a distribution error body."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
        return [], text
    codes: list[str] = []
    messages: list[str] = []
    if isinstance(body, dict):
        for item in body.get("errors") or []:
            if isinstance(item, dict):
                codes.append(str(item.get("code", "")))
                message = str(item.get("message", ""))
                detail = item.get("detail")
                if isinstance(detail, str) and detail:
                    message = f"{message} ({detail})"
                messages.append(message)
    return codes, "; ".join(m for m in messages if m)[:300]


class RegistryUnavailable(RegistryError):
    """A failure worth retrying: the connection broke, the registry is busy or failing."""


class RegistryClient:
    """Authenticated requests to one registry; use as an async context manager."""

    def __init__(self, target: RegistryTarget, *, connections: int = 8) -> None:
        self.target = target
        verify: ssl.SSLContext | bool
        if target.insecure:
            verify = False
        else:
            try:
                verify = ssl.create_default_context(
                    cafile=str(target.ca_file) if target.ca_file else None
                )
            except (OSError, ssl.SSLError) as err:
                raise InvalidInput(
                    f"cannot read the CA file {target.ca_file}: {err}",
                    hint="set caFile (or --ca-file) to a PEM file of the registry's CA",
                ) from err
        self._http = httpx.AsyncClient(
            base_url=target.url,
            verify=verify,
            timeout=httpx.Timeout(_CONNECT_TIMEOUT, read=_IO_TIMEOUT, write=_IO_TIMEOUT, pool=None),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=False,
            trust_env=False,
        )
        self._scheme: str | None = None  # None until the registry asked for credentials
        self._bearer: Mapping[str, str] = {}
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    # -- errors -------------------------------------------------------------------------------

    def fail(self, message: str, *, repository: str | None = None, hint: str) -> RegistryError:
        where = f"registry {self.target.url}"
        if repository:
            where += f", repository {repository}"
        return RegistryError(f"{where}: {message}", hint=hint)

    def fail_transient(
        self, message: str, *, repository: str | None = None, hint: str
    ) -> RegistryUnavailable:
        error = self.fail(message, repository=repository, hint=hint)
        return RegistryUnavailable(error.message, hint=error.hint)

    def transport_error(self, err: httpx.HTTPError, repository: str | None) -> RegistryError:
        failure = _ssl_failure(err)
        if failure is not None:
            text = str(failure)
            if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
                return self.fail(
                    "the registry does not speak TLS",
                    repository=repository,
                    hint="use an http:// URL with insecure: true, or enable TLS on the registry",
                )
            if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(
                failure, ssl.SSLCertVerificationError
            ):
                reason = getattr(failure, "verify_message", None) or "verification failed"
                return self.fail(
                    f"its TLS certificate is not trusted ({reason})",
                    repository=repository,
                    hint="set caFile (or --ca-file) to the PEM file of the CA that signed it",
                )
            return self.fail(
                f"TLS handshake failed ({text})",
                repository=repository,
                hint="check the URL scheme and the registry's TLS setup",
            )
        if isinstance(err, httpx.TimeoutException):
            return self.fail_transient(
                "timed out",
                repository=repository,
                hint="check the network and the registry's load, then run the command again "
                "(what was pushed is kept)",
            )
        if isinstance(err, httpx.ConnectError):
            return self.fail(
                f"unreachable ({err})",
                repository=repository,
                hint="check pushUrl (or --registry) and that the registry is running",
            )
        if isinstance(err, httpx.RemoteProtocolError) and self.target.url.startswith("http://"):
            return self.fail(
                f"connection failed ({err})",
                repository=repository,
                hint="if the registry serves TLS, use an https:// URL",
            )
        return self.fail_transient(
            f"connection failed ({err})",
            repository=repository,
            hint="check the network, then run the command again (what was pushed is kept)",
        )

    def status_error(
        self, resp: httpx.Response, action: str, repository: str | None
    ) -> RegistryError:
        codes, detail = _error_details(resp)
        status = resp.status_code
        said = f": {detail}" if detail else ""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if status == 401 and challenge and challenge.params.get("error") == "insufficient_scope":
            status = 403
        if status == 401:
            if self.target.username:
                return self.fail(
                    f"{action}: credentials of user {self.target.username!r} were rejected{said}",
                    repository=repository,
                    hint="check username and the password in passwordFile",
                )
            return self.fail(
                f"{action}: the registry requires authentication{said}",
                repository=repository,
                hint="set registry.username and registry.passwordFile (or --username and "
                "--password-file)",
            )
        if status == 403:
            who = f"user {self.target.username!r}" if self.target.username else "anonymous user"
            return self.fail(
                f"{action}: access denied to {who}{said}",
                repository=repository,
                hint="grant push permission on this repository prefix, or change pushPrefix",
            )
        if "DIGEST_INVALID" in codes or "SIZE_INVALID" in codes:
            return self.fail(
                f"{action}: the registry reports that the content does not match its digest{said}",
                repository=repository,
                hint="the archive is corrupt or was modified: check it with "
                f"'{command('validate', '<archive>')}' and obtain a fresh copy",
            )
        if status == 404 and ("NAME_UNKNOWN" in codes or "NAME_INVALID" in codes):
            return self.fail(
                f"{action}: the registry does not accept this repository{said}",
                repository=repository,
                hint="create the project or namespace for pushPrefix in the registry first",
            )
        if "MANIFEST_BLOB_UNKNOWN" in codes or "BLOB_UNKNOWN" in codes:
            return self.fail(
                f"{action}: the registry misses content it references{said}",
                repository=repository,
                hint="it was probably garbage-collected during the push: run the command again",
            )
        if status == 400 and "HTTPS server" in detail:
            return self.fail(
                f"{action}: the registry serves TLS, not plain HTTP",
                repository=repository,
                hint=f"use https:// in pushUrl ({self.target.url.replace('http://', 'https://')})",
            )
        if status == 413:
            return self.fail(
                f"{action}: request too large{said}",
                repository=repository,
                hint="raise the body size limit of the registry or of the proxy in front of it",
            )
        if status == 429:
            return self.fail_transient(
                f"{action}: too many requests{said}",
                repository=repository,
                hint="wait, or lower the push concurrency, then run the command again",
            )
        if status == 507 or (status >= 500 and "storage" in detail.lower()):
            return self.fail(
                f"{action}: the registry has no space left (HTTP {status}){said}",
                repository=repository,
                hint="free space in the registry's storage, then run the command again "
                "(what was pushed is kept)",
            )
        if status >= 500:
            return self.fail_transient(
                f"{action}: the registry failed (HTTP {status}){said}",
                repository=repository,
                hint="read the registry's log (full disk?), then run the command again "
                "(what was pushed is kept)",
            )
        return self.fail(
            f"{action}: unexpected answer HTTP {status}{said}",
            repository=repository,
            hint="check that pushUrl points at an OCI registry",
        )

    # -- authentication -----------------------------------------------------------------------

    def _basic_header(self) -> str:
        raw = f"{self.target.username}:{self.target.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _auth_headers(self, scopes: tuple[str, ...]) -> dict[str, str]:
        if self._scheme == "basic":
            return {"Authorization": self._basic_header()}
        if self._scheme == "bearer":
            token = self._tokens.get(scopes)
            if token is not None and token.expires > time.monotonic():
                return {"Authorization": f"Bearer {token.value}"}
        return {}

    async def _fetch_token(
        self, scopes: tuple[str, ...], challenge: Challenge, repository: str | None
    ) -> None:
        realm = challenge.params.get("realm")
        if not realm:
            raise self.fail(
                "the registry asked for a bearer token without a realm",
                repository=repository,
                hint="check the registry's auth.token configuration",
            )
        wanted = list(scopes)
        for extra in (challenge.params.get("scope") or "").split(" "):
            if extra and extra not in wanted:
                wanted.append(extra)
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params += [("scope", scope) for scope in wanted]
        headers = {}
        if self.target.username:
            headers["Authorization"] = self._basic_header()
        try:
            resp = await self._http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as err:
            raise self._token_transport_error(realm, err, repository) from err
        if resp.status_code in (401, 403):
            who = f"user {self.target.username!r}" if self.target.username else "anonymous pulls"
            raise self.fail(
                f"the token server {realm} refused {who} (HTTP {resp.status_code})",
                repository=repository,
                hint="check username and passwordFile"
                if self.target.username
                else "set registry.username and registry.passwordFile",
            )
        try:
            body = resp.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value = None
        if resp.status_code != 200 or not isinstance(value, str) or not value:
            raise self.fail(
                f"the token server {realm} answered HTTP {resp.status_code} without a token",
                repository=repository,
                hint="check the registry's token service",
            )
        self._tokens[scopes] = _Token(value, time.monotonic() + max(lifetime - _TOKEN_MARGIN, 1))

    def _token_transport_error(
        self, realm: str, err: httpx.HTTPError, repository: str | None
    ) -> RegistryError:
        inner = self.transport_error(err, repository)
        return RegistryError(f"{inner.message} (token server {realm})", hint=inner.hint)

    async def _authenticate(
        self, resp: httpx.Response, scopes: tuple[str, ...], repository: str | None
    ) -> bool:
        """React to a 401; True when the request is worth sending again."""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        if challenge.scheme == "bearer":
            async with self._token_lock:
                self._scheme = "bearer"
                self._bearer = challenge.params
                await self._fetch_token(scopes, challenge, repository)
            return True
        if challenge.scheme == "basic" and self.target.username and self._scheme != "basic":
            self._scheme = "basic"
            return True
        return False

    async def _prepare(self, scopes: tuple[str, ...], repository: str | None) -> None:
        """Fetch the bearer token of ``scopes`` before the request needs it (one round trip
        less, and a streamed body is never sent twice)."""
        if self._scheme != "bearer" or self._auth_headers(scopes):
            return
        async with self._token_lock:
            if not self._auth_headers(scopes):
                await self._fetch_token(scopes, Challenge("bearer", self._bearer), repository)

    # -- requests -----------------------------------------------------------------------------

    async def ping(self) -> None:
        """``GET /v2/``: reachability, TLS, and the authentication scheme, checked up front."""
        try:
            resp = await self._http.get("/v2/")
            if resp.status_code == 401 and await self._authenticate(resp, (), None):
                resp = await self._http.get("/v2/", headers=self._auth_headers(()))
        except httpx.HTTPError as err:
            raise self.transport_error(err, None) from err
        if resp.status_code == 200:
            return
        if resp.status_code == 404:
            raise self.fail(
                "this is not an OCI registry (no /v2/ endpoint)",
                hint="check pushUrl (or --registry)",
            )
        raise self.status_error(resp, "checking the API version", None)

    async def put_file(
        self,
        url: httpx.URL,
        *,
        scopes: tuple[str, ...],
        repository: str,
        headers: Mapping[str, str],
        path: Path,
        offset: int,
        count: int,
        sent: Callable[[int], None],
    ) -> httpx.Response:
        """``PUT`` bytes ``[offset, offset + count)`` of the file ``path`` with ``sendfile(2)``.

        Plain HTTP only: the kernel moves the bytes from the page cache to the socket, none of
        them pass through Python (TLS goes through :meth:`request` with a streamed body).
        """
        await self._prepare(scopes, repository)
        for attempt in range(2):
            resp = await self._put_file_once(
                url, headers, scopes, repository, path, offset, count, sent
            )
            if resp.status_code == 401 and attempt == 0 and self._scheme == "bearer":
                self._tokens.pop(scopes, None)
                await self._prepare(scopes, repository)
                continue
            return resp
        return resp

    async def _put_file_once(
        self,
        url: httpx.URL,
        headers: Mapping[str, str],
        scopes: tuple[str, ...],
        repository: str,
        path: Path,
        offset: int,
        count: int,
        sent: Callable[[int], None],
    ) -> httpx.Response:
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(url.host, url.port or 80)
        except (OSError, TimeoutError) as err:
            raise self.transport_error(
                httpx.ConnectError(str(err) or "connection timed out"), repository
            ) from err
        try:
            lines = [
                f"PUT {url.raw_path.decode('ascii')} HTTP/1.1",
                f"Host: {url.netloc.decode('ascii')}",
                f"Content-Length: {count}",
                "Connection: close",
                *(f"{k}: {v}" for k, v in {**headers, **self._auth_headers(scopes)}.items()),
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            loop = asyncio.get_running_loop()
            with path.open("rb") as stream:
                position, end = offset, offset + count
                while position < end:
                    piece = min(_SENDFILE_PIECE, end - position)
                    async with asyncio.timeout(_IO_TIMEOUT):
                        done = await loop.sendfile(writer.transport, stream, position, piece)
                    if done != piece:
                        raise OSError(f"{path} is shorter than expected")
                    position += piece
                    sent(piece)
            async with asyncio.timeout(_IO_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                status, response_headers = _parse_head(head[:-4])
                length = next(
                    (v for k, v in response_headers if k.lower() == "content-length"), None
                )
                body = await reader.readexactly(int(length)) if length else await reader.read()
        except TimeoutError as err:
            raise self.fail_transient(
                "timed out during an upload",
                repository=repository,
                hint="check the network and the registry's load, then run the command again "
                "(what was pushed is kept)",
            ) from err
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
            raise self.fail_transient(
                f"upload connection failed ({err or type(err).__name__})",
                repository=repository,
                hint="check the network, then run the command again (what was pushed is kept)",
            ) from err
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return httpx.Response(status, headers=response_headers, content=body)

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        scopes: tuple[str, ...],
        repository: str | None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        body: BodyFactory | None = None,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send one request with authentication; the response body is read."""
        await self._prepare(scopes, repository)
        for attempt in range(2):
            all_headers = {**(headers or {}), **self._auth_headers(scopes)}
            try:
                resp = await self._http.request(
                    method,
                    url,
                    headers=all_headers,
                    content=body() if body is not None else content,
                    follow_redirects=follow_redirects,
                )
            except httpx.HTTPError as err:
                raise self.transport_error(err, repository) from err
            if resp.status_code == 401 and attempt == 0:
                if body is None and await self._authenticate(resp, scopes, repository):
                    continue
                if body is not None and self._scheme == "bearer":
                    # The token expired during a long upload: drop it, get a new one.
                    self._tokens.pop(scopes, None)
                    await self._prepare(scopes, repository)
                    continue
            return resp
        return resp


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


def join_location(base: str, location: str, params: Mapping[str, Any] | None = None) -> httpx.URL:
    """An upload ``Location`` (absolute or relative) with extra query parameters."""
    url = httpx.URL(base).join(location)
    return url.copy_merge_params(dict(params)) if params else url
