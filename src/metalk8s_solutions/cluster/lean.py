"""A lean, read-only client of the Kubernetes API for the listings (``list``, ``env list``).

Those commands wait on imports more than on the API server: lightkube, httpx2 and asyncio cost
more than kubectl takes for the whole of ``kubectl get namespaces``.  This client sends GETs
over HTTP/1.1 with the standard library (``ssl`` and a few lines of HTTP, one keep-alive
connection) and returns the API's JSON as dicts.

It serves the usual kubeconfig and nothing else: an ``https://`` server with its CA (file or
data), a client certificate (file or data) and/or a bearer token.  Anything else — exec plugins,
token files, basic auth, auth providers, no CA or ``insecure-skip-tls-verify``, a proxy in the
environment, an in-cluster service account — and any failure (an unreadable or malformed
kubeconfig, an unreachable server, an answer other than 200 or 404) raises :class:`Fallback`:
the caller then takes the full path (:class:`~metalk8s_solutions.cluster.kube.Kube`), which
gives the same answer, or the same error, as before this client existed.  The kubeconfig is
chosen as :meth:`~metalk8s_solutions.cluster.kube.ClusterTarget.load` chooses it.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from metalk8s_solutions.api import block_yaml

if TYPE_CHECKING:
    import ssl

#: what lightkube reads when no kubeconfig is given (KubeConfig.from_service_account)
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
DEFAULT_KUBECONFIG = "~/.kube/config"
#: lightkube's default (httpx2.Timeout(10)): connect, read and write
TIMEOUT = 10.0
#: httpx2 (trust_env) sends HTTPS through these when set: the lean client does not
PROXY_VARIABLES = ("https_proxy", "all_proxy")

_STR = (str,)
_OPT_STR = (str, type(None))
_OPT_DICT = (dict, type(None))
#: the fields lightkube's models declare, and the types msgspec accepts for them
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "cluster": {
        "server": _STR,
        "certificate-authority": _OPT_STR,
        "certificate-authority-data": _OPT_STR,
        "insecure-skip-tls-verify": (bool,),
    },
    "context": {"cluster": _STR, "user": _OPT_STR, "namespace": _OPT_STR},
    "user": {
        "exec": _OPT_DICT,
        "username": _OPT_STR,
        "password": _OPT_STR,
        "token": _OPT_STR,
        "tokenFile": _OPT_STR,
        "auth-provider": _OPT_DICT,
        "client-certificate": _OPT_STR,
        "client-certificate-data": _OPT_STR,
        "client-key": _OPT_STR,
        "client-key-data": _OPT_STR,
    },
}
_REQUIRED = {"context": ("cluster",)}


class Fallback(Exception):
    """The lean client cannot answer: take the full path (same answer, same errors)."""

    def __init__(self, why: str, status: int | None = None) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests: from the kubeconfig's selected context."""

    host: str
    port: int
    prefix: str  # the server URL's path, without its trailing slash
    context: ssl.SSLContext = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


def kubeconfig_path(kubeconfig: Path | None) -> Path:
    """The file ``ClusterTarget`` reads; Fallback when it would use a service account first."""
    if kubeconfig is not None:
        return kubeconfig
    if SERVICE_ACCOUNT_TOKEN.exists():
        raise Fallback("in-cluster service account")
    return Path(os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG).expanduser()


def _entries(data: Mapping[str, Any], section: str, key: str) -> dict[str, dict[str, Any]]:
    """Every entry of ``section`` by name, each checked as strictly as the full path does."""
    if section not in data and section != "users":
        raise Fallback(f"no {section}")
    entries = data.get(section) or []
    if not isinstance(entries, list):
        raise Fallback(f"{section} is not a list")
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        body = entry.get(key) if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or not isinstance(body, dict):
            raise Fallback(f"malformed {section} entry")
        fields = _FIELDS[key]
        for name_of_field, value in body.items():
            if name_of_field in fields and not isinstance(value, fields[name_of_field]):
                raise Fallback(f"{section} entry {name}: {name_of_field}")
        if any(required not in body for required in _REQUIRED.get(key, ())):
            raise Fallback(f"{section} entry {name} lacks a required field")
        found[name] = body
    return found


