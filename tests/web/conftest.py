"""Fixtures of the web tests: the UI served on a loopback port, tokens of an admin and a viewer.

The tokens are service-account tokens (TokenRequest API), the kind of bearer token a user pastes
into the login form; RBAC bindings make one a cluster admin and the other read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from env_support import Api
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.support import BROWSER_ARGS, CHROMIUM, SHOTS, RunningUi, serve_ui

NAMESPACE = "solutions-ui-tests"
VIEWER_RULES = [
    {
        "apiGroups": ["example-solution.metalk8s.scality.com"],
        "resources": ["versionservers"],
        "verbs": ["get", "list", "watch"],
    },
]


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400 and response.status_code != 409:
        raise AssertionError(f"{response.request.method} {response.request.url}: {response.text}")
    return dict(response.json())


def _wait_allowed(http: httpx.Client, name: str, verb: str, resource: str, group: str = "") -> None:
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}")
    user = f"system:serviceaccount:{NAMESPACE}:{name}"
    Api(http).wait_allowed(user, verb, resource, group=group, groups=groups)


def service_account_token(cluster: LocalCluster, name: str, cluster_role: str) -> str:
    """A bearer token of ServiceAccount ``name``, bound cluster-wide to ``cluster_role``."""
    with cluster.admin_http() as http:
        _ok(http.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}))
        _ok(
            http.post(
                f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", json={"metadata": {"name": name}}
            )
        )
        _ok(
            http.post(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                json={
                    "metadata": {"name": f"ui-test-{name}"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_role,
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
                },
            )
        )
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        }
        token = _ok(
            http.post(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{name}/token", json=body)
        )
        _wait_allowed(http, name, "list", "namespaces")  # both roles used here may list them
    return str(token["status"]["token"])


@pytest.fixture(scope="session")
def admin_token(local_cluster: LocalCluster) -> str:
    return service_account_token(local_cluster, "ui-admin", "cluster-admin")


@pytest.fixture(scope="session")
def viewer_token(local_cluster: LocalCluster) -> str:
    with local_cluster.admin_http() as http:
        _ok(
            http.post(
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                json={"metadata": {"name": "ui-test-instances-viewer"}, "rules": VIEWER_RULES},
            )
        )
    token = service_account_token(local_cluster, "ui-viewer", "view")
    with local_cluster.admin_http() as http:
        _ok(
            http.post(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                json={
                    "metadata": {"name": "ui-test-ui-viewer-instances"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "ui-test-instances-viewer",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": "ui-viewer", "namespace": NAMESPACE}
                    ],
                },
            )
        )
        rule = VIEWER_RULES[0]
        _wait_allowed(http, "ui-viewer", "list", rule["resources"][0], rule["apiGroups"][0])
    return token


@pytest.fixture(scope="session")
def ui_server(
    local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningUi]:
    """``solutions ui`` in a thread, with its own (initially empty) SolutionsConfiguration."""
    with serve_ui(local_cluster.kubeconfig, tmp_path_factory.mktemp("ui")) as served:
        yield served.ui


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; screenshots go to ``SHOTS``."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: apt-get install chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True
        )
        yield launched
        launched.close()
