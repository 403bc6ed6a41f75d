"""The route to each Solution's own UI: ``/env/<env>/<namespace>/<solution>/...``, as the user.

Each Solution UI has its own origin: it is served on the Solution UI socket of ``solutions ui``
under its own host name (``web/ui_origins.py``), so that its scripts, which run with the user's
rights, can reach neither another Solution's UI nor the product's pages and API.  On the
product's origin, ``/env/...`` hands the logged-in session over to the UI's origin with a
one-time ticket bound to that UI; the UI's origin takes its own host-only cookie, valid for that
UI only, or a bearer token.  A request for UI X is served only on X's host name and only with a
credential issued for X.

A Solution UI (``engine/solution_ui.py``) is served under that same path by its Ingress, when the
cluster has one, and here otherwise, so that no user needs a NodePort, a port-forward or kubectl:

- ``<base>api/kubernetes/<path>`` is the UI's window on the Kubernetes API: the request goes to
  the API server with the logged-in user's token, only for the paths of the version's CRDs in that
  namespace, as its verified archive declares them (``engine/solution_ui_access.py``; the UI's
  ConfigMap is not consulted); RBAC decides the rest;
- anything else goes to the UI's Service through the API server's service proxy, again with the
  user's token (it needs ``get`` on ``services/proxy`` in the namespace), unchanged: the UI gets
  its full path, as behind the Ingress.

Changes (POST, PUT, PATCH, DELETE) are taken only from pages of the UI's own origin
(``Origin``/``Sec-Fetch-Site``), on top of its credential.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import URL

from metalk8s_solutions.cluster.kube import Forbidden, Kube, connect
from metalk8s_solutions.cluster.passthrough import Forwarded, forward
from metalk8s_solutions.engine.desired import check_dns_label, check_env_name
from metalk8s_solutions.engine.solution_ui import (
    API_PREFIX,
    PORT_NAME,
    base_path,
    is_allowed_api_path,
    ui_name,
)
from metalk8s_solutions.engine.solution_ui_access import ui_api_paths
from metalk8s_solutions.errors import InvalidInput, command
from metalk8s_solutions.web.deps import (
    Principal,
    context,
    optional_principal,
    principal,
    refresh_oidc,
    set_cookie,
    solution_ui_base,
    state_of,
)
from metalk8s_solutions.web.errors import WebError, forbidden, not_found, unauthenticated
from metalk8s_solutions.web.ui_origins import (
    HANDOFF_PATH,
    UiBase,
    UiKey,
    cookie_name,
    cookie_values,
)

router = APIRouter(include_in_schema=False)  # on the Solution UI origin
redirects = APIRouter(include_in_schema=False)  # on the product's origin
TICKET_REFUSED = (
    "this link to a Solution UI has expired, was already used or is for another UI; "
    "open it again from the environment page"
)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _same_site(request: Request) -> bool:
    """True for requests a page of this site made (what browsers say in Fetch metadata)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


async def _api_paths(request: Request, who: Principal, kube: Kube, key: UiKey) -> tuple[str, ...]:
    """The API paths of the UI, from its verified archive; read as the user."""
    env, ns, sol = key
    try:
        paths = await ui_api_paths(context(request, who), kube, env, ns, sol)
    except Forbidden as err:
        raise forbidden(
            f"you may not open the UI of {sol} in {env}/{ns}: reading the environment's record "
            f"(ConfigMap {ns}/metalk8s-environment) was refused"
        ) from err
    if paths is None:
        raise not_found(f"{sol} has no UI in namespace {ns} of environment {env}")
    return paths


def _check_rest(rest: str) -> None:
    """Refuse a path that could climb out of the UI's base path once it is sent on.

    Starlette hands ``rest`` over decoded: ``..%2f`` is ``../`` here, and ``%23``/``%3f`` are
    ``#``/``?``; dot segments would be collapsed by the HTTP client, and ``#``/``?`` would end
    the path early.
    """
    segments = rest.split("/")
    if any(s in (".", "..") for s in segments) or any(c in rest for c in "#?\\\x00"):
        raise not_found("no such page of the Solution UI (the path has '.', '..' or '#')")


def _check_names(env: str, ns: str, sol: str) -> None:
    try:
        check_env_name(env)
        for value, what in ((ns, "namespace"), (sol, "solution")):
            check_dns_label(value, what)
    except InvalidInput as err:
        raise not_found(err.message) from err


