"""The route to each Solution's own UI: ``/env/<env>/<namespace>/<solution>/...``, as the user.

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
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from metalk8s_solutions.cluster.apply import request as api_request
from metalk8s_solutions.cluster.kube import Forbidden, connect
from metalk8s_solutions.cluster.passthrough import forward
from metalk8s_solutions.cluster.state import ENV_LABEL
from metalk8s_solutions.engine.desired import check_dns_label
from metalk8s_solutions.engine.solution_ui import (
    CONFIG_FILE,
    PORT_NAME,
    base_path,
    is_allowed_api_path,
    ui_config_name,
    ui_name,
)
from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.web.deps import Principal, principal, state_of
from metalk8s_solutions.web.errors import WebError, forbidden, not_found

router = APIRouter(include_in_schema=False)
Caller = Annotated[Principal, Depends(principal)]
API_PREFIX = "api/kubernetes"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
CONFIG_TTL = 5.0
MAX_CACHED = 1024


@dataclass(frozen=True)
class UiConfig:
    api_paths: tuple[str, ...]
    read_at: float


_CONFIGS: dict[tuple[str, str, str, str], UiConfig] = {}


def _same_site(request: Request) -> bool:
    """True for requests a page of this site made (what browsers say in Fetch metadata)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


async def _config(request: Request, who: Principal, env: str, ns: str, sol: str) -> UiConfig:
    """The UI's runtime configuration, read as the user (cached a few seconds per user)."""
    key = (who.key, env, ns, sol)
    cached = _CONFIGS.get(key)
    if cached is not None and time.monotonic() - cached.read_at < CONFIG_TTL:
        return cached
    target = state_of(request).settings.target.as_user(who.token)
    name = ui_config_name(sol)
    async with connect(target) as kube:
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
    labels = ((found or {}).get("metadata") or {}).get("labels") or {}
    if (
        found is None
        or labels.get(ENV_LABEL) != env
        or labels.get("app.kubernetes.io/part-of") != sol
    ):
        raise not_found(f"{sol} has no UI in namespace {ns} of environment {env}")
    try:
        document: Any = json.loads(str((found.get("data") or {}).get(CONFIG_FILE, "")))
        paths = tuple(str(p) for p in document["api"]["paths"])
    except (ValueError, KeyError, TypeError) as err:
        raise WebError(
            502,
            "bad-ui-config",
            f"the UI configuration of {sol} in {env}/{ns} is not readable",
            hint=f"run 'solutions env converge {env}' to write it again",
        ) from err
    now = time.monotonic()
    if len(_CONFIGS) >= MAX_CACHED:  # forget what has expired, so the cache stays small
        for stale in [k for k, v in _CONFIGS.items() if now - v.read_at >= CONFIG_TTL]:
            del _CONFIGS[stale]
    config = UiConfig(paths, now)
    _CONFIGS[key] = config
    return config


def _check_names(env: str, ns: str, sol: str) -> None:
    try:
        for value, what in ((env, "environment"), (ns, "namespace"), (sol, "solution")):
            check_dns_label(value, what)
    except InvalidInput as err:
        raise not_found(err.message) from err


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
    if request.method not in ("GET", "HEAD") and not _same_site(request):
        raise forbidden(
            f"{request.method} to the UI of {sol} came from another site; it was refused"
        )
    config = await _config(request, who, env, ns, sol)
    target = state_of(request).settings.target.as_user(who.token)
    if rest == API_PREFIX or rest.startswith(API_PREFIX + "/"):
        path = "/" + rest[len(API_PREFIX) :].lstrip("/")
        if not is_allowed_api_path(path, config.api_paths):
            raise forbidden(
                f"the UI of {sol} may call only {', '.join(config.api_paths) or 'no API path'}; "
                f"not {path}"
            )
        action = f"{request.method} {path} for the UI of {sol}"
    else:
        service = f"{ui_name(sol)}:{PORT_NAME}"
        path = (
            f"/api/v1/namespaces/{quote(ns)}/services/{quote(service)}/proxy"
            f"{base_path(env, ns, sol)}{quote(rest)}"
        )
        action = f"reaching the UI of {sol} in {env}/{ns}"
    async with connect(target) as kube:
        answer = await forward(
            kube,
            request.method,
            path,
            query=request.url.query,
            body=await request.body(),
            headers=dict(request.headers),
            action=action,
        )
    if answer.status == 503 and not rest.startswith(API_PREFIX):
        raise WebError(
            503,
            "ui-unavailable",
            f"the UI of {sol} in {env}/{ns} is not running (no ready pod behind its Service)",
            hint=f"see 'solutions env show {env}'; it may still be starting",
        )
    if answer.status == 403 and not rest.startswith(API_PREFIX):
        raise forbidden(
            f"you may not reach the UI of {sol} in {env}/{ns}: it needs the right to get "
            f"services/proxy in namespace {ns}"
        )
    return Response(answer.content, status_code=answer.status, headers=dict(answer.headers))


__all__ = ["router"]
