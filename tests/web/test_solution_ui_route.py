"""The example Solution's own UI, reached from the product's UI (issue 11).

The example Solution 2.0.0 is imported, activated and added to an environment with the installed
``solutions`` command; its UI objects are deployed.  KWOK runs no container, so the example UI
server (``examples/example-solution/ui/ui_server.py``, the very program of the image) runs as a
local process with the ConfigMap's configuration, and :func:`serve_service` points the UI's
Service at it.  Everything else is real: the environment page links to the UI, ``solutions ui``
forwards to the Service through the API server's service proxy with the logged-in user's token,
and answers the page's Kubernetes API calls itself, as that user, for the listed paths only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from env_support import cli
from metalk8s_solutions.testing.pods import host_address, serve_service
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.support import SHOTS, RunningUi, unique

pytestmark = pytest.mark.cluster

SOL = "example-solution"
GROUP = "example-solution.metalk8s.scality.com"
UI_SERVER = Path(__file__).resolve().parents[2] / "examples/example-solution/ui/ui_server.py"


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def deployed(
    ui_server: RunningUi, local_cluster: LocalCluster, example_archives: Any
) -> Iterator[str]:
    """An environment running example-solution 2.0.0, its UI served by a local process."""
    env = unique("uiroute")
    config, kubeconfig = ui_server.config, local_cluster.kubeconfig

    def run(*args: str) -> None:
        done = cli(config, kubeconfig, *args)
        assert done.returncode == 0, done.stdout + done.stderr

    run("import", str(example_archives.isos["2.0.0"]))
    process: subprocess.Popen[bytes] | None = None
    try:
        run("activate", SOL, "--version", "2.0.0")
        run("env", "create", env)
        run("env", "add-solution", env, SOL, "2.0.0", "--timeout", "120")
        with local_cluster.admin_http() as http:
            configmap = http.get(f"/api/v1/namespaces/{env}/configmaps/{SOL}-ui-config")
            configmap.raise_for_status()
            config_file = ui_server.config.parent / f"{env}-ui-config.json"
            config_file.write_text(configmap.json()["data"]["config.json"])
            address = host_address()
            port = free_port(address)
            environ = dict(
                os.environ,
                SOLUTION_UI_CONFIG=str(config_file),
                SOLUTION_UI_PORT=str(port),
                SOLUTION_UI_LISTEN=address,
            )
            process = subprocess.Popen([sys.executable, str(UI_SERVER)], env=environ)
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"http://{address}:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the example UI server did not start"
                time.sleep(0.1)
            serve_service(http, env, f"{SOL}-ui", port, address=address)
            instance = {
                "apiVersion": f"{GROUP}/v1beta1",
                "kind": "VersionServer",
                "metadata": {"name": "shop-front"},
                "spec": {"version": "2.0.0", "replicas": 2},
            }
            created = http.post(
                f"/apis/{GROUP}/v1beta1/namespaces/{env}/versionservers", json=instance
            )
            created.raise_for_status()
        yield env
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        cli(config, kubeconfig, "env", "delete", env)
        cli(config, kubeconfig, "deactivate", SOL, "--force")
        cli(config, kubeconfig, "unimport", f"{SOL}-2.0.0")


def test_the_proxy_route_serves_the_example_ui_as_the_user(
    ui_server: RunningUi, deployed: str, admin_token: str
) -> None:
    env = deployed
    base = f"/env/{env}/{env}/{SOL}/"
    api = f"{base}api/kubernetes/apis/{GROUP}/v1beta1/namespaces/{env}/versionservers"
    key = (env, env, SOL)
    with (
        ui_server.client(admin_token) as main,
        ui_server.client(admin_token, solution_ui=key) as ui,
    ):
        # The environment page links to the UI (no Ingress controller here: the proxy route);
        # the product's origin only redirects to the UI's own origin, which serves the UI.
        page = main.get(f"/environments/{env}")
        assert f'href="{base}"' in page.text and f'data-solution-ui="{env}/{SOL}"' in page.text
        shown = main.get(f"/api/environments/{env}").json()
        ui_info = shown["namespaces"][env]["solutions"][SOL]["ui"]
        assert ui_info["path"] == base and ui_info["url"] is None
        moved = main.get(base + "app.js?x=1")
        assert moved.status_code == 307
        origin = ui_server.solution_ui_origin(key)
        assert moved.headers["location"] == f"{origin}{base}app.js?x=1"
        # ...and the UI's origin serves nothing of the product.
        assert ui.get("/api/environments").status_code == 404
        assert ui.get("/solutions").status_code == 404

        # The base path without its slash redirects; the page, its script and config are served.
        assert ui.get(base.rstrip("/")).status_code == 307
        index = ui.get(base)
        assert index.status_code == 200, index.text
        assert 'id="instances"' in index.text and "text/html" in index.headers["content-type"]
        assert ui.get(base + "app.js").status_code == 200
        config = ui.get(base + "config.json").json()
        assert config["environment"] == env and config["namespace"] == env

        # The page's API calls are answered as the user, for the listed paths only.
        listing = ui.get(api)
        assert listing.status_code == 200, listing.text
        assert [item["metadata"]["name"] for item in listing.json()["items"]] == ["shop-front"]
        secrets = ui.get(f"{base}api/kubernetes/api/v1/namespaces/{env}/secrets")
        assert secrets.status_code == 403
        assert "may call only" in secrets.json()["error"]["message"]
        # No climbing out, encoded or not, through either branch.
        for sneaky in (
            f"{base}..%2f..%2f..%2f..%2f..%2fapi/v1/namespaces/{env}/secrets",
            f"{base}%2e%2e/%2e%2e/secrets",
            f"{api}/..%2f..%2f..%2fsecrets",
            f"{api}/..%23",
            f"{api}/x%3Fwatch=1",
        ):
            answer = ui.get(sneaky)
            assert answer.status_code in (403, 404), (sneaky, answer.status_code, answer.text)
        # A change from another site is refused before anything is sent.
        posted = ui.post(api, json={}, headers={"Origin": "https://evil.example.com"})
        assert posted.status_code == 403 and "another site" in posted.json()["error"]["message"]

        # Another UI's path is not served on this UI's origin...
        other = ui.get(f"/env/{env}/kube-system/{SOL}/")
        assert other.status_code == 404 and "on its own origin" in other.text
    # ...and another namespace's objects cannot be reached by naming it, even on its origin.
    with ui_server.client(admin_token, solution_ui=(env, "kube-system", SOL)) as elsewhere:
        other = elsewhere.get(f"/env/{env}/kube-system/{SOL}/")
        assert other.status_code == 404 and "has no UI in namespace kube-system" in other.text


def test_the_route_uses_the_users_own_rights(
    ui_server: RunningUi, deployed: str, viewer_token: str
) -> None:
    env = deployed
    base = f"/env/{env}/{env}/{SOL}/"
    with ui_server.client(viewer_token, solution_ui=(env, env, SOL)) as viewer:
        # The view role may read the UI's configuration but not proxy to Services.
        answer = viewer.get(base)
        assert answer.status_code == 403
        assert "get services/proxy" in answer.text  # an error page (the UI's pages are HTML)
        listing = viewer.get(
            f"{base}api/kubernetes/apis/{GROUP}/v1beta1/namespaces/{env}/versionservers"
        )
        assert listing.status_code == 200  # the viewer may list VersionServers


def test_not_logged_in_goes_to_the_login_page(ui_server: RunningUi, deployed: str) -> None:
    base = f"/env/{deployed}/{deployed}/{SOL}/"
    with ui_server.client(solution_ui=(deployed, deployed, SOL)) as anonymous:
        answer = anonymous.get(base + "app.js")
        # Back to the product's origin, which hands a session over (after logging in).
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{ui_server.url}{base}app.js"
    with ui_server.client() as main:
        assert main.get(base).headers["location"] == "/login"


def test_the_environment_page_opens_the_example_ui_in_the_browser(
    browser: Any, ui_server: RunningUi, deployed: str, admin_token: str
) -> None:
    env = deployed
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(ui_server.url + "/login")
    page.get_by_label("Bearer token").fill(admin_token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/solutions")
    page.goto(f"{ui_server.url}/environments/{env}")
    page.get_by_role("link", name=f"Open {SOL} UI").click()
    origin = ui_server.solution_ui_origin((env, env, SOL))  # its own origin, *.localhost
    page.wait_for_url(f"{origin}/env/{env}/{env}/{SOL}/")
    row = page.locator('#instances [data-instance="shop-front"]')
    row.wait_for()
    assert "2.0.0" in row.inner_text()
    assert page.locator("#environment").inner_text() == env
    page.screenshot(path=str(SHOTS / "solution-ui.png"), full_page=True)
    context.close()
