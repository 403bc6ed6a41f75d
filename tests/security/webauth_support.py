"""A ``solutions ui`` of its own for each adversarial web test: real server, real cluster.

Each test gets a fresh server (its caches, rate limits and sessions start empty) and the
server's :class:`UiState`, so that a test can see what an attack left in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.conftest import service_account_token
from web.support import Served, serve_ui

EVIL = "http://evil.example"


@contextmanager
def running_ui(cluster: LocalCluster, base: Path, **overrides: Any) -> Iterator[Served]:
    """``solutions ui`` in a thread with ``UiSettings(**overrides)``; stopped afterwards."""
    with serve_ui(cluster.kubeconfig, base, **overrides) as served:
        yield served


def admin_token(cluster: LocalCluster) -> str:
    """A cluster-admin bearer token (a ServiceAccount's, as in the web tests)."""
    return service_account_token(cluster, "webauth-admin", "cluster-admin")
