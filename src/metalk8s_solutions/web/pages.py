"""The HTML pages: server-rendered, usable without JavaScript, enhanced by ``static/app.js``.

Each mutating form goes through a plan first (the engine's dry run, rendered with its steps,
diffs and warnings) and a confirmation that starts a job; the job page streams the engine's
progress.  Every handler is a thin call of :mod:`.service` (the operations) or of the engine's
views (:mod:`engine.views`, :mod:`engine.instances`), whose dicts the JSON API answers as they are.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from metalk8s_solutions.api.versions import sort_versions
from metalk8s_solutions.engine import instances as inst
from metalk8s_solutions.engine import views
from metalk8s_solutions.engine.instances import pick_sample
from metalk8s_solutions.errors import InvalidInput, SolutionsError, command
from metalk8s_solutions.web import service
from metalk8s_solutions.web.api import (
    SSE_HEADERS,
    follow_job,
    job_of,
    receive_upload,
    run_operation,
    sse,
)
from metalk8s_solutions.web.auth import (
    CRD_CREATE,
    NAMESPACE_CREATE,
    NAMESPACE_DELETE,
    RECORD_UPDATE,
    Check,
    env_change,
    whoami,
)
from metalk8s_solutions.web.deps import (
    INSTANCE_PATH,
    LOGIN_CSRF_COOKIE,
    InstanceAt,
    Principal,
    can,
    check_login_form,
    context,
    limit_logins,
    principal,
    set_cookie,
    set_session_cookie,
    state_of,
    user,
)
from metalk8s_solutions.web.errors import classify, not_found, unauthenticated, without_cli
from metalk8s_solutions.web.forms import (
    form_values,
    parse_form,
    parse_yaml_object,
    spec_form,
    to_yaml,
)
from metalk8s_solutions.web.jobs import Job
from metalk8s_solutions.web.oidc import PENDING_TTL, STATE_COOKIE
from metalk8s_solutions.web.sessions import COOKIE

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
Caller = Annotated[Principal, Depends(user)]
LIVE_INTERVAL = 3.0
LOGIN_CSRF_TTL = 3600
LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def when(value: Any) -> str:
    """``2024-05-01 10:00 UTC (5 min ago)``: absolute and relative."""
    if value in (None, ""):
        return "—"
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    if seconds < 60:
        ago = "just now" if seconds < 10 else f"{seconds} s ago"
    elif seconds < 3600:
        ago = f"{seconds // 60} min ago"
    elif seconds < 86400:
        ago = f"{seconds // 3600} h ago"
    else:
        ago = f"{seconds // 86400} days ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({ago})"


def iso(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return str(value or "")


def size(value: Any) -> str:
    number = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} GiB"


def version_ranks(env: Any) -> dict[str, int]:
    """Each version deployed in ``env`` -> its rank in the one order (to sort a table by)."""
    found = {
        str(info["version"])
        for entry in ((env or {}).get("namespaces") or {}).values()
        for info in ((entry or {}).get("solutions") or {}).values()
        if isinstance(info, dict) and info.get("version")
    }
    return {version: rank for rank, version in enumerate(sort_versions(found))}


templates.env.filters["when"] = when
templates.env.filters["iso"] = iso
templates.env.filters["size"] = size
templates.env.filters["version_ranks"] = version_ranks
templates.env.filters["nocli"] = without_cli
templates.env.filters["urlq"] = lambda v: quote(str(v), safe="")


def render(
    request: Request,
    template: str,
    who: Principal | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    values.setdefault("error", None)
    return templates.TemplateResponse(
        request,
        template,
        {"user": who.user if who else None, "csrf": who.csrf if who else None, **values},
        status_code=status_code,
    )


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}


# -- login ---------------------------------------------------------------------------------


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/solutions", status_code=303)


def _login_page(request: Request, status_code: int = 200, error: Any = None) -> HTMLResponse:
    """The login form, with its CSRF token in a hidden field and in a cookie (double submit):
    another site can post a form here, but can neither read nor set that cookie."""
    ui = state_of(request)
    issuer = ui.oidc.settings.issuer if ui.oidc else None
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not LOGIN_TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        page="login",
        error=error,
        oidc=issuer,
        login_csrf=token,
    )
    set_cookie(
        response, ui.settings, LOGIN_CSRF_COOKIE, token, path="/login", max_age=LOGIN_CSRF_TTL
    )
    return response


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.get("/oidc/login")
async def oidc_login(request: Request) -> Response:
    """Start the OpenID Connect login: off to the identity provider (Dex)."""
    oidc = state_of(request).oidc
    if oidc is None:
        raise not_found(
            "OpenID Connect login is not configured "
            f"({command('ui', '--oidc-issuer', '<url>', '--oidc-client-id', '<id>')})"
        )
    limit_logins(request)  # each call keeps a pending login for a while
    url, state = await oidc.begin()
    response = RedirectResponse(url, status_code=303)
    set_cookie(
        response,
        state_of(request).settings,
        STATE_COOKIE,
        state,
        path="/oidc/",
        max_age=PENDING_TTL,
        samesite="lax",  # the provider's redirect back is a cross-site top-level navigation
    )
    return response


@router.get("/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    """The provider's redirect: exchange the code, ask the API server who this is, log in."""
    ui = state_of(request)
    if ui.oidc is None:
        raise not_found("OpenID Connect login is not configured")
    params = request.query_params
    try:
        if params.get("error"):
            why = params.get("error_description") or params["error"]
            raise unauthenticated(f"the identity provider refused: {why}")
        tokens = await ui.oidc.finish(
            params.get("state", ""), request.cookies.get(STATE_COOKIE), params.get("code", "")
        )
        identity = await whoami(ui.settings.target.as_user(tokens.id_token))
    except SolutionsError as err:
        ui.metrics.login("oidc", "refused")
        return _login_page(request, classify(err).status, classify(err))
    ui.metrics.login("oidc", "ok")
    session = ui.sessions.create(identity.user, identity.groups, tokens.id_token)
    ui.oidc.remember(session.id, tokens)
    response = RedirectResponse("/solutions", status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/oidc/")
    set_session_cookie(response, session.id, ui)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    limit_logins(request)
    form = await request.form()
    token = form.get("token")
    ui = state_of(request)
    try:
        check_login_form(request, form.get("csrf"))
        identity, secret = await ui.authenticator.authenticate(
            token if isinstance(token, str) else ""
        )
    except SolutionsError as err:
        ui.metrics.login("token", "refused")
        info = classify(err)
        return _login_page(request, info.status, info)
    ui.metrics.login("token", "ok")
    session = ui.sessions.create(identity.user, identity.groups, secret)
    response = RedirectResponse("/solutions", status_code=303)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    set_session_cookie(response, session.id, ui)
    return response


@router.post("/logout")
async def logout(request: Request, who: Caller) -> Response:
    ui = state_of(request)
    ui.sessions.delete(who.key)
    ui.ui_sessions.end(who.key)
    ui.perms.forget(who.key)
    if ui.oidc is not None:
        ui.oidc.forget(who.key)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- solutions -----------------------------------------------------------------------------


@router.get("/solutions")
async def solutions_page(request: Request, who: Caller) -> HTMLResponse:
    ctx = context(request, who)
    data, allowed = await asyncio.gather(
        views.solutions_view(ctx), can(request, who, [RECORD_UPDATE, CRD_CREATE])
    )
    rights = {
        "import": allowed[RECORD_UPDATE],
        "activate": allowed[RECORD_UPDATE] and allowed[CRD_CREATE],
    }
    return render(request, "solutions.html", who, page="solutions", data=data, can=rights)


@router.post("/solutions/upload")
async def upload(request: Request, who: Annotated[Principal, Depends(principal)]) -> HTMLResponse:
    # Not ``Caller``: its CSRF check would read the whole form; the upload checks it first.
    received = await receive_upload(request, who)
    return await _plan(request, who, "import", {"archives": str(received.path)})


# -- plan, run, jobs -----------------------------------------------------------------------


async def _plan(request: Request, who: Principal, key: str, params: dict[str, str]) -> HTMLResponse:
    op = service.OPERATIONS[key]
    values: dict[str, Any] = {
        "page": "plan",
        "op": op,
        "params": params,
        "title": op.title(params),
    }
    try:
        result = await run_operation(request, who, key, params, dry_run=True)
    except SolutionsError as err:
        info = classify(err)
        return render(
            request, "plan.html", who, status_code=info.status, error=info, plan=None, **values
        )
    return render(request, "plan.html", who, plan=result, **values)


@router.post("/ops/{key}/plan")
async def plan(key: str, request: Request, who: Caller) -> HTMLResponse:
    if key not in service.OPERATIONS:
        raise not_found(f"no operation {key}")
    return await _plan(request, who, key, await _form(request))


@router.post("/ops/{key}/run")
async def run(key: str, request: Request, who: Caller) -> Response:
    if key not in service.OPERATIONS:
        raise not_found(f"no operation {key}")
    params = await _form(request)
    result = await run_operation(request, who, key, params, dry_run=False, wait=False)
    assert isinstance(result, Job)  # noqa: S101 - wait=False starts a job
    return RedirectResponse(f"/jobs/{result.id}", status_code=303)


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request, who: Caller) -> HTMLResponse:
    job = job_of(request, who, job_id)
    return render(request, "job.html", who, page="job", job=job)


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, who: Caller) -> StreamingResponse:
    return follow_job(request, job_of(request, who, job_id))


