"""A ``solutions ui`` of its own for each adversarial web test: real server, real cluster.

Each test gets a fresh server (its caches, rate limits and sessions start empty) and the
server's :class:`UiState`, so that a test can see what an attack left in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from metalk8s_solutions.web.app import OriginDispatcher
from metalk8s_solutions.web.deps import UiSettings, UiState
from metalk8s_solutions.web.server import Sockets, bind, server_for, url_of
from web.conftest import service_account_token
from web.support import RunningUi

EVIL = "http://evil.example"


@dataclass(frozen=True)
class Served:
    ui: RunningUi
    state: UiState


@contextmanager
def running_ui(cluster: LocalCluster, base: Path, **overrides: Any) -> Iterator[Served]:
    """``solutions ui`` in a thread with ``UiSettings(**overrides)``; stopped afterwards."""
    settings = UiSettings(
        config_path=base / "solutions.yaml",
        target=ClusterTarget(kubeconfig=cluster.kubeconfig),
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


def admin_token(cluster: LocalCluster) -> str:
    """A cluster-admin bearer token (a ServiceAccount's, as in the web tests)."""
    return service_account_token(cluster, "webauth-admin", "cluster-admin")
