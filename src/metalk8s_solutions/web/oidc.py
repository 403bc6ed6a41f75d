"""OpenID Connect login (authorization code flow with PKCE), Dex being the reference provider.

The UI never decides who may do what: it obtains the user's **ID token** from the provider and
sends it to the Kubernetes API server as a bearer token, so the API server's OIDC settings
(``--oidc-issuer-url``, ``--oidc-client-id``, ``--oidc-username-claim``, ``--oidc-groups-claim``)
authenticate the user and RBAC authorizes each request.  Who the user is comes from a
SelfSubjectReview with that token (the API server verified its signature), not from decoding it.

The flow: ``/oidc/login`` stores a pending login (state, nonce, PKCE verifier) keyed by a random
``state`` that is also set in a short-lived cookie (so a callback cannot be replayed into another
browser), and redirects to the provider; ``/oidc/callback`` checks state and cookie, exchanges
the code with the verifier (and the client secret, for a confidential client) over TLS verified
against the configured CA, checks the ID token's issuer, audience and nonce, and opens a session.
Before the ID token expires, a request with the session refreshes it with the refresh token;
when that fails, the session ends and the user logs in again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# lightkube's HTTP client (httpx2 keeps httpx's API): one HTTP stack in the process, not two.
import httpx2 as httpx

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.web.errors import WebError, unauthenticated
from metalk8s_solutions.web.limits import BoundedCache
from metalk8s_solutions.web.sessions import DEFAULT_LIFETIME, MAX_SESSIONS

STATE_COOKIE = "solutions_oidc_state"
PENDING_TTL = 600.0
#: logins begun and not finished, all browsers together (the oldest go first beyond that)
MAX_PENDING = 1000
REFRESH_MARGIN = 30.0
DEFAULT_SCOPES = ("openid", "email", "profile", "groups", "offline_access")


@dataclass(frozen=True)
class OidcSettings:
    """How the UI talks to the provider (``solutions ui --oidc-*``)."""

    issuer: str
    client_id: str
    redirect_url: str
    client_secret: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES

    def __post_init__(self) -> None:
        if not self.issuer.startswith("https://"):
            raise InvalidInput(
                f"--oidc-issuer {self.issuer!r} must be an https:// URL",
                hint="the Kubernetes API server only accepts an https issuer",
            )


@dataclass(frozen=True)
class Tokens:
    id_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float  # time.time() of the ID token's exp


@dataclass(frozen=True)
class _Pending:
    verifier: str = field(repr=False)
    nonce: str
    created: float


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(id_token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: used only for exp, nonce, iss and aud checks of a token
    received straight from the token endpoint over verified TLS (OIDC Core 3.1.3.7); the API
    server verifies the signature on every use."""
    try:
        payload = id_token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as err:
        raise unauthenticated("the identity provider returned a malformed ID token") from err
    if not isinstance(data, dict):
        raise unauthenticated("the identity provider returned a malformed ID token")
    return data


