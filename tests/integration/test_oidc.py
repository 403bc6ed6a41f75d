"""OIDC login through a real Dex drives RBAC in the UI, end to end.

Dex (built from its Go module) serves HTTPS on loopback with three users of its password
database: an admin, a viewer and a stranger, each with its groups.  A control plane of its own is
started with the matching ``--oidc-*`` flags and RBAC bindings for the admin and viewer groups.
The UI logs each user in with the authorization code flow (PKCE), driven over HTTP through Dex's
own login form, then acts with the user's ID token: the API server decides.
"""

from __future__ import annotations

import html
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
import pytest

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.testing.controlplane import LocalControlPlane
from metalk8s_solutions.testing.dex import DexClient, DexUser, LocalDex
from metalk8s_solutions.testing.pki import CertificateAuthority
from metalk8s_solutions.web.deps import UiSettings
from metalk8s_solutions.web.oidc import OidcSettings
from metalk8s_solutions.web.server import Sockets, bind, server_for, url_of

CLIENT_ID = "solutions-ui"
ADMIN = DexUser("admin@example.com", "admin-password", ("solutions-admins",))
VIEWER = DexUser("viewer@example.com", "viewer-password", ("solutions-viewers",))
STRANGER = DexUser("stranger@example.com", "stranger-password", ("elsewhere",))
ID_TOKEN_TTL = 40  # seconds: the UI refreshes 30 s before expiry, so refresh is exercised


@dataclass(frozen=True)
class OidcWorld:
    ui: str
    dex: LocalDex


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcWorld]:
    base = tmp_path_factory.mktemp("oidc")
    sock = bind("127.0.0.1", 0)  # reserve the UI's port: its redirect URL is registered at Dex
    ui_url = url_of(sock, False)
    sock.close()
    dex = LocalDex(
        base / "dex",
        CertificateAuthority.create("dex-test-ca"),
        (ADMIN, VIEWER, STRANGER),
        (DexClient(CLIENT_ID, (f"{ui_url}/oidc/callback",), secret="ui-client-secret"),),
        id_token_ttl=f"{ID_TOKEN_TTL}s",
    ).start()
    plane = LocalControlPlane(
        base / "plane",
        nodes=0,
        bind_to_parent=True,
        apiserver_args=(
            f"--oidc-issuer-url={dex.issuer}",
            f"--oidc-client-id={CLIENT_ID}",
            f"--oidc-ca-file={dex.ca_file}",
            "--oidc-username-claim=email",
            "--oidc-groups-claim=groups",
            "--oidc-groups-prefix=oidc:",
        ),
    )
    try:
        info = plane.up()
        with httpx.Client(
            base_url=info.server, verify=plane.admin_ssl_context(), timeout=30
        ) as admin:
            for group, role in (
                ("solutions-admins", "cluster-admin"),
                ("solutions-viewers", "view"),
            ):
                body = {
                    "metadata": {"name": f"oidc-{group}"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": role,
                    },
                    "subjects": [
                        {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "Group",
                            "name": f"oidc:{group}",
                        }
                    ],
                }
                response = admin.post(
                    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=body
                )
                assert response.status_code == 201, response.text
        settings = UiSettings(
            config_path=base / "solutions.yaml",
            target=ClusterTarget(kubeconfig=info.kubeconfig),
            oidc=OidcSettings(
                issuer=dex.issuer,
                client_id=CLIENT_ID,
                client_secret="ui-client-secret",
                redirect_url=f"{ui_url}/oidc/callback",
                ca_file=dex.ca_file,
            ),
        )
        host, port = ui_url.removeprefix("http://").rsplit(":", 1)
        sock = bind(host, int(port))
        server = server_for(settings, Sockets(sock), log_level="warning")
        thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        try:
            yield OidcWorld(ui_url, dex)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        plane.down()
        dex.stop()


FORM = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]+)"', re.IGNORECASE)


def login(world: OidcWorld, user: DexUser, password: str | None = None) -> httpx.Client:
    """The browser's journey: UI -> Dex's login form -> UI callback -> logged in."""
    client = httpx.Client(verify=world.dex.ssl_context(), follow_redirects=True, timeout=60)
    form = client.get(f"{world.ui}/oidc/login")
    assert form.status_code == 200 and str(form.url).startswith(world.dex.issuer), form.url
    match = FORM.search(form.text)
    assert match, form.text[:500]
    action = urljoin(str(form.url), html.unescape(match.group(1)))
    done = client.post(action, data={"login": user.email, "password": password or user.password})
    if password is None:
        assert done.status_code == 200 and str(done.url).startswith(world.ui), done.text[:500]
    else:  # a wrong password: Dex shows its form again
        assert done.status_code == 401 and str(done.url).startswith(world.dex.issuer)
    return client


def csrf(client: httpx.Client, world: OidcWorld) -> dict[str, str]:
    session = client.get(f"{world.ui}/api/session")
    assert session.status_code == 200, session.text
    return {"X-CSRF-Token": session.json()["csrf"]}


