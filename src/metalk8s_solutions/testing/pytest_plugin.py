"""pytest fixtures: a real control plane and a real registry, for this project and for yours.

Installed as a pytest plugin with the package, so a Solution developer's tests can ask for them::

    def test_my_operator(local_cluster, kube_namespace):
        ...  # local_cluster.kubeconfig is an admin kubeconfig; kube_namespace is fresh

Fixtures start nothing unless a test asks for them.  The control plane is started once per test
session (``SOLUTIONS_TEST_NODES`` fake nodes, default 2) and torn down at the end; its processes
die with the test process if the run is interrupted.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from metalk8s_solutions.testing.controlplane import ClusterInfo, LocalControlPlane
from metalk8s_solutions.testing.registry import LocalRegistry


@dataclass(frozen=True)
class LocalCluster:
    """The session's control plane, with helpers tests need."""

    plane: LocalControlPlane
    info: ClusterInfo

    @property
    def kubeconfig(self) -> Path:
        return self.info.kubeconfig

    @property
    def server(self) -> str:
        return self.info.server

    def admin_http(self) -> httpx.Client:
        """A plain HTTP client authenticated as cluster admin (for raw API checks)."""
        return httpx.Client(base_url=self.server, verify=self.plane.admin_ssl_context(), timeout=30)

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        return self.plane.user_kubeconfig(user, groups)


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local control plane (etcd, API server, controllers, scheduler, KWOK nodes)."""
    nodes = int(os.environ.get("SOLUTIONS_TEST_NODES", "2"))
    # Real nodes (kubelet + containerd, root only) for a whole session: none unless asked.
    real_nodes = int(os.environ.get("SOLUTIONS_TEST_REAL_NODES", "0"))
    plane = LocalControlPlane(
        tmp_path_factory.mktemp("control-plane"),
        nodes=nodes,
        real_nodes=real_nodes,
        bind_to_parent=True,
    )
    try:
        info = plane.up()
        yield LocalCluster(plane, info)
    finally:
        plane.down()


@pytest.fixture
def kube_namespace(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh Namespace for one test, deleted afterwards (not awaited)."""
    base = request.node.name.lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in base).strip("-")[:40].strip("-")
    name = f"t-{cleaned}-{secrets.token_hex(3)}"
    with local_cluster.admin_http() as http:
        resp = http.post(
            "/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        resp.raise_for_status()
    yield name
    with local_cluster.admin_http() as http:
        http.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def mint_kubeconfig(local_cluster: LocalCluster) -> Callable[..., Path]:
    """``mint_kubeconfig("alice", groups=("viewers",))`` -> kubeconfig of a non-admin user."""

    def mint(user: str, groups: tuple[str, ...] = ()) -> Path:
        return local_cluster.user_kubeconfig(user, groups)

    return mint


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Debian's docker-registry on a loopback port, with throw-away storage."""
    registry = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def skopeo() -> str:
    """Path of skopeo, the reference OCI client."""
    path = shutil.which("skopeo")
    if path is None:
        pytest.fail("skopeo is not installed: run 'make test' or 'apt-get install skopeo'")
    return path
