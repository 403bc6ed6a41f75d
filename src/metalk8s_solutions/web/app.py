"""The ASGI applications: pages, the JSON API, static assets, errors and security headers.

Nothing is fetched from elsewhere at runtime (the cluster is air-gapped): the stylesheet and the
small script are files of this package, and FastAPI's CDN-hosted doc pages are turned off; the
OpenAPI document itself is served at ``/api/openapi.json``.

Solutions' own UIs are served by a second application on a second socket, each UI on its own
host name (its own origin, ``web/ui_origins.py``), so that their scripts, which run with the
logged-in user's rights, can read neither the product's pages (and their CSRF tokens) nor another
UI's, nor call the product's API or another UI's API paths: :class:`OriginDispatcher` sends each
request to the application of the socket it came in on.  The product's session cookie is never
taken there: each UI's origin gets its own session, handed over with a one-time ticket.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sized
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from metalk8s_solutions import __version__
from metalk8s_solutions.errors import SolutionsError
from metalk8s_solutions.web import api, pages, solution_ui
from metalk8s_solutions.web.deps import (
    Principal,
    UiSettings,
    UiState,
    has_credentials,
    has_ui_credentials,
    optional_principal,
    refresh_oidc,
    state_of,
)
from metalk8s_solutions.web.errors import INTERNAL, ErrorInfo, WebError, classify
from metalk8s_solutions.web.sessions import COOKIE
from metalk8s_solutions.web.uploads import (
    BODY_LIMIT,
    SOLUTION_UI_BODY_LIMIT,
    BodyLimits,
    BodyPolicy,
)

log = logging.getLogger(__name__)
SOLUTION_UI_ROLE = "solution-ui"
STATIC = Path(__file__).parent / "static"
#: mutating requests taken without credentials: logging in (and out)
OPEN_PATHS = frozenset({"/api/session", "/login"})
#: the routes that stream an uploaded archive to disk themselves
UPLOAD_PATHS = frozenset({"/api/solutions/upload", "/solutions/upload"})
SOLUTION_UI_API = re.compile(r"^/env/[^/]+/[^/]+/[^/]+/api/kubernetes(/|$)")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _is_api(request: Request) -> bool:
    """API clients (and a Solution UI's calls to the Kubernetes API) get JSON errors."""
    path = request.url.path
    return path.startswith("/api/") or SOLUTION_UI_API.match(path) is not None


def _respond(request: Request, info: ErrorInfo, err: SolutionsError | None = None) -> Response:
    response = _answer(request, info)
    if isinstance(err, WebError) and err.retry_after is not None:
        response.headers["Retry-After"] = str(err.retry_after)
    return response


def _answer(request: Request, info: ErrorInfo) -> Response:
    metrics = state_of(request).metrics
    if info.status >= 500:
        metrics.error(info.kind)
    elif info.status != 401:  # not logged in yet is not a refusal
        metrics.refusal(info.kind, info.status)
    if _is_api(request):
        return JSONResponse(info.to_json(), status_code=info.status)
    if info.kind == "unauthenticated":
        if request.app.state.role != SOLUTION_UI_ROLE:
            return RedirectResponse("/login", status_code=303)
        product = state_of(request).main_url
        if product and request.url.path.startswith("/env/"):
            # The same path on the product's origin hands the session over (after a login).
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"{product}{request.url.path}{query}", status_code=303)
    # On a Solution UI's origin, the links lead back to the product's own origin.
    home = (state_of(request).main_url or "") if request.app.state.role == SOLUTION_UI_ROLE else ""
    return pages.render(
        request,
        "error.html",
        _who(request),
        status_code=info.status,
        info=info,
        page="error",
        home=home,
        **_back(request, home),
    )


def _back(request: Request, home: str) -> dict[str, str]:
    """The way back from an error page: the environment of a Solution UI, the environments
    list from the environment pages, else the Solutions page."""
    path = request.url.path
    if path.startswith("/env/"):
        env = quote(path.split("/")[2], safe="")
        return {"back": f"{home}/environments/{env}", "back_label": f"environment {env}"}
    if request.app.state.role == SOLUTION_UI_ROLE or path.startswith(("/environments", "/jobs")):
        return {"back": f"{home}/environments", "back_label": "the environments list"}
    return {"back": f"{home}/solutions", "back_label": "the solutions"}