# -- environments --------------------------------------------------------------------------


@router.get("/environments")
async def environments_page(request: Request, who: Caller) -> HTMLResponse:
    ctx = context(request, who)
    envs, allowed = await asyncio.gather(
        views.environments_view(ctx), can(request, who, [NAMESPACE_CREATE])
    )
    rights = {"create": allowed[NAMESPACE_CREATE]}
    return render(request, "environments.html", who, page="environments", envs=envs, can=rights)


async def _env_model(request: Request, who: Principal, env: str) -> dict[str, Any]:
    ctx = context(request, who)
    shown = await views.environment_view(ctx, env)
    first = next(iter(sorted(shown["namespaces"])), env)
    checks = [env_change(first), NAMESPACE_DELETE]
    allowed = await can(request, who, checks)
    return {
        "env": shown,
        "choices": await views.version_menu(ctx, shown),
        "can": {"change": allowed[checks[0]], "delete": allowed[NAMESPACE_DELETE]},
    }


@router.get("/environments/{env}")
async def environment_page(env: str, request: Request, who: Caller) -> HTMLResponse:
    model = await _env_model(request, who, env)
    return render(request, "environment.html", who, page="environments", **model)


async def _live(request: Request, template: str, load: Any) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        last = ""
        while not await request.is_disconnected():
            try:
                values = await load()
                html = templates.get_template(template).render(**values)
            except SolutionsError as err:
                # the fragment goes into the page's innerHTML: escape it like the templates do
                info = classify(err)
                text = "; ".join(t for t in (info.message, without_cli(info.hint)) if t)
                html = f'<p class="error" role="alert">{escape(text)}</p>'
            if html != last:
                last = html
                yield sse("message", html)
            else:
                yield ": ping\n\n"
            await asyncio.sleep(LIVE_INTERVAL)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/environments/{env}/live")
