"""The OIDC login's pure parts: PKCE, state binding, ID token checks (Dex itself: integration)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import parse_qs, urlparse

import pytest

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.web.errors import WebError
from metalk8s_solutions.web.metrics import UiMetrics
from metalk8s_solutions.web.oidc import OidcLogin, OidcSettings, Tokens, claims_of

ISSUER = "https://dex.example/dex"


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def login() -> OidcLogin:
    oidc = OidcLogin(OidcSettings(ISSUER, "ui", "http://127.0.0.1:8080/oidc/callback"))
    oidc._discovery = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
    }
    return oidc


async def test_authorization_request_uses_pkce_s256_state_and_nonce() -> None:
    oidc = login()
    url, state = await oidc.begin()
    query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    assert url.startswith(f"{ISSUER}/auth?")
    assert query["state"] == state and query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    pending = oidc._pending[state]
    digest = hashlib.sha256(pending.verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["nonce"] == pending.nonce
    assert "offline_access" in query["scope"].split() and "groups" in query["scope"].split()
    other_url, other_state = await oidc.begin()
    assert other_state != state and other_url != url


async def test_callback_must_come_back_to_the_same_browser() -> None:
    oidc = login()
    _, state = await oidc.begin()
    with pytest.raises(WebError, match="another browser"):
        await oidc.finish(state, "another-state", "code")
    with pytest.raises(WebError, match="another browser"):  # a pending login is used once
        await oidc.finish(state, state, "code")


def test_id_token_checks() -> None:
    oidc = login()
    exp = time.time() + 600
    good = {"iss": ISSUER, "aud": "ui", "nonce": "n", "exp": exp}
    tokens = oidc._tokens({"id_token": jwt(good), "refresh_token": "r"}, "n")
    assert tokens.expires_at == exp and tokens.refresh_token == "r"
    for bad in ({**good, "nonce": "other"}, {**good, "aud": "else"}, {**good, "iss": "x"}):
        with pytest.raises(WebError):
            oidc._tokens({"id_token": jwt(bad)}, "n")
    with pytest.raises(WebError, match="malformed"):
        claims_of("not-a-jwt")


def test_refresh_is_due_shortly_before_expiry() -> None:
    oidc = login()
    oidc.remember("s", Tokens("t", "r", time.time() + 600))
    assert not oidc.needs_refresh("s")
    oidc.remember("s", Tokens("t", "r", time.time() + 10))
    assert oidc.needs_refresh("s")
    oidc.forget("s")
    assert not oidc.needs_refresh("s")


def test_issuer_must_be_https() -> None:
    with pytest.raises(InvalidInput, match="https"):
        OidcSettings("http://dex.example/dex", "ui", "http://x/cb")


def test_ui_metrics_exposition() -> None:
    metrics = UiMetrics()
    metrics.request("GET", "/api/environments", 200, 0.03)
    metrics.operation("env-create", "run", "ok", 1.5)
    metrics.refusal("forbidden", 403)
    text = metrics.render(sessions=2)
    assert (
        'solutions_ui_requests_total{method="GET",route="/api/environments",status="200"} 1' in text
    )
    bucket = 'solutions_ui_operation_duration_seconds_bucket{operation="env-create",mode="run",'
    assert bucket + 'le="1"} 0' in text and bucket + 'le="2.5"} 1' in text
    assert bucket + 'le="+Inf"} 1' in text
    assert 'solutions_ui_refusals_total{kind="forbidden",status="403"} 1' in text
    assert "solutions_ui_sessions 2" in text and text.endswith("\n")