def _base(request: Request) -> UiBase:
    found = solution_ui_base(request)
    if found is None:
        raise WebError(
            503,
            "no-solution-ui-origin",
            "this server does not serve Solutions' own UIs on this address",
            hint=f"start '{command('ui', '--solution-ui-url', 'https://<domain>')}' (a wildcard "
            "DNS record *.<domain> pointing to the --solution-ui-listen socket), or open the UI "
            "from a browser on this host through 127.0.0.1",
        )
    return found


@redirects.get("/env/{env}/{ns}/{sol}")
@redirects.get("/env/{env}/{ns}/{sol}/{rest:path}")
async def to_solution_ui_origin(
    env: str, ns: str, sol: str, request: Request, rest: str = ""
) -> RedirectResponse:
    """Links of the product's pages lead here: the UI itself is on its own origin.

    A browser session is handed over with a one-time ticket for this UI only; an API client
    (bearer token) is sent straight there, where its token is taken as it is.
    """
    _check_names(env, ns, sol)
    _check_rest(rest)
    key = (env, ns, sol)
    origin = _base(request).origin(key)
    query = f"?{request.url.query}" if request.url.query else ""
    target = base_path(env, ns, sol) + quote(rest) + query
    who = principal(request)  # not logged in: the login page
    if who.csrf is None:  # a bearer token, not a session: nothing to hand over
        return RedirectResponse(origin + target, status_code=307)
    ticket = state_of(request).ui_sessions.issue(who.key, key)
    handoff = URL(HANDOFF_PATH).include_query_params(ticket=ticket, next=target)
    return RedirectResponse(f"{origin}{handoff}", status_code=303)


@router.get(HANDOFF_PATH)
async def handoff(
    request: Request, ticket: str = "", target: Annotated[str, Query(alias="next")] = ""
) -> Response:
    """Redeem a ticket from the product's origin: this UI's own session cookie, then the UI."""
    parts = target.split("/")
    if len(parts) < 6 or parts[:2] != ["", "env"] or "\\" in target or "//" in target:
        raise not_found("no such Solution UI")
    key = (parts[2], parts[3], parts[4])
    _check_names(*key)
    _check_host(request, key)
    state = state_of(request)
    session = state.ui_sessions.redeem(ticket, key)
    if session is None:
        raise WebError(403, "ticket", TICKET_REFUSED)
    response = RedirectResponse(target, status_code=303)
    set_cookie(
        response,
        state.settings,
        cookie_name(state.settings.secure_cookies),
        session.id,
        path="/",
        samesite="lax",  # the first page is reached from the product: a cross-site navigation
    )
    return response


def _check_host(request: Request, key: UiKey) -> None:
    """Serve UI ``key`` on its own host name only: another UI's origin gets nothing of it."""
    base = _base(request)
    if not base.serves(request.headers.get("host", ""), key):
        env, ns, sol = key
        raise not_found(
            f"the UI of {sol} in {env}/{ns} is served on its own origin, {base.origin(key)}, "
            "not here; open it from the environment page"
        )


async def _ui_caller(request: Request, key: UiKey) -> Principal:
    """The caller of UI ``key``: a bearer token, or a session handed over for ``key`` only."""
    if request.headers.get("authorization", "")[:7].lower() == "bearer ":
        found = optional_principal(request)
        if found is not None:
            return found
    state = state_of(request)
    name = cookie_name(state.settings.secure_cookies)
    for value in cookie_values(request.headers.get("cookie", ""), name):
        parent = state.ui_sessions.parent_of(value, key)
        if parent:
            await refresh_oidc(state, parent)
        session = state.sessions.get(parent) if parent else None
        if session is not None:
            return Principal(key=session.id, user=session.user, token=session.token)
    raise unauthenticated(f"not logged in on the UI of {key[2]} in {key[0]}/{key[1]}")


@router.get("/env/{env}/{ns}/{sol}")
async def ui_root(env: str, ns: str, sol: str, request: Request) -> RedirectResponse:
    """The UI's base path always ends with '/', so that its relative links resolve."""
    _check_names(env, ns, sol)
    _check_host(request, (env, ns, sol))
    return RedirectResponse(base_path(env, ns, sol), status_code=307)


