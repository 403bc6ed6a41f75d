"""What every request handler needs: the server's state, the caller, CSRF, engine contexts."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.engine.solutions import Context, Say
from metalk8s_solutions.web.auth import RECORD_UPDATE, Check, PermissionCache, TokenAuthenticator
from metalk8s_solutions.web.errors import WebError, forbidden, unauthenticated
from metalk8s_solutions.web.jobs import Jobs
from metalk8s_solutions.web.metrics import UiMetrics
from metalk8s_solutions.web.oidc import OidcLogin, OidcSettings
from metalk8s_solutions.web.sessions import COOKIE, Authenticator, MemorySessionStore, SessionStore
from metalk8s_solutions.web.ui_origins import UiBase, UiSessions, default_base, parse_base

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class UiSettings:
    """How ``solutions ui`` runs.

    ``target`` names the cluster (server and CA of the kubeconfig); its own credentials are never
    used for a user's request: each request uses the logged-in user's token.
    """

    config_path: Path
    target: ClusterTarget
    secure_cookies: bool = False
    upload_dir: Path | None = None
    session_ttl: float = 8 * 3600.0
    oidc: OidcSettings | None = None
    #: ``scheme://DOMAIN[:PORT]``: each Solution UI is served at ``<label>.DOMAIN[:PORT]``
    #: (a wildcard DNS record); default: ``localhost`` sub-domains, for a loopback server only
    solution_ui_url: str | None = None

    @property
    def uploads(self) -> Path:
        return self.upload_dir or self.config_path.parent / "archives"


@dataclass
class UiState:
    settings: UiSettings
    sessions: SessionStore
    authenticator: Authenticator
    perms: PermissionCache = field(default_factory=PermissionCache)
    jobs: Jobs = field(default_factory=Jobs)
    metrics: UiMetrics = field(default_factory=UiMetrics)
    oidc: OidcLogin | None = None
    #: handoff tickets and sessions of the Solution UIs' origins (one origin per UI)
    ui_sessions: UiSessions = field(default_factory=UiSessions)
    #: the ports of the two origins, known once the server has bound its sockets
    main_port: int | None = None
    #: the product's URL, where a Solution UI sends a browser that is not logged in on it
    main_url: str | None = None
    solution_ui_port: int | None = None

    @classmethod
    def create(cls, settings: UiSettings) -> UiState:
        return cls(
            settings,
            MemorySessionStore(settings.session_ttl),
            TokenAuthenticator(settings.target),
            oidc=OidcLogin(settings.oidc) if settings.oidc else None,
            ui_sessions=UiSessions(session_ttl=settings.session_ttl),
        )


@dataclass(frozen=True)
class Principal:
    """The caller: a browser session (with its CSRF token) or an API client's bearer token."""

    key: str  # session id, or a digest of the bearer token: owner of jobs, cache key
    user: str
    token: str = field(repr=False)
    csrf: str | None = field(default=None, repr=False)  # None: no cookie, so no CSRF risk


def state_of(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def _origin(request: Request, port: int | None) -> str:
    host = request.url.hostname or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"{request.url.scheme}://{shown}" + (f":{port}" if port else "")


def main_origin(request: Request) -> str:
    """The product's own origin, as the browser reached this host."""
    return _origin(request, state_of(request).main_port)


def solution_ui_base(request: Request) -> UiBase | None:
    """Where Solutions' own UIs are, one host name each; None when this server does not serve
    them (no Solution UI socket, or no ``--solution-ui-url`` for a non-loopback server)."""
    state = state_of(request)
    if state.settings.solution_ui_url:
        return parse_base(state.settings.solution_ui_url)
    if state.solution_ui_port is None:
        return None
    return default_base(request.url.scheme, request.url.hostname or "", state.solution_ui_port)


async def refresh_oidc(ui: UiState, session_id: str) -> None:
    """Renew an OIDC session's ID token shortly before it expires; end the session if refused."""
    if ui.oidc is None or not ui.oidc.needs_refresh(session_id):
        return
    session = ui.sessions.get(session_id)
    tokens = await ui.oidc.refresh(session_id)
    if session is None or tokens is None:
        ui.sessions.delete(session_id)  # the next page asks to log in again
        ui.ui_sessions.end(session_id)
        ui.metrics.login("oidc-refresh", "refused")
        return
    session.token = tokens.id_token
    ui.metrics.login("oidc-refresh", "ok")


def optional_principal(request: Request) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
        if not token:
            raise unauthenticated("empty bearer token")
        digest = hashlib.sha256(token.encode()).hexdigest()
        return Principal(key=f"bearer:{digest}", user="(bearer token)", token=token)
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    session = state_of(request).sessions.get(session_id)
    if session is None:
        return None
    return Principal(key=session.id, user=session.user, token=session.token, csrf=session.csrf)


def principal(request: Request) -> Principal:
    """FastAPI dependency: the logged-in caller, or 401."""
    found = optional_principal(request)
    if found is None:
        raise unauthenticated()
    return found


async def check_csrf(request: Request, who: Principal) -> None:
    """Refuse a mutating cookie-authenticated request without the session's CSRF token."""
    if request.method not in MUTATING or who.csrf is None:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent, who.csrf):
        raise WebError(
            403,
            "csrf",
            "the form is stale or did not come from this site (missing or wrong CSRF token)",
            hint="reload the page and try again",
        )


async def user(request: Request) -> Principal:
    """FastAPI dependency for handlers: logged in, and CSRF-checked when mutating."""
    who = principal(request)
    await check_csrf(request, who)
    return who


def context(request: Request, who: Principal, say: Say | None = None) -> Context:
    settings = state_of(request).settings
    target = settings.target.as_user(who.token)
    return Context(settings.config_path, target, say or (lambda _: None))


async def can(request: Request, who: Principal, checks: Iterable[Check]) -> Mapping[Check, bool]:
    state = state_of(request)
    return await state.perms.check(who.key, state.settings.target.as_user(who.token), checks)


async def require_record_rights(request: Request, who: Principal, what: str) -> None:
    """Operations that write files on the admin node also need rights on the cluster record."""
    if not (await can(request, who, [RECORD_UPDATE]))[RECORD_UPDATE]:
        raise forbidden(
            f"{what} changes SolutionsConfiguration on the admin node, which needs the right to "
            "update ConfigMap metalk8s-solutions in namespace metalk8s-solutions"
        )
