"""The ASGI application: pages, the JSON API, static assets, errors and security headers.

Nothing is fetched from elsewhere at runtime (the cluster is air-gapped): the stylesheet and the
small script are files of this package, and FastAPI's CDN-hosted doc pages are turned off; the
OpenAPI document itself is served at ``/api/openapi.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from metalk8s_solutions import __version__
from metalk8s_solutions.errors import SolutionsError
from metalk8s_solutions.web import api, pages
from metalk8s_solutions.web.deps import Principal, UiSettings, UiState, optional_principal
from metalk8s_solutions.web.errors import INTERNAL, ErrorInfo, classify

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
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
    return request.url.path.startswith("/api/")


def _respond(request: Request, info: ErrorInfo, err: SolutionsError | None = None) -> Response:
    if _is_api(request):
        return JSONResponse(info.to_json(), status_code=info.status)
    if info.kind == "unauthenticated":
        return RedirectResponse("/login", status_code=303)
    return pages.render(
        request, "error.html", _who(request), status_code=info.status, info=info, page="error"
    )


def _who(request: Request) -> Principal | None:
    try:
        return optional_principal(request)
    except SolutionsError:
        return None


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

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