def select(data: Any, context: str | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(cluster, user, context) of the context ``context`` (default: the current one)."""
    if not isinstance(data, dict):
        raise Fallback("not a mapping")
    clusters = _entries(data, "clusters", "cluster")
    contexts = _entries(data, "contexts", "context")
    users = _entries(data, "users", "user")
    current = data.get("current-context")
    name = context or (str(current) if current else None)
    chosen = contexts.get(name) if name else None
    if chosen is None or chosen["cluster"] not in clusters:
        raise Fallback("no such context or cluster")
    user_name = chosen.get("user")
    if not user_name or user_name not in users:
        raise Fallback("no user")
    return clusters[chosen["cluster"]], users[user_name], chosen


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except ValueError as err:
        raise Fallback("undecodable base64") from err


def _memfile(data: bytes) -> str:
    """A path to ``data`` that no other process can read (an anonymous memory file)."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None:
        raise Fallback("no memfd_create")
    fd = memfd_create("kubeconfig", 0)
    os.write(fd, data)
    return f"/proc/self/fd/{fd}"


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path) -> ssl.SSLContext:
    """The CA to trust and the client certificate to show, as lightkube sets them up (paths in
    a kubeconfig are relative to its directory, ``base``)."""
    import ssl  # noqa: PLC0415

    try:
        if cluster.get("certificate-authority"):
            tls = ssl.create_default_context(cafile=base / cluster["certificate-authority"])
        elif cluster.get("certificate-authority-data"):
            pem = _decoded(cluster["certificate-authority-data"]).decode("ascii")
            tls = ssl.create_default_context(cadata=pem)
        else:
            raise Fallback("no CA (the full path uses the system's)")
        cert, key = user.get("client-certificate"), user.get("client-key")
        cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
        if cert or cert_data:
            if not (key or key_data):
                raise Fallback("a client certificate without its key")
            cert_file = _memfile(_decoded(cert_data)) if cert_data else str(base / str(cert))
            key_file = _memfile(_decoded(key_data)) if key_data else str(base / str(key))
            try:
                tls.load_cert_chain(cert_file, key_file)
            finally:
                for name in (cert_file, key_file):
                    if name.startswith("/proc/self/fd/"):
                        os.close(int(name.rsplit("/", 1)[1]))
    except (OSError, ValueError, ssl.SSLError) as err:
        raise Fallback("TLS material") from err
    return tls


def endpoint(path: Path, context: str | None) -> Endpoint:
    """The endpoint of ``context`` in kubeconfig ``path``; Fallback for what this client does not
    serve."""
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in PROXY_VARIABLES):
        raise Fallback("proxy in the environment")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise Fallback("unreadable kubeconfig") from err
    try:
        data = block_yaml.load(text)  # kubectl's style, without PyYAML's import
    except block_yaml.Unsupported:
        data = _pyyaml(text)
    cluster, user, _ = select(data, context)
    if any(user.get(k) for k in ("exec", "tokenFile", "username", "password", "auth-provider")):
        raise Fallback("authentication this client does not do")
    url = urllib.parse.urlsplit(str(cluster.get("server", "")))
    if url.scheme != "https" or not url.hostname or url.query or url.fragment:
        raise Fallback("not an https server")
    try:
        port = url.port or 443
    except ValueError as err:
        raise Fallback("bad port") from err

    tls = _tls(cluster, user, path.parent)
    headers = {"Accept": "application/json", "User-Agent": "metalk8s-solutions"}
    if user.get("token") is not None:  # as lightkube: an empty token is still sent
        headers["Authorization"] = f"Bearer {user['token']}"
    return Endpoint(url.hostname, port, url.path.rstrip("/"), tls, headers)


def _pyyaml(text: str) -> Any:
    import yaml  # noqa: PLC0415

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as err:
        raise Fallback("unreadable kubeconfig") from err


#: bounds on an answer's head: a server that sends more is not the API server this client knows
MAX_HEAD_LINE = 64 * 1024
MAX_HEADERS = 100


