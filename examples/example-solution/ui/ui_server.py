#!/usr/bin/env python3
"""example-solution-ui: the web UI of the example Solution, a small HTTP server (stdlib only).

The product runs this image in each environment namespace whose Solution version declares
``spec.ui`` in its manifest, with the image's own entry command, as user 65534.  The contract:

    GET /healthz                      200 "ok" (outside the base path, for the probes)
    GET <base>                        the page (index.html, app.js, style.css: relative URLs only)
    GET <base>config.json             the runtime configuration, as mounted
    GET <base>api/kubernetes/<path>   forwarded to the in-cluster API server (see below)
    anything else                     404 (``<base>`` without its final slash: 301 to it)
    HEAD                              as GET, without the body; other methods: 405

Requests arrive with their full path (no prefix is stripped), so the page works under any base
path.  The environment says where things are:

    SOLUTION_UI_CONFIG     the configuration file (default /etc/solution-ui/config.json)
    SOLUTION_UI_PORT       port to listen on (default 8080)
    SOLUTION_UI_LISTEN     address to listen on (default 0.0.0.0)
    SOLUTION_UI_BASE_PATH  path the UI is served under (default: ``basePath`` of the config)

The configuration (``solution``, ``version``, ``displayName``, ``environment``, ``namespace``,
``basePath``, ``api.kubernetes``, ``api.paths``) is re-read when the file changes, as a mounted
ConfigMap does.

The page lists VersionServers at ``api/kubernetes`` + one of ``api.paths``.  Through the
product's web UI, the product answers those requests itself.  Through an Ingress they reach this
server, which forwards them (GET only) to ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``
(CA: the service account's ``ca.crt`` when present) with the caller's ``Authorization`` header and
no other: it has no credentials of its own, so a caller only ever sees what their own rights let
them see.  Without ``Authorization``: 401.  Only a path equal to one of ``api.paths`` or below it
(``/`` or ``?`` next; each further segment a plain name, no ``.`` or ``..``) is forwarded: 403
otherwise.  Errors are Kubernetes ``Status`` objects, as the API server's own.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

__version__ = "0.0.0+dev"
# Next to this file in the source tree; the image build stamps its place in the image.
STATIC = Path(__file__).resolve().parent / "static"

DEFAULT_CONFIG = "/etc/solution-ui/config.json"
SERVICE_ACCOUNT_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
API_PREFIX = "api/kubernetes"
API_TIMEOUT = 30.0
# A path segment below an allowed API path: an object name or a subresource.
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}

LOG = logging.getLogger("example-solution-ui")


class ConfigError(Exception):
    """The configuration file is missing or not as documented."""


@dataclass(frozen=True)
class UiConfig:
    raw: bytes  # served as is at <base>config.json
    base_path: str  # starts and ends with "/"
    api_paths: tuple[str, ...]


def parse_config(raw: bytes, base_path: str | None = None) -> UiConfig:
    """The configuration in ``raw``; ``base_path`` (from the environment) wins over its own."""
    try:
        document = json.loads(raw)
    except ValueError as err:
        raise ConfigError(f"not JSON: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError("not a JSON object")
    base = base_path or document.get("basePath")
    if not isinstance(base, str) or not base.startswith("/"):
        raise ConfigError(f"basePath must be an absolute path, not {base!r}")
    api = document.get("api")
    paths = api.get("paths") if isinstance(api, dict) else None
    if not isinstance(paths, list) or not all(
        isinstance(p, str) and p.startswith("/") for p in paths
    ):
        raise ConfigError("api.paths must be a list of absolute API paths")
    return UiConfig(raw, base.rstrip("/") + "/", tuple(p.rstrip("/") for p in paths))


class ConfigFile:
    """The mounted configuration, re-read when the file changes (a ConfigMap update replaces
    it); a new file that does not parse is logged and the last good one kept."""

    def __init__(self, path: Path, base_path: str | None) -> None:
        self.path = path
        self.base_path = base_path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._config = self._read()

    def _stat(self) -> tuple[int, int, int]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _read(self) -> UiConfig:
        try:
            return parse_config(self.path.read_bytes(), self.base_path)
        except ConfigError as err:
            raise ConfigError(f"{self.path}: {err}") from err

    def current(self) -> UiConfig:
        with self._lock:
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    self._stamp = stamp
                    self._config = self._read()
            except (OSError, ConfigError) as err:
                LOG.warning("keeping the previous configuration: %s", err)
            return self._config


def load_config(path: Path, base_path: str | None) -> ConfigFile:
    try:
        return ConfigFile(path, base_path)
    except OSError as err:
        raise ConfigError(f"cannot read the configuration {path}: {err.strerror}") from err


def load_static(directory: Path) -> dict[str, tuple[bytes, str]]:
    """``{name: (content, content type)}`` of the page's files, read once."""
    files = {
        path.name: (path.read_bytes(), CONTENT_TYPES[path.suffix])
        for path in sorted(directory.glob("*"))
        if path.is_file() and path.suffix in CONTENT_TYPES
    }
    if "index.html" not in files:
        raise ConfigError(f"{directory}: no index.html")
    return files