async def environment_live(env: str, request: Request, who: Caller) -> StreamingResponse:
    async def load() -> Mapping[str, Any]:
        return {"env": await views.environment_view(context(request, who), env)}

    return await _live(request, "_env_status.html", load)


# -- application instances -----------------------------------------------------------------


_ref = inst.InstanceRef


def _instances_url(env: str, solution: str) -> str:
    return f"/environments/{quote(env)}/solutions/{quote(solution)}/instances"


async def _instance_rights(
    request: Request, who: Principal, data: Mapping[str, Any], kinds: list[inst.CustomKind]
) -> dict[str, bool]:
    ns = (data.get("namespaces") or [""])[0]
    checks = {
        f"{verb}:{k.kind}": Check(verb, k.plural, k.group, ns)
        for k in kinds
        for verb in ("create", "update", "delete")
    }
    answers = await can(request, who, checks.values())
    return {key: answers[check] for key, check in checks.items()}


@router.get("/environments/{env}/solutions/{solution}/instances")
async def instances_page(
    env: str,
    solution: str,
    request: Request,
    who: Caller,
    done: str | None = None,
    instance: str | None = None,
) -> HTMLResponse:
    ctx = context(request, who)
    data = await inst.instances_view(ctx, env, solution)
    _, kinds = await _kinds(request, who, env, solution)
    rights = await _instance_rights(request, who, data, kinds)
    return render(
        request,
        "instances.html",
        who,
        page="environments",
        data=data,
        can=rights,
        base=_instances_url(env, solution),
        flash=_flash(done, instance),
    )


