"""Finding 17: login CSRF, the absolute session lifetime, Secure cookies behind a TLS proxy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from security.webauth_support import EVIL, admin_token, running_ui

pytestmark = pytest.mark.cluster

SOLUTIONS = str(Path(sys.executable).parent / "solutions")
FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def login_form(http: httpx.Client) -> str:
    page = http.get("/login")
    assert page.status_code == 200
    found = FIELD.search(page.text)
    assert found, "the login form carries no CSRF token"
    return found.group(1)


def test_login_form_needs_its_csrf_token(local_cluster: LocalCluster, tmp_path: Path) -> None:
    token = admin_token(local_cluster)
    with running_ui(local_cluster, tmp_path) as served:
        # a page of another site posting its own token: no field, no cookie
        with served.ui.client() as http:
            forged = http.post("/login", data={"token": token}, headers={"Origin": EVIL})
            assert forged.status_code == 403, forged.text
            assert "solutions_session" not in forged.headers.get("set-cookie", "")
            assert "did not come from this site" in forged.text
        with served.ui.client() as http:
            field = login_form(http)
            assert "solutions_login_csrf" in http.cookies
            # the right field, but the browser says another site sent it
            cross = http.post(
                "/login",
                data={"token": token, "csrf": field},
                headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
            )
            assert cross.status_code == 403, cross.text
            assert "solutions_session" not in cross.headers.get("set-cookie", "")
            # a field that is not the cookie's
            wrong = http.post("/login", data={"token": token, "csrf": "x" + field})
            assert wrong.status_code == 403, wrong.text
            # the form as the login page served it
            field = login_form(http)
            done = http.post(
                "/login",
                data={"token": token, "csrf": field},
                headers={"Origin": served.ui.url, "Sec-Fetch-Site": "same-origin"},
            )
            assert done.status_code == 303 and done.headers["location"] == "/solutions", done.text
            assert "solutions_session" in http.cookies
        assert len(served.state.sessions) == 1  # type: ignore[arg-type]


def test_api_login_refuses_other_sites(local_cluster: LocalCluster, tmp_path: Path) -> None:
    token = admin_token(local_cluster)
    with running_ui(local_cluster, tmp_path) as served, served.ui.client() as http:
        for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
            refused = http.post("/api/session", json={"token": token}, headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["kind"] == "csrf"
            assert "set-cookie" not in refused.headers
        # API clients (no browser headers) and the UI's own pages still log in
        assert http.post("/api/session", json={"token": token}).status_code == 200
        same = {"Origin": served.ui.url, "Sec-Fetch-Site": "same-origin"}
        assert http.post("/api/session", json={"token": token}, headers=same).status_code == 200


def test_sessions_end_after_their_absolute_lifetime(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    token = admin_token(local_cluster)
    limits = {"session_ttl": 60.0, "session_lifetime": 3.0}
    with running_ui(local_cluster, tmp_path, **limits) as served, served.ui.client() as http:
        login = http.post("/api/session", json={"token": token})
        assert login.status_code == 200
        assert "Max-Age=3" in login.headers["set-cookie"]
        started = time.monotonic()
        while time.monotonic() - started < 2.0:  # in use all the time: never idle
            assert http.get("/api/session").status_code == 200
            time.sleep(0.3)
        time.sleep(1.5)
        assert http.get("/api/session").status_code == 401


def test_secure_cookies_behind_a_tls_proxy(local_cluster: LocalCluster, tmp_path: Path) -> None:
    token = admin_token(local_cluster)
    command = [
        SOLUTIONS,
        "--config",
        str(tmp_path / "solutions.yaml"),
        "--kubeconfig",
        str(local_cluster.kubeconfig),
        "ui",
        "--listen",
        "127.0.0.1:0",
        "--solution-ui-listen",
        "127.0.0.1:0",
        "--secure-cookies",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = re.search(r"Solutions UI on (http://[0-9.:]+)", line)
            assert found, line + process.stderr.read()
            with httpx.Client(base_url=found.group(1), timeout=60) as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        page = http.get("/login")
                        break
                    except httpx.ConnectError:
                        assert time.monotonic() < deadline
                        time.sleep(0.2)
                assert "; secure" in page.headers["set-cookie"].lower()
                login = http.post("/api/session", json={"token": token})
                assert login.status_code == 200, login.text
                assert "; secure" in login.headers["set-cookie"].lower()
        finally:
            process.terminate()
            process.wait(timeout=20)
