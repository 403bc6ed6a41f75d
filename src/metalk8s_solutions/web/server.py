"""Serve the UI with uvicorn on an address we bind ourselves, so "port in use" is one clear line."""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from metalk8s_solutions.errors import EnvironmentFailure, InvalidInput
from metalk8s_solutions.web.app import create_server_app
from metalk8s_solutions.web.deps import UiSettings

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[v6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 <= int(port) <= 65535:
        raise InvalidInput(f"{option} {text!r} is not HOST:PORT", hint="e.g. 127.0.0.1:8080")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def bind(host: str, port: int, option: str = "--listen") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        why = "address already in use" if err.errno == errno.EADDRINUSE else err.strerror
        raise EnvironmentFailure(
            f"cannot listen on {host}:{port}: {why}",
            hint=f"choose another address with {option} HOST:PORT",
        ) from err
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path


def url_of(sock: socket.socket, tls: bool) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


@dataclass(frozen=True)
class Sockets:
    """The product's socket, and the one of Solutions' own UIs (another origin)."""

    main: socket.socket
    solution_ui: socket.socket | None = None

    def all(self) -> list[socket.socket]:
        return [self.main] + ([self.solution_ui] if self.solution_ui is not None else [])


def solution_ui_listen(main: tuple[str, int]) -> tuple[str, int]:
    """The default Solution UI address: the same host, the next port (any port for port 0)."""
    host, port = main
    return host, (port + 1 if port else 0)


def server_for(
    settings: UiSettings, sockets: Sockets, tls: Tls | None = None, *, log_level: str = "info"
) -> uvicorn.Server:
    app = create_server_app(settings)
    state = app.main.state.ui
    state.main_port = sockets.main.getsockname()[1]
    if sockets.main.getsockname()[0] not in ("0.0.0.0", "::"):  # noqa: S104 - a comparison
        state.main_url = url_of(sockets.main, tls is not None)
    if sockets.solution_ui is not None:
        state.solution_ui_port = sockets.solution_ui.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=True,
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
        ssl_cert_reqs=ssl.CERT_NONE,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def serve(settings: UiSettings, sockets: Sockets, tls: Tls | None = None) -> None:
    """Run until interrupted."""
    asyncio.run(server_for(settings, sockets, tls).serve(sockets=sockets.all()))
