"""Finding 9: what unauthenticated callers can make the UI keep in memory is bounded.

Random bearer strings must not each become permission-cache entries (each one cost four
SelfSubjectAccessReviews and stayed); ``/oidc/login`` must not keep a pending login per call
without bound; and logins are rate-limited per client address.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from metalk8s_solutions.web.oidc import OidcLogin, OidcSettings
from security.webauth_support import admin_token, running_ui

ISSUER = "https://127.0.0.1:9/dex"  # nothing listens there: discovery fails at once


def _oidc() -> OidcLogin:
    oidc = OidcLogin(OidcSettings(ISSUER, "ui", "http://127.0.0.1:8080/oidc/callback"))
    oidc._discovery = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
    }
    return oidc


async def test_pending_oidc_logins_are_bounded() -> None:
    oidc = _oidc()
    states = [(await oidc.begin())[1] for _ in range(3000)]
    assert len(oidc._pending) <= 1000
    # the newest are kept (the oldest go first), and each can still be finished once
    assert states[-1] in oidc._pending and states[0] not in oidc._pending


@pytest.mark.cluster
def test_random_bearer_tokens_leave_nothing_cached(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    limits = {"login_burst": 5, "login_rate": 0.01}
    with running_ui(local_cluster, tmp_path, **limits) as served, served.ui.client() as http:
        kinds = []
        for _ in range(60):
            forged = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
            answer = http.get("/api/session", headers=forged)
            assert answer.status_code in (401, 429), answer.text
            kinds.append(answer.json()["error"]["kind"])
        assert len(served.state.perms) == 0
        # Each unknown token costs the API server reviews: it counts as a login attempt, so
        # a client sending random tokens is stopped after the burst (no review sent then).
        assert kinds[:5] == ["unauthenticated"] * 5
        assert set(kinds[5:]) == {"rate-limited"}


@pytest.mark.cluster
def test_permission_cache_is_bounded(local_cluster: LocalCluster, tmp_path: Path) -> None:
    token = admin_token(local_cluster)
    with running_ui(local_cluster, tmp_path, login_burst=100) as served:
        served.state.perms.entries.max_entries = 10
        for _ in range(6):  # six sessions, four reviews each: 24 answers for 10 places
            with served.ui.client() as http:
                assert http.post("/api/session", json={"token": token}).status_code == 200
                me = http.get("/api/session")
                assert me.status_code == 200 and me.json()["can"]["import"] is True
        assert len(served.state.perms) <= 10


@pytest.mark.cluster
def test_logins_are_rate_limited_per_client(local_cluster: LocalCluster, tmp_path: Path) -> None:
    token = admin_token(local_cluster)
    limits = {"login_burst": 3, "login_rate": 0.01}
    with running_ui(local_cluster, tmp_path, **limits) as served, served.ui.client() as http:
        for _ in range(3):
            answer = http.post("/api/session", json={"token": "forged"})
            assert answer.status_code == 401, answer.text
        refused = http.post("/api/session", json={"token": token})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["kind"] == "rate-limited"
        assert "Retry-After" in refused.headers
        page = http.post("/login", data={"token": token})
        assert page.status_code == 429 and "too many login attempts" in page.text
        assert "solutions_session" not in page.headers.get("set-cookie", "")
        # another client address is not held back by this one's attempts
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=served.ui.url, transport=other, timeout=60) as elsewhere:
            assert elsewhere.post("/api/session", json={"token": token}).status_code == 200


@pytest.mark.cluster
def test_oidc_login_is_rate_limited(local_cluster: LocalCluster, tmp_path: Path) -> None:
    oidc = OidcSettings(ISSUER, "ui", "http://127.0.0.1:8080/oidc/callback")
    limits = {"login_burst": 3, "login_rate": 0.01, "oidc": oidc}
    with running_ui(local_cluster, tmp_path, **limits) as served, served.ui.client() as http:
        for _ in range(3):
            assert http.get("/oidc/login").status_code == 502  # the provider is unreachable
        assert http.get("/oidc/login").status_code == 429
