"""What every request handler needs: the server's state, the caller, CSRF, cookies, the
instance a URL names, engine contexts."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.engine.instances.scope import InstanceRef
from metalk8s_solutions.engine.solutions import Context, Say
from metalk8s_solutions.errors import SolutionsError
from metalk8s_solutions.web.auth import RECORD_UPDATE, Check, PermissionCache, TokenAuthenticator
from metalk8s_solutions.web.errors import WebError, forbidden, unauthenticated
from metalk8s_solutions.web.jobs import Jobs
from metalk8s_solutions.web.limits import RateLimiter
from metalk8s_solutions.web.metrics import UiMetrics
from metalk8s_solutions.web.oidc import OidcLogin, OidcSettings
from metalk8s_solutions.web.sessions import (
    COOKIE,
    DEFAULT_LIFETIME,
    DEFAULT_TTL,
    Authenticator,
    MemorySessionStore,
    SessionStore,
)
from metalk8s_solutions.web.ui_origins import (
    UiBase,
    UiSessions,
    cookie_name,
    cookie_values,
    default_base,
    parse_base,
)
from metalk8s_solutions.web.uploads import DEFAULT_UPLOAD_LIMIT

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: the login form's CSRF token before there is a session (double-submit: cookie and field)
LOGIN_CSRF_COOKIE = "solutions_login_csrf"
LOGIN_BURST = 20
LOGIN_RATE = 0.5  # attempts a second, once the burst is spent


#: The URL of one instance, below ``/api`` (JSON) and ``/`` (pages) alike.
INSTANCE_PATH = "/environments/{env}/solutions/{solution}/instances/{kind}/{namespace}/{name}"


def instance_ref(env: str, solution: str, kind: str, namespace: str, name: str) -> InstanceRef:
    """The instance the path parameters of an :data:`INSTANCE_PATH` URL name."""
    return InstanceRef(env, solution, kind, namespace, name)


#: A handler's parameter: the instance its URL names.
InstanceAt = Annotated[InstanceRef, Depends(instance_ref)]


@dataclass(frozen=True)
class UiSettings:
    """How ``solutions ui`` runs.

    ``target`` names the cluster (server and CA of the kubeconfig); its own credentials are never
    used for a user's request: each request uses the logged-in user's token.
    """

    config_path: Path
    target: ClusterTarget
    #: cookies only over HTTPS: set when the UI serves TLS, or behind a TLS-terminating proxy
    secure_cookies: bool = False
    upload_dir: Path | None = None
    #: a session ends after ``session_ttl`` seconds without a request (idle timeout), and
    #: ``session_lifetime`` seconds after login in any case (absolute lifetime)
    session_ttl: float = DEFAULT_TTL
    session_lifetime: float = DEFAULT_LIFETIME
    #: login attempts (token form, API, OIDC) per client address: a burst, then a steady rate
    login_burst: int = LOGIN_BURST
    login_rate: float = LOGIN_RATE
    oidc: OidcSettings | None = None
    #: ``scheme://DOMAIN[:PORT]``: each Solution UI is served at ``<label>.DOMAIN[:PORT]``
    #: (a wildcard DNS record); default: ``localhost`` sub-domains, for a loopback server only
    solution_ui_url: str | None = None
    #: the largest archive a user may upload, in bytes (``solutions ui --upload-limit``)
    upload_limit: int = DEFAULT_UPLOAD_LIMIT

    @property
    def uploads(self) -> Path:
        return self.upload_dir or self.config_path.parent / "archives"


def set_cookie(
    response: Response,
    settings: UiSettings,
    name: str,
    value: str,
    *,
    path: str,
    max_age: float | None = None,
    samesite: Literal["strict", "lax"] = "strict",
) -> None:
    """Set one of the UI's cookies, the only way they are set: HttpOnly (no script reads it),
    Secure when the UI is reached over HTTPS (:attr:`UiSettings.secure_cookies`), SameSite
    strict unless a cross-site top-level navigation must carry it (``lax``), for ``path``
    only; ``max_age`` in seconds (none: until the browser closes)."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite=samesite,
        secure=settings.secure_cookies,
        path=path,
        max_age=None if max_age is None else int(max_age),
    )