@router.api_route("/env/{env}/{ns}/{sol}/{rest:path}", methods=METHODS)
async def ui_proxy(env: str, ns: str, sol: str, rest: str, request: Request) -> Response:
    """Serve the Solution UI (or its Kubernetes API calls) with the logged-in user's rights."""
    _check_names(env, ns, sol)
    _check_rest(rest)
    key = (env, ns, sol)
    _check_host(request, key)
    who = await _ui_caller(request, key)
    if request.method not in ("GET", "HEAD") and not _same_site(request):
        raise forbidden(
            f"{request.method} to the UI of {sol} came from another site; it was refused"
        )
    is_api = rest == API_PREFIX or rest.startswith(API_PREFIX + "/")
    if is_api and request.headers.get("sec-fetch-site") in ("same-site", "cross-site"):
        raise forbidden(
            f"the Kubernetes API paths of the UI of {sol} answer its own pages only; "
            "this request came from another origin"
        )
    target = state_of(request).settings.target.as_user(who.token)
    async with connect(target) as kube:  # one connection, as the user, for both requests
        allowed = await _api_paths(request, who, kube, key)
        path, action = _target(env, ns, sol, rest, request.method, allowed)
        answer = await forward(
            kube,
            request.method,
            path,
            query=request.url.query,
            body=await request.body(),
            headers=dict(request.headers),
            action=action,
        )
    if not rest.startswith(API_PREFIX):
        _explain_proxy_refusal(answer, env, ns, sol, request.method)
    headers = dict(answer.headers)
    if "location" in headers and not local_location(headers["location"]):
        del headers["location"]  # no redirect of the UI leads off this site
    return Response(answer.content, status_code=answer.status, headers=headers)


def local_location(location: str) -> bool:
    """Whether a ``Location`` a Solution UI sent is a path of this site.

    Only ``/path`` is: not ``//host``, and no backslash, control character or whitespace
    anywhere, since browsers read ``\\`` as ``/`` and drop tabs and newlines, which makes
    ``/\\evil.example`` or ``/<TAB>/evil.example`` another site.
    """
    if not location.startswith("/") or location.startswith("//"):
        return False
    return not any(c == "\\" or c.isspace() or not c.isprintable() for c in location)


def _target(
    env: str, ns: str, sol: str, rest: str, method: str, allowed: tuple[str, ...]
) -> tuple[str, str]:
    """The API server path the request goes to, and what it is (for error messages)."""
    if rest == API_PREFIX or rest.startswith(API_PREFIX + "/"):
        path = "/" + rest[len(API_PREFIX) :].lstrip("/")
        if not is_allowed_api_path(path, allowed):
            raise forbidden(
                f"the UI of {sol} may call only {', '.join(allowed) or 'no API path'}; not {path}"
            )
        return quote(path), f"{method} {path} for the UI of {sol}"
    service = f"{ui_name(sol)}:{PORT_NAME}"
    path = (
        f"/api/v1/namespaces/{quote(ns)}/services/{quote(service)}/proxy"
        f"{base_path(env, ns, sol)}{quote(rest)}"
    )
    return path, f"reaching the UI of {sol} in {env}/{ns}"


def _explain_proxy_refusal(answer: Forwarded, env: str, ns: str, sol: str, method: str) -> None:
    """The API server's own refusals (not the UI's answers) as one clear message."""
    status = _status_of(answer)
    if status is None:
        return  # the UI answered: pass it on as it is
    if answer.status == 404:
        raise WebError(
            404,
            "ui-not-found",
            f"the UI of {sol} in {env}/{ns} was not found: its Service {ui_name(sol)} does not "
            "exist",
            hint=f"the version of {sol} deployed there may have no UI, or it is being changed; "
            "its environment page says which UI it has",
        )
    if answer.status == 503:
        raise WebError(
            503,
            "ui-unavailable",
            f"the UI of {sol} in {env}/{ns} is not running (no ready pod behind its Service)",
            hint="it may still be starting: its environment page shows its state",
        )
    if answer.status in (500, 502, 504):
        why = str(status.get("message") or "no answer")
        raise WebError(
            502,
            "ui-unavailable",
            f"the UI of {sol} in {env}/{ns} did not answer: {why}",
            hint="it may not be running: its environment page shows its state",
        )
    if answer.status == 403:
        verb = "get" if method in ("GET", "HEAD") else VERBS.get(method, method.lower())
        raise forbidden(
            f"you may not reach the UI of {sol} in {env}/{ns}: it needs the right to {verb} "
            f"services/proxy in namespace {ns}"
        )


def _status_of(answer: Forwarded) -> dict[str, Any] | None:
    """The API server's Status object in ``answer``, if that is what it is."""
    if answer.status not in (403, 404, 500, 502, 503, 504) or "json" not in answer.headers.get(
        "content-type", ""
    ):
        return None
    try:
        body = json.loads(answer.content)
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1":
        return body
    return None


__all__ = ["redirects", "router"]