class OidcLogin:
    """Pending logins and the refresh tokens of sessions; talks to the provider."""

    def __init__(self, settings: OidcSettings, session_lifetime: float = DEFAULT_LIFETIME) -> None:
        self.settings = settings
        self._discovery: dict[str, Any] | None = None
        self._pending: BoundedCache[str, _Pending] = BoundedCache(MAX_PENDING, PENDING_TTL)
        # session id -> its tokens; a session outlives neither its lifetime nor the bound
        self._refresh: BoundedCache[str, Tokens] = BoundedCache(MAX_SESSIONS, session_lifetime)

    def _client(self, auth: httpx.Auth | None = None) -> httpx.AsyncClient:
        ca = self.settings.ca_file
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        )
        return httpx.AsyncClient(verify=verify, timeout=15, auth=auth)

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with self._client() as http:
                    response = await http.get(url)
                response.raise_for_status()
                doc = response.json()
            except (httpx.HTTPError, ValueError) as err:
                raise WebError(
                    502,
                    "identity-provider",
                    f"the identity provider {self.settings.issuer} cannot be reached: {err}",
                    hint="check --oidc-issuer and --oidc-ca-file, and that the provider is up",
                ) from err
            if doc.get("issuer") != self.settings.issuer:
                raise WebError(
                    502,
                    "identity-provider",
                    f"the provider says its issuer is {doc.get('issuer')!r}, "
                    f"not {self.settings.issuer!r}",
                    hint="--oidc-issuer must be exactly the provider's issuer URL",
                )
            self._discovery = doc
        return self._discovery

    async def begin(self) -> tuple[str, str]:
        """The provider's authorization URL, and the state to put in the browser's cookie."""
        doc = await self.discovery()
        state, verifier, nonce = (secrets.token_urlsafe(32) for _ in range(3))
        self._pending.put(state, _Pending(verifier, nonce, time.monotonic()))
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_url,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{doc['authorization_endpoint']}?{urlencode(query)}", state

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        doc = await self.discovery()
        form = {**form, "client_id": self.settings.client_id}
        auth = None
        if self.settings.client_secret:
            auth = httpx.BasicAuth(self.settings.client_id, self.settings.client_secret)
        try:
            async with self._client(auth) as http:
                response = await http.post(doc["token_endpoint"], data=form)
        except httpx.HTTPError as err:
            raise WebError(
                502, "identity-provider", f"the identity provider cannot be reached: {err}"
            ) from err
        if response.status_code != 200:
            raise unauthenticated(
                f"the identity provider refused the login ({response.status_code}: "
                f"{response.text[:200]})"
            )
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            raise unauthenticated("the identity provider returned no ID token")
        return body

    def _tokens(self, body: dict[str, Any], nonce: str | None) -> Tokens:
        claims = claims_of(body["id_token"])
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != self.settings.issuer or self.settings.client_id not in audiences:
            raise unauthenticated("the ID token was not issued for this client by this issuer")
        if nonce is not None and claims.get("nonce") != nonce:
            raise unauthenticated("the ID token does not answer this login (nonce mismatch)")
        refresh = body.get("refresh_token")
        return Tokens(
            body["id_token"],
            refresh if isinstance(refresh, str) else None,
            float(claims.get("exp") or time.time()),
        )

    async def finish(self, state: str, cookie_state: str | None, code: str) -> Tokens:
        """Exchange the authorization code of a pending login for its tokens."""
        pending = self._pending.pop(state)
        if (
            pending is None
            or cookie_state is None
            or not secrets.compare_digest(state, cookie_state)
            or time.monotonic() - pending.created > PENDING_TTL
        ):
            raise unauthenticated("this login is unknown, expired or from another browser")
        body = await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.settings.redirect_url,
                "code_verifier": pending.verifier,
            }
        )
        return self._tokens(body, pending.nonce)

    def remember(self, session_id: str, tokens: Tokens) -> None:
        self._refresh.put(session_id, tokens)

    def forget(self, session_id: str) -> None:
        self._refresh.pop(session_id)

    def needs_refresh(self, session_id: str) -> bool:
        tokens = self._refresh.get(session_id)
        return tokens is not None and tokens.expires_at - REFRESH_MARGIN < time.time()

    async def refresh(self, session_id: str) -> Tokens | None:
        """New tokens for the session, or None (no refresh token, or the provider refused)."""
        tokens = self._refresh.get(session_id)
        if tokens is None or tokens.refresh_token is None:
            self.forget(session_id)
            return None
        try:
            body = await self._token(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
            )
            fresh = self._tokens(body, None)
        except WebError:
            self.forget(session_id)
            return None
        if fresh.refresh_token is None:
            fresh = Tokens(fresh.id_token, tokens.refresh_token, fresh.expires_at)
        self._refresh.put(session_id, fresh)
        return fresh