def _who(request: Request) -> Principal | None:
    try:
        return optional_principal(request)
    except SolutionsError:
        return None


async def _refresh_oidc(request: Request) -> None:
    """Renew an OIDC session's ID token shortly before it expires; end the session if refused."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await refresh_oidc(request.app.state.ui, session_id)


def _install_common(app: FastAPI, bodies: BodyPolicy) -> None:
    """Error handlers, body limits and the headers middleware, the same on both origins."""

    @app.exception_handler(SolutionsError)
    async def on_error(request: Request, err: SolutionsError) -> Response:
        return _respond(request, classify(err), err)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, err: RequestValidationError) -> Response:
        problems = []
        for item in err.errors()[:5]:
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg"))
        info = ErrorInfo(422, "invalid-request", "; ".join(str(p) for p in problems), None)
        return _respond(request, info)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, err: StarletteHTTPException) -> Response:
        kinds = {404: "not-found", 405: "method-not-allowed"}
        info = ErrorInfo(err.status_code, kinds.get(err.status_code, "http"), str(err.detail), None)
        return _respond(request, info)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, err: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return _respond(request, INTERNAL)

    # Added first, so that the headers middleware (added next) wraps its answers too.
    app.add_middleware(BodyLimits, policy=bodies, respond=_respond)

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.monotonic()
        await _refresh_oidc(request)
        response = await call_next(request)
        route = request.scope.get("route")
        template = str(getattr(route, "path", "")) or "(unmatched)"
        app.state.ui.metrics.request(
            request.method, template, response.status_code, time.monotonic() - started
        )
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def create_app(settings: UiSettings, state: UiState | None = None) -> FastAPI:
    """The UI and API for ``settings`` (``state`` lets tests share sessions and jobs)."""
    app = FastAPI(
        title="MetalK8s Solutions",
        version=__version__,
        description=(api.__doc__ or "").strip(),
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ui = state or UiState.create(settings)
    app.state.role = "main"

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> PlainTextResponse:
        ui = state_of(request)
        sessions = len(ui.sessions) if isinstance(ui.sessions, Sized) else None
        return PlainTextResponse(
            ui.metrics.render(sessions), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(solution_ui.redirects)
    _install_common(
        app,
        BodyPolicy(
            limit=BODY_LIMIT,
            authenticated=has_credentials,
            open_paths=OPEN_PATHS,
            upload_paths=UPLOAD_PATHS,
            upload_limit=lambda request: state_of(request).settings.upload_limit,
        ),
    )
    return app


def create_solution_ui_app(state: UiState) -> FastAPI:
    """The other origin: Solutions' own UIs only (``web/solution_ui.py``), same sessions."""
    app = FastAPI(title="Solution UIs", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ui = state
    app.state.role = SOLUTION_UI_ROLE
    app.include_router(solution_ui.router)
    _install_common(app, BodyPolicy(limit=SOLUTION_UI_BODY_LIMIT, authenticated=has_ui_credentials))
    return app


class OriginDispatcher:
    """One ASGI application for the server's sockets: the Solution UI port gets ``ui``."""

    def __init__(self, main: FastAPI, ui: FastAPI) -> None:
        self.main = main
        self.ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: UiState = self.main.state.ui
        server = scope.get("server")
        if (
            scope["type"] in ("http", "websocket")
            and server is not None
            and state.solution_ui_port is not None
            and server[1] == state.solution_ui_port
        ):
            await self.ui(scope, receive, send)
        else:
            await self.main(scope, receive, send)


def create_server_app(settings: UiSettings, state: UiState | None = None) -> OriginDispatcher:
    """Both applications, sharing one state (sessions, jobs, metrics)."""
    main = create_app(settings, state)
    return OriginDispatcher(main, create_solution_ui_app(main.state.ui))