class LeanKube:
    """GETs on one keep-alive HTTPS connection: ``with LeanKube.open(kubeconfig, ctx) as api``.

    HTTP/1.1 is spoken here directly over :mod:`ssl` (a GET, then a body by ``Content-Length``
    or chunks): ``http.client`` would bring the ``email`` package, which costs a listing more
    instructions than both its requests.
    """

    def __init__(self, where: Endpoint) -> None:
        self.endpoint = where
        self.requests = 0
        self._socket: ssl.SSLSocket | None = None
        self._reader: BinaryIO | None = None

    @classmethod
    def open(cls, kubeconfig: Path | None, context: str | None) -> LeanKube:
        return cls(endpoint(kubeconfig_path(kubeconfig), context))

    def __enter__(self) -> LeanKube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _connect(self) -> tuple[ssl.SSLSocket, BinaryIO]:
        import socket  # noqa: PLC0415

        where = self.endpoint
        # An ASCII name as bytes: socket and ssl would otherwise load the idna codec for it.
        host: str | bytes = where.host.encode("ascii") if where.host.isascii() else where.host
        raw = socket.create_connection((host, where.port), timeout=TIMEOUT)  # type: ignore[arg-type]
        try:
            tls = where.context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self._socket, self._reader = tls, tls.makefile("rb")
        return self._socket, self._reader

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The JSON at ``path``; None on 404; Fallback on any other answer or failure."""
        target = self.endpoint.prefix + path
        if params:
            target += "?" + urllib.parse.urlencode(params)
        self.requests += 1
        try:
            status, body = self._exchange(target)
        except (OSError, ValueError) as err:
            self.close()
            raise Fallback(f"GET {path}: {err}") from err
        if status == 404:
            return None
        if status != 200:
            raise Fallback(f"GET {path}: {status}", status)
        try:
            data = json.loads(body)
        except ValueError as err:
            raise Fallback(f"GET {path}: not JSON") from err
        if not isinstance(data, dict):
            raise Fallback(f"GET {path}: not an object")
        return data

    def _exchange(self, target: str) -> tuple[int, bytes]:
        """Send one GET and read its answer: ``(status, body)``; OSError or ValueError."""
        where = self.endpoint
        host = f"[{where.host}]" if ":" in where.host else where.host
        if where.port != 443:
            host += f":{where.port}"
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in where.headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        reused = self._socket is not None and self._reader is not None
        if self._socket is not None and self._reader is not None:
            sock, reader = self._socket, self._reader
        else:
            sock, reader = self._connect()
        sock.sendall(request)
        head = _read_head(reader)
        if head is None:
            if not reused:
                raise ValueError("the server closed the connection")
            self.close()  # the server closed the idle connection: once more, on a new one
            return self._exchange(target)
        status, headers = head
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _chunks(reader)
        elif "content-length" in headers:
            body = _exactly(reader, int(headers["content-length"]))
        else:
            raise ValueError("an answer without a length")
        if "close" in headers.get("connection", "").lower():
            self.close()
        return status, body


def _read_head(reader: BinaryIO) -> tuple[int, dict[str, str]] | None:
    """The status and headers (names in lower case) of an answer; None if the server closed."""
    status_line = reader.readline(MAX_HEAD_LINE)
    if not status_line:
        return None
    version, _, rest = status_line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1.") or not status_line.endswith(b"\n"):
        raise ValueError(f"not an HTTP/1.1 answer: {status_line[:40]!r}")
    status = int(rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_HEAD_LINE)
        if line in (b"\r\n", b"\n"):
            return status, headers
        if not line.endswith(b"\n"):
            raise ValueError("truncated or oversized answer header")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ValueError("malformed answer header")
        headers[name.strip().lower()] = value.strip()
    raise ValueError("too many answer headers")


def _exactly(reader: BinaryIO, size: int) -> bytes:
    if size < 0:
        raise ValueError("negative length")
    data = reader.read(size)
    if len(data) != size:
        raise ValueError("truncated answer")
    return data


def _chunks(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        line = reader.readline(MAX_HEAD_LINE)
        if not line.endswith(b"\n"):
            raise ValueError("truncated chunk size")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        parts.append(_exactly(reader, size))
        if reader.readline(MAX_HEAD_LINE) not in (b"\r\n", b"\n"):
            raise ValueError("malformed chunk")
    for _ in range(MAX_HEADERS + 1):  # trailers, up to the blank line
        line = reader.readline(MAX_HEAD_LINE)
        if line in (b"\r\n", b"\n"):
            return b"".join(parts)
        if not line.endswith(b"\n"):
            raise ValueError("truncated trailers")
    raise ValueError("too many trailers")