def set_session_cookie(response: Response, session_id: str, ui: UiState) -> None:
    """The product's session cookie, for the session's whole lifetime."""
    set_cookie(
        response, ui.settings, COOKIE, session_id, path="/", max_age=ui.settings.session_lifetime
    )


@dataclass
class UiState:
    settings: UiSettings
    sessions: SessionStore
    authenticator: Authenticator
    perms: PermissionCache = field(default_factory=PermissionCache)
    jobs: Jobs = field(default_factory=Jobs)
    metrics: UiMetrics = field(default_factory=UiMetrics)
    oidc: OidcLogin | None = None
    logins: RateLimiter = field(default_factory=lambda: RateLimiter(LOGIN_BURST, LOGIN_RATE))
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
            MemorySessionStore(settings.session_ttl, settings.session_lifetime),
            TokenAuthenticator(settings.target),
            oidc=OidcLogin(settings.oidc, settings.session_lifetime) if settings.oidc else None,
            logins=RateLimiter(settings.login_burst, settings.login_rate),
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


def has_credentials(request: Request) -> bool:
    """Does the request carry a bearer token or a live session? (reads headers only)"""
    try:
        return optional_principal(request) is not None
    except SolutionsError:
        return False


def has_ui_credentials(request: Request) -> bool:
    """On a Solution UI's origin: a bearer token or a live session of a Solution UI (which UI
    it stands for is checked by the route; reads headers only)."""
    if request.headers.get("authorization", "")[:7].lower() == "bearer ":
        return True
    sessions = state_of(request).ui_sessions
    cookies = request.headers.get("cookie", "")
    return any(
        sessions.live(value)
        for name in (cookie_name(False), cookie_name(True))
        for value in cookie_values(cookies, name)
    )


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
    require_csrf(who, sent)


def require_csrf(who: Principal, sent: str | None) -> None:
    """Refuse ``sent`` unless it is the CSRF token of ``who``'s session (bearer: no check)."""
    if who.csrf is None:
        return
    if not sent or not secrets.compare_digest(sent, who.csrf):
        raise WebError(
            403,
            "csrf",
            "the form is stale or did not come from this site (missing or wrong CSRF token)",
            hint="reload the page and try again",
        )


def limit_logins(request: Request) -> None:
    """Count a login attempt of the client's address; 429 once its attempts run out."""
    limiter = state_of(request).logins
    client = request.client.host if request.client else "unknown"
    if not limiter.allow(client):
        wait = limiter.retry_after(client)
        raise WebError(
            429,
            "rate-limited",
            f"too many login attempts from {client}",
            hint=f"wait {wait} s and try again",
            retry_after=wait,
        )


def from_other_site(request: Request) -> bool:
    """True when the browser says another site made this request (Fetch metadata, Origin).

    Requests without either header (API clients, old browsers) are not from another site as
    far as this can tell; forms have their CSRF token besides.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


def check_login_origin(request: Request) -> None:
    """Login CSRF: refuse a login another site's page sends (it would log the victim in as the
    attacker)."""
    if from_other_site(request):
        raise WebError(
            403,
            "csrf",
            "the login did not come from this site (its Origin or Sec-Fetch-Site says so); "
            "it was refused",
            hint="log in from the UI's own login page, or from an API client",
        )


def check_login_form(request: Request, sent: object) -> None:
    """The login form's double-submit token: its field must equal its cookie."""
    check_login_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not isinstance(sent, str) or not cookie or not secrets.compare_digest(sent, cookie):
        raise WebError(
            403,
            "csrf",
            "the login form is stale or did not come from this site (missing or wrong CSRF token)",
            hint="reload the login page and try again",
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
    if who.key.startswith("bearer:") and not state.perms.knows(who.key):
        # A bearer token not yet accepted costs the API server reviews: it counts as a login
        # attempt of the client's address, so random tokens cannot make us flood it.
        limit_logins(request)
    return await state.perms.check(who.key, state.settings.target.as_user(who.token), checks)


async def require_record_rights(request: Request, who: Principal, what: str) -> None:
    """Operations that write files on the admin node also need rights on the cluster record."""
    if not (await can(request, who, [RECORD_UPDATE]))[RECORD_UPDATE]:
        raise forbidden(
            f"{what} changes SolutionsConfiguration on the admin node, which needs the right to "
            "update ConfigMap metalk8s-solutions in namespace metalk8s-solutions"
        )