def test_admin_group_can_deploy(world: OidcWorld) -> None:
    with closing(login(world, ADMIN)) as client:
        page = client.get(f"{world.ui}/solutions")
        assert page.status_code == 200 and "admin@example.com" in page.text
        me = client.get(f"{world.ui}/api/session").json()
        assert me["user"] == "admin@example.com"
        assert me["can"]["createEnvironment"] is True  # through the group's binding
        env = f"oidc-{secrets.token_hex(3)}"
        created = client.post(
            f"{world.ui}/api/environments", json={"name": env}, headers=csrf(client, world)
        )
        assert created.status_code == 200, created.text
        listed = client.get(f"{world.ui}/api/environments")
        assert env in {e["name"] for e in listed.json()}


def test_viewer_group_can_only_read(world: OidcWorld) -> None:
    with closing(login(world, VIEWER)) as client:
        assert client.get(f"{world.ui}/api/session").json()["can"]["createEnvironment"] is False
        listed = client.get(f"{world.ui}/api/environments")
        assert listed.status_code == 200, listed.text
        refused = client.post(
            f"{world.ui}/api/environments",
            json={"name": f"oidc-{secrets.token_hex(3)}"},
            headers=csrf(client, world),
        )
        assert refused.status_code == 403, refused.text


def test_stranger_is_refused(world: OidcWorld) -> None:
    # Authenticated by Dex and the API server, but no RBAC binding: every read is refused.
    with closing(login(world, STRANGER)) as client:
        me = client.get(f"{world.ui}/api/session").json()
        assert me["user"] == "stranger@example.com"
        assert client.get(f"{world.ui}/api/environments").status_code == 403
    # A wrong password never leaves Dex: no session in the UI.
    with closing(login(world, ADMIN, password="wrong")) as client:
        assert client.get(f"{world.ui}/api/session").status_code == 401


def test_callback_without_its_cookie_is_refused(world: OidcWorld) -> None:
    with httpx.Client(timeout=30) as client:
        answer = client.get(f"{world.ui}/oidc/callback", params={"state": "forged", "code": "x"})
        assert answer.status_code == 401
        assert "unknown, expired or from another browser" in answer.text


def test_refresh_then_logout(world: OidcWorld) -> None:
    with closing(login(world, VIEWER)) as client:
        time.sleep(ID_TOKEN_TTL - 30 + 2)  # the ID token is now within the refresh margin
        assert client.get(f"{world.ui}/api/environments").status_code == 200
        metrics = client.get(f"{world.ui}/metrics").text
        assert re.search(
            r'solutions_ui_logins_total\{method="oidc-refresh",outcome="ok"\} [1-9]', metrics
        ), metrics
        assert re.search(r'solutions_ui_logins_total\{method="oidc",outcome="ok"\} [1-9]', metrics)
        client.post(f"{world.ui}/logout", headers=csrf(client, world))
        assert client.get(f"{world.ui}/api/session").status_code == 401


def test_ui_metrics_after_real_traffic(world: OidcWorld) -> None:
    with closing(login(world, ADMIN)) as client:
        env = f"oidc-{secrets.token_hex(3)}"
        headers = csrf(client, world)
        client.post(
            f"{world.ui}/api/environments", json={"name": env, "dryRun": True}, headers=headers
        )
        client.post(f"{world.ui}/api/environments", json={"name": env}, headers=headers)
        metrics = client.get(f"{world.ui}/metrics").text
    with closing(login(world, VIEWER)) as viewer:
        viewer.post(
            f"{world.ui}/api/environments", json={"name": "nope"}, headers=csrf(viewer, world)
        )
        after = viewer.get(f"{world.ui}/metrics").text

    def value(text: str, series: str) -> float:
        found = re.search(re.escape(series) + r" ([0-9.e+]+)$", text, re.MULTILINE)
        assert found, f"{series} not in\n{text}"
        return float(found.group(1))

    ops = 'solutions_ui_operations_total{operation="env-create",mode="%s",outcome="%s"}'
    assert value(metrics, ops % ("plan", "ok")) >= 1
    assert value(metrics, ops % ("run", "ok")) >= 1
    assert value(after, ops % ("run", "refused")) >= 1
    assert (
        value(
            metrics,
            'solutions_ui_requests_total{method="POST",route="/api/environments",status="200"}',
        )
        >= 2
    )
    assert value(after, 'solutions_ui_refusals_total{kind="forbidden",status="403"}') >= 1
    count = 'solutions_ui_operation_duration_seconds_count{operation="env-create",mode="run"}'
    total = 'solutions_ui_operation_duration_seconds_sum{operation="env-create",mode="run"}'
    assert value(after, count) >= 2 and value(after, total) > 0
    assert value(after, "solutions_ui_sessions") >= 1


def test_login_page_offers_single_sign_on(world: OidcWorld) -> None:
    page = httpx.get(f"{world.ui}/login", timeout=30)
    assert 'href="/oidc/login"' in page.text and world.dex.issuer in page.text