#: The success message after a create, an edit or a delete (``?done=…&instance=…``).
DONE = {"created": "Created", "updated": "Saved", "deleted": "Deleted"}


def _flash(done: str | None, instance: str | None) -> str:
    if done not in DONE or not instance:
        return ""
    what = {"created": "its operator now deploys it", "updated": "its operator applies the change"}
    tail = f"; {what[done]}" if done in what else ""
    return f"{DONE[done]} {instance[:200]}{tail}."


def _done_url(env: str, solution: str, done: str, kind: str, name: str) -> str:
    return f"{_instances_url(env, solution)}?done={done}&instance={quote(f'{kind} {name}')}"


async def _kinds(
    request: Request, who: Principal, env: str, solution: str
) -> tuple[inst.Scope, list[inst.CustomKind]]:
    where = await inst.solution_scope(context(request, who), env, solution)
    return where, list(where.kinds)


@router.get("/environments/{env}/solutions/{solution}/instances-live")
async def instances_live(
    env: str, solution: str, request: Request, who: Caller
) -> StreamingResponse:
    async def load() -> Mapping[str, Any]:
        data = await inst.instances_view(context(request, who), env, solution)
        return {"data": data, "base": _instances_url(env, solution), "when": when}

    return await _live(request, "_instances_rows.html", load)


def _form_page(
    request: Request,
    who: Principal,
    *,
    where: inst.Scope,
    info: inst.CustomKind,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    namespace: str,
    name: str,
    yaml_text: str,
    create: bool,
    error: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "instance_form.html",
        who,
        status_code=status_code,
        page="environments",
        where=where,
        info=info,
        form=spec_form(info.schema),
        values=values,
        errors=errors,
        namespace=namespace,
        name=name,
        yaml_text=yaml_text,
        create=create,
        error=error,
        base=_instances_url(where.env, where.solution),
    )


def _skeleton(info: inst.CustomKind, namespace: str, name: str, spec: Mapping[str, Any]) -> str:
    return to_yaml(inst.new_document(info, namespace, name or "my-instance", spec))


@router.get("/environments/{env}/solutions/{solution}/new/{kind}")
async def new_instance(
    env: str,
    solution: str,
    kind: str,
    request: Request,
    who: Caller,
    sample: str | None = None,
) -> HTMLResponse:
    """The form of a new instance: empty, or prefilled from a sample of the archive."""
    where, info = await inst.kind_info(context(request, who), env, solution, kind)
    form = spec_form(info.schema)
    name = ""
    if sample is None:
        values = form_values(form, None)
        spec, _ = parse_form(form, values)
    else:
        found = pick_sample(
            await inst.scope_samples(where, info.kind), sample, where.solution, where.version
        )
        spec = dict(found.document.get("spec") or {})
        values = form_values(form, spec)
        name = found.name
    return _form_page(
        request,
        who,
        where=where,
        info=info,
        values=values,
        errors={},
        namespace=where.namespaces[0],
        name=name,
        yaml_text=_skeleton(info, where.namespaces[0], name, spec),
        create=True,
    )


@router.post("/environments/{env}/solutions/{solution}/new/{kind}")
async def create_instance(
    env: str, solution: str, kind: str, request: Request, who: Caller
) -> Response:
    return await _save(request, who, env, solution, kind, None, None)


@router.get(INSTANCE_PATH)
async def edit_instance(ref: InstanceAt, request: Request, who: Caller) -> HTMLResponse:
    ctx = context(request, who)
    where, info = await inst.kind_info(ctx, ref.env, ref.solution, ref.kind)
    _, obj = await inst.get_instance(ctx, ref)
    shown = inst.editable(obj)
    return _form_page(
        request,
        who,
        where=where,
        info=info,
        values=form_values(spec_form(info.schema), obj.get("spec") or {}),
        errors={},
        namespace=ref.namespace,
        name=ref.name,
        yaml_text=to_yaml(shown),
        create=False,
    )


