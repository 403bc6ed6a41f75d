#!/usr/bin/env python3
"""base-server: the application of the example Solution, a tiny HTTP server (stdlib only).

    GET /healthz   200 "ok"
    GET /version   {"version": "<its version>"}
    GET /time      {"time": "<UTC, RFC 3339>"}

Each release of the Solution ships its own build: the image build stamps ``__version__``, so a
rolling upgrade is visible from the outside (``/version`` changes).  ``--self-test`` starts the
server on a free loopback port, queries every endpoint and exits 0 if all answer as documented.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__version__ = "0.0.0+dev"

LOG = logging.getLogger("base-server")


class Handler(BaseHTTPRequestHandler):
    server_version = f"base-server/{__version__}"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        elif self.path == "/version":
            self._json({"version": __version__})
        elif self.path == "/time":
            self._json({"time": datetime.now(UTC).isoformat(timespec="seconds")})
        else:
            self._json({"error": f"no such endpoint: {self.path}"}, HTTPStatus.NOT_FOUND)

    def _json(self, document: dict[str, str], status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(document).encode() + b"\n", "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); ``server.server_address`` has the bound port."""
    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def self_test() -> int:
    server = serve("127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        checks: dict[str, Callable[[bytes], bool]] = {
            "/healthz": lambda body: body == b"ok\n",
            "/version": lambda body: json.loads(body) == {"version": __version__},
            "/time": lambda body: "time" in json.loads(body),
        }
        for path, check in checks.items():
            with urllib.request.urlopen(base + path, timeout=5) as response:  # noqa: S310
                body = response.read()
            if response.status != 200 or not check(body):
                print(f"self-test: {path} answered {response.status} {body!r}", file=sys.stderr)
                return 1
    finally:
        server.shutdown()
    print(f"base-server {__version__}: self-test passed")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="base-server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (all)")  # noqa: S104
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--self-test", action="store_true", help="check every endpoint and exit")
    parser.add_argument("--version", action="version", version=f"base-server {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.self_test:
        return self_test()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    # As PID 1 of a container, SIGTERM would be ignored without a handler.
    signal.signal(signal.SIGTERM, _interrupt)
    LOG.info("base-server %s listening on %s:%d", __version__, *server.server_address[:2])
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
