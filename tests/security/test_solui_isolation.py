"""Adversarial tests of Solutions' own UIs (issue 16, finding 7): one origin per Solution UI.

A Solution UI's scripts run with the rights of the user who opens it.  Each UI is served on its
own host name (its own origin), with a session handed over for that UI only, and the API paths it
may call come from the verified archive, never from an object in the namespace.  These tests play
the other vendor's script and the namespace editor against the real ``solutions ui``, the real
local control plane and the example Solution's signed archive.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from env_support import cli
from metalk8s_solutions.testing.pods import host_address, serve_service
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.conftest import admin_token, browser, ui_server  # noqa: F401 - fixtures used below
from web.support import RunningUi, unique

pytestmark = pytest.mark.cluster

SOL = "example-solution"
GROUP = "example-solution.metalk8s.scality.com"
UI_SERVER = Path(__file__).resolve().parents[2] / "examples/example-solution/ui/ui_server.py"


def _collection(ns: str) -> str:
    return f"/apis/{GROUP}/v1beta1/namespaces/{ns}/versionservers"


@pytest.fixture(scope="module")
def two_uis(
    ui_server: RunningUi,  # noqa: F811 - the fixture imported above
    local_cluster: LocalCluster,
    example_archives: Any,
) -> Iterator[tuple[str, str, str]]:
    """An environment running example-solution 2.0.0 (it has a UI) in two namespaces."""
    env = unique("solui")
    ns_a, ns_b = f"{env}-a", f"{env}-b"
    config, kubeconfig = ui_server.config, local_cluster.kubeconfig

    def run(*args: str) -> None:
        done = cli(config, kubeconfig, *args)
        assert done.returncode == 0, done.stdout + done.stderr

    run("import", str(example_archives.isos["2.0.0"]))
    try:
        run("activate", SOL, "--version", "2.0.0")
        run("env", "create", env, "-N", ns_a, "-N", ns_b)
        run("env", "add-solution", env, SOL, "2.0.0", "--timeout", "120")
        with local_cluster.admin_http() as http:  # a new CRD's storage may still be starting
            deadline = time.monotonic() + 60
            while http.get(_collection(ns_a)).status_code != 200:
                assert time.monotonic() < deadline, "the VersionServer collection is not served"
                time.sleep(0.2)
        yield env, ns_a, ns_b
    finally:
        cli(config, kubeconfig, "env", "delete", env)
        cli(config, kubeconfig, "deactivate", SOL, "--force")
        cli(config, kubeconfig, "unimport", f"{SOL}-2.0.0")


@contextmanager
def _logged_in(ui: RunningUi, token: str) -> Iterator[httpx.Client]:
    """A browser-like client logged in on the product's origin (its session cookie)."""
    with httpx.Client(base_url=ui.url, timeout=60) as main:
        form = re.search(r'name="csrf" value="([^"]+)"', main.get("/login").text)
        assert form, "the login form carries no CSRF token"
        answer = main.post("/login", data={"token": token, "csrf": form.group(1)})
        assert answer.status_code == 303, answer.text
        assert main.cookies.get("solutions_session")
        yield main


def _ui_host(main: httpx.Client, env: str, ns: str) -> tuple[str, httpx.Response]:
    """The host name the product sends the browser to for the UI of ``SOL`` in ``env/ns``."""
    moved = main.get(f"/env/{env}/{ns}/{SOL}/")
    assert moved.status_code in (303, 307), moved.text
    return str(urlsplit(moved.headers["location"]).hostname), moved