def api_target(config: UiConfig, rest: str) -> str | None:
    """The API server path for ``<base>api/kubernetes`` + ``rest``, None if not forwardable."""
    path, _, _ = rest.partition("?")
    for allowed in config.api_paths:
        if path == allowed or path.startswith(allowed + "/"):
            below = path[len(allowed) :].split("/")[1:]
            if all(SEGMENT.fullmatch(segment) for segment in below):
                return rest
    return None


def status_document(code: HTTPStatus, message: str) -> dict[str, Any]:
    """A Kubernetes ``Status``, so that the page reads every API error the same way."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": code.phrase.replace(" ", ""),
        "code": code.value,
    }


class UiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        config: ConfigFile,
        static: dict[str, tuple[bytes, str]],
    ) -> None:
        self.config = config
        self.static = static
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server_version = f"example-solution-ui/{__version__}"

    def do_GET(self) -> None:
        ui = cast(UiServer, self.server)
        config = ui.config.current()
        path = self.path.partition("?")[0]
        base = config.base_path
        if path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif path + "/" == base:
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", base)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif not path.startswith(base):
            self._not_found()
        elif (name := path[len(base) :]) == API_PREFIX or name.startswith(API_PREFIX + "/"):
            self._forward(config, self.path[len(base) + len(API_PREFIX) :])
        elif name == "config.json":
            self._send(HTTPStatus.OK, config.raw, "application/json")
        elif (found := ui.static.get(name or "index.html")) is not None:
            self._send(HTTPStatus.OK, *found)
        else:
            self._not_found()

    do_HEAD = do_GET  # the same answer; _send leaves the body out

    def do_POST(self) -> None:
        self._status(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed: read only")

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _forward(self, config: UiConfig, rest: str) -> None:
        target = api_target(config, rest)
        if target is None:
            self._status(
                HTTPStatus.FORBIDDEN,
                f"{API_PREFIX}{rest.partition('?')[0]} is not forwarded: "
                "this UI only reads the paths listed in its configuration (api.paths)",
            )
            return
        authorization = self.headers.get("Authorization")
        if not authorization:
            self._status(
                HTTPStatus.UNAUTHORIZED,
                "no Authorization header: this UI has no credentials of its own, "
                "it forwards the caller's to the Kubernetes API",
            )
            return
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT") or "443"
        if not host or not port.isdigit():
            self._status(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "no Kubernetes API to forward to: KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT do not name one (is this UI running in a cluster?)",
            )
            return
        cafile = str(SERVICE_ACCOUNT_CA) if SERVICE_ACCOUNT_CA.exists() else None
        context = ssl.create_default_context(cafile=cafile)
        connection = http.client.HTTPSConnection(
            host, int(port), context=context, timeout=API_TIMEOUT
        )
        with contextlib.closing(connection):
            try:
                connection.request(
                    "GET",
                    target,
                    headers={
                        "Authorization": authorization,
                        "Accept": "application/json",
                        "User-Agent": self.server_version,
                    },
                )
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as err:
                LOG.warning("GET %s: %s", target, err)
                self._status(
                    HTTPStatus.BAD_GATEWAY,
                    f"cannot reach the Kubernetes API at {host}:{port}: {err}",
                )
                return
            self.send_response(response.status)
            for header in ("Content-Type", "Content-Length", "Warning"):
                for value in response.headers.get_all(header) or []:
                    self.send_header(header, value)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            while chunk := response.read1(1 << 16):
                self.wfile.write(chunk)
                self.wfile.flush()

    def _not_found(self) -> None:
        self._send(HTTPStatus.NOT_FOUND, b"404 not found\n", "text/plain; charset=utf-8")

    def _status(self, code: HTTPStatus, message: str) -> None:
        body = json.dumps(status_document(code, message)).encode() + b"\n"
        self._send(code, body, "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", "default-src 'self'; base-uri 'none'")
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="example-solution-ui",
        description=__doc__.splitlines()[0],
        epilog="Configured by SOLUTION_UI_CONFIG, SOLUTION_UI_PORT, SOLUTION_UI_LISTEN and "
        "SOLUTION_UI_BASE_PATH (see the module documentation).",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--version", action="version", version=f"example-solution-ui {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    environ = os.environ
    listen = environ.get("SOLUTION_UI_LISTEN") or "0.0.0.0"  # noqa: S104 (a pod's server)
    try:
        port = int(environ.get("SOLUTION_UI_PORT") or 8080)
        config = load_config(
            Path(environ.get("SOLUTION_UI_CONFIG") or DEFAULT_CONFIG),
            environ.get("SOLUTION_UI_BASE_PATH") or None,
        )
        static = load_static(STATIC)
        server = UiServer((listen, port), config, static)
    except ValueError as err:
        print(f"example-solution-ui: SOLUTION_UI_PORT is not a port: {err}", file=sys.stderr)
        return 2
    except (ConfigError, OSError) as err:
        print(f"example-solution-ui: {err}", file=sys.stderr)
        return 1
    # As PID 1 of a container, SIGTERM would be ignored without a handler.
    signal.signal(signal.SIGTERM, _interrupt)
    host, bound = server.server_address[:2]
    LOG.info(
        "example-solution-ui %s listening on %s:%d, under %s",
        __version__,
        host,
        bound,
        config.current().base_path,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