@router.post(INSTANCE_PATH)
async def update_instance(ref: InstanceAt, request: Request, who: Caller) -> Response:
    return await _save(request, who, ref.env, ref.solution, ref.kind, ref.namespace, ref.name)


async def _save(
    request: Request,
    who: Principal,
    env: str,
    solution: str,
    kind: str,
    namespace: str | None,
    name: str | None,
) -> Response:
    ctx = context(request, who)
    where, info = await inst.kind_info(ctx, env, solution, kind)
    posted = await _form(request)
    create = name is None
    ns = namespace or posted.get("namespace", "")
    called = name or posted.get("name", "").strip()
    form = spec_form(info.schema)

    def again(
        status_code: int,
        values: Mapping[str, str],
        yaml_text: str,
        errors: Mapping[str, str] | None = None,
        error: Any = None,
    ) -> HTMLResponse:
        """The form again, with what the user posted and what is wrong with it."""
        return _form_page(
            request,
            who,
            where=where,
            info=info,
            values=values,
            errors=errors or {},
            namespace=ns,
            name=called,
            yaml_text=yaml_text,
            create=create,
            error=error,
            status_code=status_code,
        )

    errors: dict[str, str] = {}
    current: dict[str, Any] = {}
    if not create:
        _, current = await inst.get_instance(ctx, _ref(env, solution, kind, ns, called))
    if posted.get("mode") == "yaml":
        try:
            body = parse_yaml_object(posted.get("yaml", ""))
        except SolutionsError as err:
            return again(400, posted, posted.get("yaml", ""), error=classify(err))
        meta = body.get("metadata") or {}
        if create:
            called = str(meta.get("name") or called)
            ns = str(meta.get("namespace") or ns)
        spec = body.get("spec") or {}
        errors = (
            {}
            if not isinstance(spec, dict)
            else dict(parse_form(form, form_values(form, spec), spec)[1])
        )
        obj = inst.merge_posted(current, body)
    else:
        spec, errors = parse_form(form, posted, current.get("spec") if current else None)
        obj = inst.merge_posted(current, {"spec": spec})
    if create and not called:
        errors["name"] = "Name is required"
    spec = obj.get("spec") or {}
    if errors:
        values = posted if posted.get("mode") != "yaml" else form_values(form, spec)
        return again(
            422, values, posted.get("yaml") or _skeleton(info, ns, called, spec), errors=errors
        )
    try:
        await inst.save_instance(ctx, _ref(env, solution, kind, ns, called), obj, create=create)
    except SolutionsError as err:
        problem = classify(err)
        return again(
            problem.status,
            form_values(form, spec),
            _skeleton(info, ns, called, spec),
            error=problem,
        )
    done = "created" if create else "updated"
    return RedirectResponse(_done_url(env, solution, done, info.kind, called), status_code=303)


@router.get(INSTANCE_PATH + "/details")
async def instance_details_page(ref: InstanceAt, request: Request, who: Caller) -> HTMLResponse:
    """One instance for its administrator: ready or why not, pods, events, operator log."""
    details = await inst.instance_details(context(request, who), ref)
    return render(
        request,
        "instance.html",
        who,
        page="environments",
        d=details,
        base=_instances_url(ref.env, ref.solution),
    )


@router.get(INSTANCE_PATH + "/delete")
async def confirm_delete_instance(ref: InstanceAt, request: Request, who: Caller) -> HTMLResponse:
    return render(
        request,
        "confirm_delete.html",
        who,
        page="environments",
        env=ref.env,
        solution=ref.solution,
        kind=ref.kind,
        namespace=ref.namespace,
        name=ref.name,
        base=_instances_url(ref.env, ref.solution),
    )


@router.post(INSTANCE_PATH + "/delete")
async def delete_instance(ref: InstanceAt, request: Request, who: Caller) -> Response:
    posted = await _form(request)
    if posted.get("confirm", "").strip() != ref.name:
        raise InvalidInput(
            f"type the name {ref.name!r} to confirm the deletion", hint="nothing was deleted"
        )
    await inst.remove_instance(context(request, who), ref)
    done = _done_url(ref.env, ref.solution, "deleted", ref.kind, ref.name)
    return RedirectResponse(done, status_code=303)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


templates.env.filters["json"] = dumps