def _on(ui: RunningUi, host: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request to the Solution UI socket as a browser on ``host`` would send it."""
    port = urlsplit(ui.solution_ui_url).port
    headers = {"Host": f"{host}:{port}", **kwargs.pop("headers", {})}
    with httpx.Client(base_url=ui.solution_ui_url, timeout=60) as client:
        return client.request(kwargs.pop("method", "GET"), path, headers=headers, **kwargs)


def _handoff(ui: RunningUi, main: httpx.Client, env: str, ns: str) -> tuple[str, str, str]:
    """Open the UI of ``env/ns`` from the product: its host, the ticket URL and its cookie."""
    host, moved = _ui_host(main, env, ns)
    target = urlsplit(moved.headers["location"])
    assert target.path == "/.solutions/handoff", moved.headers["location"]
    landed = _on(ui, host, f"{target.path}?{target.query}")
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == parse_qs(target.query)["next"][0]
    cookie = landed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Domain" not in cookie, cookie  # host-only
    name, _, value = cookie.split(";")[0].partition("=")
    assert name != "solutions_session" and value
    return host, f"{target.path}?{target.query}", f"{name}={value}"


def test_each_solution_ui_has_its_own_origin(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
) -> None:
    env, ns_a, ns_b = two_uis
    with _logged_in(ui_server, admin_token) as main:
        host_a, _ = _ui_host(main, env, ns_a)
        host_b, _ = _ui_host(main, env, ns_b)
        product = urlsplit(ui_server.url).hostname
    assert len({host_a, host_b, product}) == 3, (host_a, host_b, product)


def test_the_product_session_opens_no_solution_ui(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
) -> None:
    """The product's session cookie is no credential on a Solution UI's origin."""
    env, ns_a, _ = two_uis
    with _logged_in(ui_server, admin_token) as main:
        host_a, _ = _ui_host(main, env, ns_a)
        product_cookie = f"solutions_session={main.cookies['solutions_session']}"
    api = f"/env/{env}/{ns_a}/{SOL}/api/kubernetes{_collection(ns_a)}"
    answer = _on(ui_server, host_a, api, headers={"Cookie": product_cookie})
    assert answer.status_code == 401, answer.text


def test_ui_a_credential_reaches_neither_ui_b_nor_the_product(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
) -> None:
    env, ns_a, ns_b = two_uis
    with _logged_in(ui_server, admin_token) as main:
        host_a, _, cookie_a = _handoff(ui_server, main, env, ns_a)
        host_b, _ = _ui_host(main, env, ns_b)
    api_a = f"/env/{env}/{ns_a}/{SOL}/api/kubernetes{_collection(ns_a)}"
    api_b = f"/env/{env}/{ns_b}/{SOL}/api/kubernetes{_collection(ns_b)}"
    cookie = {"Cookie": cookie_a}

    mine = _on(ui_server, host_a, api_a, headers=cookie)
    assert mine.status_code == 200, mine.text  # the handed-over session works for UI A...
    # ...but not for UI B: neither from A's own origin (same-origin fetch of B's path)...
    same_origin = _on(ui_server, host_a, api_b, headers=cookie)
    assert same_origin.status_code == 404, same_origin.text
    assert host_b in same_origin.json()["error"]["message"]
    # ...nor sent to B's origin (cookies are host-only; a tossed one is still A's session).
    tossed = _on(ui_server, host_b, api_b, headers=cookie)
    assert tossed.status_code == 401, tossed.text
    # A's pages get nothing from B even when the browser adds B's own cookie (A and B are
    # the same site, so a SameSite cookie of B goes along with a request that A's script makes).
    with _logged_in(ui_server, admin_token) as main:
        _, _, cookie_b = _handoff(ui_server, main, env, ns_b)
    assert _on(ui_server, host_b, api_b, headers={"Cookie": cookie_b}).status_code == 200
    from_a = {"Cookie": cookie_b, "Origin": f"http://{host_a}", "Sec-Fetch-Site": "same-site"}
    read = _on(ui_server, host_b, api_b, headers=from_a)
    assert read.status_code == 403, read.text
    posted = _on(ui_server, host_b, api_b, method="POST", json={}, headers=from_a)
    assert posted.status_code == 403, posted.text
    no_fetch_metadata = {"Cookie": cookie_b, "Origin": f"http://{host_a}"}
    posted = _on(ui_server, host_b, api_b, method="POST", json={}, headers=no_fetch_metadata)
    assert posted.status_code == 403, posted.text
    # The product's API and pages do not take it either, under either cookie name.
    value = cookie_a.partition("=")[2]
    with httpx.Client(base_url=ui_server.url, timeout=60) as product:
        for header in (cookie_a, f"solutions_session={value}"):
            answer = product.get("/api/environments", headers={"Cookie": header})
            assert answer.status_code == 401, (header, answer.text)


def test_logging_out_of_the_product_ends_the_ui_sessions(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
) -> None:
    env, ns_a, _ = two_uis
    api_a = f"/env/{env}/{ns_a}/{SOL}/api/kubernetes{_collection(ns_a)}"
    with _logged_in(ui_server, admin_token) as main:
        host_a, _, cookie_a = _handoff(ui_server, main, env, ns_a)
        assert _on(ui_server, host_a, api_a, headers={"Cookie": cookie_a}).status_code == 200
        token = main.get("/api/session").json()["csrf"]
        assert main.post("/logout", headers={"X-CSRF-Token": token}).status_code == 303
    assert _on(ui_server, host_a, api_a, headers={"Cookie": cookie_a}).status_code == 401


def test_a_handoff_ticket_is_for_one_ui_and_one_use(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
) -> None:
    env, ns_a, ns_b = two_uis
    with _logged_in(ui_server, admin_token) as main:
        host_a, moved = _ui_host(main, env, ns_a)
        host_b, _ = _ui_host(main, env, ns_b)
        target = urlsplit(moved.headers["location"])
        ticket_url = f"{target.path}?{target.query}"
        # Taken to another UI's origin: refused, no cookie set there.
        elsewhere = _on(ui_server, host_b, ticket_url)
        assert elsewhere.status_code == 404, elsewhere.text
        assert "set-cookie" not in elsewhere.headers
        # A fresh one works once, and only once.
        _, fresh, _ = _handoff(ui_server, main, env, ns_a)
        again = _on(ui_server, host_a, fresh)
        assert again.status_code == 403 and "set-cookie" not in again.headers
        assert "open it again" in again.text
        assert f'href="{ui_server.url}/environments"' in again.text  # back to the product
        # A ticket whose 'next' names another UI is refused on this origin.
        forged = _ui_host(main, env, ns_a)[1]
        forged_target = urlsplit(forged.headers["location"])
        query = forged_target.query.replace(f"%2F{ns_a}%2F", f"%2F{ns_b}%2F")
        assert query != forged_target.query
        assert _on(ui_server, host_a, f"{forged_target.path}?{query}").status_code == 404
        # ...and on that other UI's own origin, A's ticket opens nothing (it is bound to A).
        taken = _on(ui_server, host_b, f"{forged_target.path}?{query}")
        assert taken.status_code == 403 and "set-cookie" not in taken.headers, taken.text


def test_a_rewritten_configmap_cannot_widen_the_paths(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
    local_cluster: LocalCluster,
) -> None:
    """Whoever may edit ConfigMaps in the namespace cannot give the UI more API paths."""
    env, ns_a, _ = two_uis
    widened = [
        _collection(ns_a),
        f"/apis/apps/v1/namespaces/{ns_a}/deployments",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns_a}/rolebindings",
    ]
    document = (
        '{"api": {"paths": ['
        + ", ".join(f'"{p}"' for p in widened)
        + '], "kubernetes": "x"}, "solution": "example-solution"}'
    )
    path = f"/api/v1/namespaces/{ns_a}/configmaps/{SOL}-ui-config"
    with local_cluster.admin_http() as http:
        http.patch(
            path,
            json={"data": {"config.json": document}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
    base = f"/env/{env}/{ns_a}/{SOL}/api/kubernetes"
    bearer = {"Authorization": f"Bearer {admin_token}"}
    with _logged_in(ui_server, admin_token) as main:
        host_a, _ = _ui_host(main, env, ns_a)
    for extra in widened[1:]:
        answer = _on(ui_server, host_a, base + extra, headers=bearer)
        assert answer.status_code == 403, (extra, answer.text)
        assert "may call only" in answer.json()["error"]["message"]
    # The paths of the archive still work, whatever the ConfigMap says.
    assert _on(ui_server, host_a, base + _collection(ns_a), headers=bearer).status_code == 200
    # A ConfigMap that is not readable at all changes nothing either.
    with local_cluster.admin_http() as http:
        http.patch(
            path,
            json={"data": {"config.json": "not json"}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
    assert _on(ui_server, host_a, base + _collection(ns_a), headers=bearer).status_code == 200
    # The engine notices the change and takes the ConfigMap back.
    done = cli(ui_server.config, local_cluster.kubeconfig, "env", "converge", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed outside this tool" in done.stdout + done.stderr


@pytest.fixture
def ui_a_served(
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    local_cluster: LocalCluster,
    tmp_path: Path,
) -> Iterator[None]:
    """The example UI's own server (the program of its image) behind UI A's Service."""
    ns_a = two_uis[1]
    with local_cluster.admin_http() as http:
        configmap = http.get(f"/api/v1/namespaces/{ns_a}/configmaps/{SOL}-ui-config")
        configmap.raise_for_status()
        config_file = tmp_path / "ui-config.json"
        config_file.write_text(configmap.json()["data"]["config.json"])
        address = host_address()
        with socket.socket() as sock:
            sock.bind((address, 0))
            port = sock.getsockname()[1]
        environ = dict(
            os.environ,
            SOLUTION_UI_CONFIG=str(config_file),
            SOLUTION_UI_PORT=str(port),
            SOLUTION_UI_LISTEN=address,
        )
        process = subprocess.Popen([sys.executable, str(UI_SERVER)], env=environ)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"http://{address}:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the example UI server did not start"
                time.sleep(0.1)
            serve_service(http, ns_a, f"{SOL}-ui", port, address=address)
            yield
        finally:
            process.terminate()
            process.wait(timeout=10)


# What a hostile script on UI A's page tries; each attempt says what it got.
ATTACKS = """async ([sameOriginB, otherOriginB, productApi]) => {
  const attempt = async (url, init) => {
    try {
      const r = await fetch(url, init);
      return `${r.status} ${(await r.text()).slice(0, 200)}`;
    } catch (e) {
      return `blocked: ${e}`;
    }
  };
  return {
    cookies: document.cookie,
    sameOriginB: await attempt(sameOriginB, {}),
    otherOriginB: await attempt(otherOriginB, {credentials: "include"}),
    writeOtherOriginB: await attempt(otherOriginB, {
      method: "POST", credentials: "include", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: "{}",
    }),
    productApi: await attempt(productApi, {credentials: "include"}),
  };
}"""


def test_a_script_on_ui_a_reaches_neither_ui_b_nor_the_product_in_a_browser(
    browser: Any,  # noqa: F811
    ui_server: RunningUi,  # noqa: F811
    two_uis: tuple[str, str, str],
    admin_token: str,  # noqa: F811
    ui_a_served: None,
    local_cluster: LocalCluster,
) -> None:
    env, ns_a, ns_b = two_uis
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(ui_server.url + "/login")
    page.get_by_label("Bearer token").fill(admin_token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/solutions")
    # The user has opened UI B too: its origin holds a session cookie of its own.
    page.goto(f"{ui_server.url}/env/{env}/{ns_b}/{SOL}/")
    origin_b = ui_server.solution_ui_origin((env, ns_b, SOL))
    page.wait_for_url(f"{origin_b}/env/{env}/{ns_b}/{SOL}/")
    # Then UI A, whose page plays the hostile vendor's script.
    page.goto(f"{ui_server.url}/env/{env}/{ns_a}/{SOL}/")
    origin_a = ui_server.solution_ui_origin((env, ns_a, SOL))
    page.wait_for_url(f"{origin_a}/env/{env}/{ns_a}/{SOL}/")
    page.locator("#environment").wait_for()
    assert page.evaluate("fetch('config.json').then(r => r.status)") == 200

    api_b = f"/env/{env}/{ns_b}/{SOL}/api/kubernetes{_collection(ns_b)}"
    got = page.evaluate(ATTACKS, [api_b, origin_b + api_b, ui_server.url + "/api/environments"])
    assert got["cookies"] == "", got  # HttpOnly: the script cannot read its own session
    assert got["sameOriginB"].startswith("404 "), got  # B is not served on A's origin
    assert got["otherOriginB"].startswith("blocked"), got  # no CORS: nothing comes back
    assert got["productApi"].startswith("blocked"), got
    # A blind write (an opaque no-cors answer, or none at all) changed nothing in B's namespace,
    # although B's cookie goes along with such a request (A and B are the same site).
    assert got["writeOtherOriginB"].startswith(("0 ", "blocked")), got
    with local_cluster.admin_http() as http:
        assert http.get(_collection(ns_b)).json()["items"] == []
    context.close()
