"""The route to each Solution's own UI: ``/env/<env>/<namespace>/<solution>/...``, as the user.

It is served on the second origin of ``solutions ui`` (its Solution UI port): a Solution UI's
scripts run with the user's rights, and another origin keeps them away from the product's pages
and API.  On the product's origin, ``/env/...`` only redirects there.

A Solution UI (``engine/solution_ui.py``) is served under that same path by its Ingress, when the
cluster has one, and here otherwise, so that no user needs a NodePort, a port-forward or kubectl:

- ``<base>api/kubernetes/<path>`` is the UI's window on the Kubernetes API: the request goes to
  the API server with the logged-in user's token, only for the paths the UI's runtime
  configuration lists (its CRDs' collections in that namespace); RBAC decides the rest;
- anything else goes to the UI's Service through the API server's service proxy, again with the
  user's token (it needs ``get`` on ``services/proxy`` in the namespace), unchanged: the UI gets
  its full path, as behind the Ingress.

The runtime configuration is read, as the user, from ConfigMap ``<solution>-ui-config``; its
labels must say it belongs to that environment and solution, so a path cannot be pointed at
another namespace's objects.  Changes (POST, PUT, PATCH, DELETE) are taken only from pages of
this site (``Origin``/``Sec-Fetch-Site``), on top of the session cookie.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from metalk8s_solutions.cluster.apply import request as api_request
from metalk8s_solutions.cluster.kube import Forbidden, Kube, connect
from metalk8s_solutions.cluster.passthrough import Forwarded, forward
from metalk8s_solutions.engine.desired import check_dns_label
from metalk8s_solutions.engine.solution_ui import (
    API_PREFIX,
    PORT_NAME,
    base_path,
    configured_api_paths,
    is_allowed_api_path,
    ui_config_name,
    ui_name,
)
from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.web.deps import Principal, principal, solution_ui_origin, state_of
from metalk8s_solutions.web.errors import WebError, forbidden, not_found

router = APIRouter(include_in_schema=False)  # on the Solution UI origin
redirects = APIRouter(include_in_schema=False)  # on the product's origin
Caller = Annotated[Principal, Depends(principal)]
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


async def _api_paths(kube: Kube, env: str, ns: str, sol: str) -> tuple[str, ...]:
    """The API paths of the UI's runtime configuration, read as the user."""
    name = ui_config_name(sol)
    try:
        found = await api_request(
            kube,
            "GET",
            f"/api/v1/namespaces/{quote(ns)}/configmaps/{quote(name)}",
            action=f"reading ConfigMap {ns}/{name}",
            missing_ok=True,
        )
    except Forbidden as err:
        raise forbidden(
            f"you may not open the UI of {sol} in {env}/{ns}: reading its configuration "
            f"(ConfigMap {ns}/{name}) was refused"
        ) from err
    try:
        paths = configured_api_paths(found, env, ns, sol)
    except ValueError as err:
        raise WebError(
            502,
            "bad-ui-config",
            f"the UI configuration of {sol} in {env}/{ns} is not readable",
            hint=f"run 'solutions env converge {env}' to write it again",
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
        for value, what in ((env, "environment"), (ns, "namespace"), (sol, "solution")):
            check_dns_label(value, what)
    except InvalidInput as err:
        raise not_found(err.message) from err


@redirects.get("/env/{rest:path}")
async def to_solution_ui_origin(rest: str, request: Request) -> RedirectResponse:
    """Links of the product's pages lead here: the UI itself is on the other origin."""
    origin = solution_ui_origin(request)
    if origin is None:
        raise WebError(
            503,
            "no-solution-ui-origin",
            "this server does not serve Solutions' own UIs",
            hint="start 'solutions ui' with --solution-ui-listen HOST:PORT",
        )
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"{origin}/env/{quote(rest)}{query}", status_code=307)


@router.get("/env/{env}/{ns}/{sol}")
async def ui_root(env: str, ns: str, sol: str) -> RedirectResponse:
    """The UI's base path always ends with '/', so that its relative links resolve."""
    _check_names(env, ns, sol)
    return RedirectResponse(base_path(env, ns, sol), status_code=307)


@router.api_route("/env/{env}/{ns}/{sol}/{rest:path}", methods=METHODS)
async def ui_proxy(
    env: str, ns: str, sol: str, rest: str, request: Request, who: Caller
) -> Response:
    """Serve the Solution UI (or its Kubernetes API calls) with the logged-in user's rights."""
    _check_names(env, ns, sol)
    _check_rest(rest)
    if request.method not in ("GET", "HEAD") and not _same_site(request):
        raise forbidden(
            f"{request.method} to the UI of {sol} came from another site; it was refused"
        )
    target = state_of(request).settings.target.as_user(who.token)
    async with connect(target) as kube:  # one connection, as the user, for both requests
        allowed = await _api_paths(kube, env, ns, sol)
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
    if answer.status == 503:
        raise WebError(
            503,
            "ui-unavailable",
            f"the UI of {sol} in {env}/{ns} is not running (no ready pod behind its Service)",
            hint=f"see 'solutions env show {env}'; it may still be starting",
        )
    if answer.status == 403:
        verb = "get" if method in ("GET", "HEAD") else VERBS.get(method, method.lower())
        raise forbidden(
            f"you may not reach the UI of {sol} in {env}/{ns}: it needs the right to {verb} "
            f"services/proxy in namespace {ns}"
        )


def _status_of(answer: Forwarded) -> dict[str, Any] | None:
    """The API server's Status object in ``answer``, if that is what it is."""
    if answer.status not in (403, 503) or "json" not in answer.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(answer.content)
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1":
        return body
    return None


__all__ = ["redirects", "router"]
