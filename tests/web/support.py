"""Helpers of the web tests (imported as ``web.support``)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.web.app import OriginDispatcher
from metalk8s_solutions.web.deps import UiSettings, UiState
from metalk8s_solutions.web.server import Sockets, bind, server_for, url_of
from metalk8s_solutions.web.ui_origins import host_label

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class RunningUi:
    url: str
    config: Path
    uploads: Path
    solution_ui_url: str = ""  # the other origin, of Solutions' own UIs

    def client(
        self, token: str | None = None, *, solution_ui: tuple[str, str, str] | None = None
    ) -> httpx.Client:
        """A client of the product, or of the Solution UI ``(env, namespace, solution)`` on its
        own host name (sent to the Solution UI socket, as a browser resolving it would)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = self.url
        if solution_ui is not None:
            base = self.solution_ui_url
            headers["Host"] = self.solution_ui_origin(solution_ui).split("://", 1)[1]
        return httpx.Client(base_url=base, headers=headers, timeout=240)

    def solution_ui_origin(self, key: tuple[str, str, str]) -> str:
        """The origin of one Solution UI: its own host name under ``localhost``."""
        port = urlsplit(self.solution_ui_url).port
        return f"http://{host_label(*key)}.localhost:{port}"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Served:
    """A ``solutions ui`` of a test: where it answers, and its state (what it keeps in memory)."""

    ui: RunningUi
    state: UiState


@contextmanager
def serve_ui(
    kubeconfig: Path, base: Path, config: Path | None = None, **overrides: Any
) -> Iterator[Served]:
    """``solutions ui`` on loopback in a thread, with ``UiSettings(**overrides)`` and the
    configuration ``config`` (default ``base/solutions.yaml``); stopped afterwards."""
    settings = UiSettings(
        config_path=config or base / "solutions.yaml",
        target=ClusterTarget(kubeconfig=kubeconfig),
        upload_dir=base / "uploads",
        **overrides,
    )
    sockets = Sockets(bind("127.0.0.1", 0), bind("127.0.0.1", 0))
    server = server_for(settings, sockets, log_level="warning")
    app = server.config.app
    assert isinstance(app, OriginDispatcher)
    thread = threading.Thread(target=lambda: server.run(sockets=sockets.all()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the UI server did not start"
    try:
        assert sockets.solution_ui is not None
        ui = RunningUi(
            url_of(sockets.main, False),
            settings.config_path,
            base / "uploads",
            url_of(sockets.solution_ui, False),
        )
        yield Served(ui, app.main.state.ui)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
