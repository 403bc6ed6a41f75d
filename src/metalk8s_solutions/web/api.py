"""The JSON HTTP API: every operation of the CLI, for automation (OpenAPI at /api/openapi.json).

Authenticate with ``Authorization: Bearer <Kubernetes token>`` (no cookie, no CSRF token), or with
the browser session (then mutating calls need the ``X-CSRF-Token`` header).  Mutating operations
take ``dryRun`` and answer the plan; long ones take ``?wait=false`` to run as a job whose progress
streams from ``/api/jobs/{id}/events``.  Errors are ``{"error": {"message", "kind", "hint"}}``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from metalk8s_solutions.engine import instances as inst
from metalk8s_solutions.engine import views
from metalk8s_solutions.engine.environments.show import status
from metalk8s_solutions.engine.solutions import Outcome
from metalk8s_solutions.errors import InvalidInput, SolutionsError
from metalk8s_solutions.web import service
from metalk8s_solutions.web.auth import RECORD_UPDATE, Check
from metalk8s_solutions.web.deps import (
    INSTANCE_PATH,
    InstanceAt,
    Principal,
    UiState,
    can,
    check_login_origin,
    context,
    limit_logins,
    principal,
    require_csrf,
    require_record_rights,
    set_session_cookie,
    state_of,
    user,
)
from metalk8s_solutions.web.errors import classify, not_found
from metalk8s_solutions.web.jobs import Job
from metalk8s_solutions.web.sessions import COOKIE
from metalk8s_solutions.web.uploads import ReceivedArchive, receive_archive

Name = Annotated[str, Field(min_length=1, max_length=253)]
Json = dict[str, Any]


class ErrorDetail(BaseModel):
    message: str
    kind: str
    hint: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "invalid input",
        401: "not logged in, or the token was not accepted",
        403: "RBAC or CSRF refused the request",
        404: "no such object",
        409: "refused (unsafe now) or conflicting change",
        413: "the request body is too large",
        422: "invalid archive or request body",
        503: "the cluster could not be reached",
    }.items()
}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dry_run: bool = Field(False, alias="dryRun", description="Answer the plan, change nothing.")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=16384, description="A Kubernetes bearer token.")


class ImportBody(Body):
    archives: list[Name] = Field(min_length=1, description="Absolute paths on the admin node.")
    policy: Literal["required", "if-signed", "disabled"] | None = Field(
        None, description="A stricter signature policy than trust.policy (a lower one is refused)."
    )


class UnimportBody(Body):
    refs: list[Name] = Field(min_length=1, description="Solution ids or archive paths.")


class ActivateBody(Body):
    version: Name = "latest"
    force: bool = False
    take_over_crds: list[Name] = Field(
        default_factory=list,
        alias="takeOverCrds",
        description="CRDs of the archive that the Solution may take over from another owner "
        "(another solution or tool); any other CRD it does not own is refused.",
    )


class DeactivateBody(Body):
    force: bool = False


class EnvCreateBody(Body):
    name: Name
    description: str = Field("", max_length=1024)
    namespaces: list[Name] = Field(default_factory=list)


class EnvDeleteBody(Body):
    confirm: str = Field(
        "", description="The environment's name, typed again (not needed for a dry run)."
    )


class AddBody(Body):
    solution: Name
    version: Name
    webhook: bool = Field(
        False,
        description="Mount Secret <solution>-cert (made and kept by the tool) at /cert in the "
        "operator, as MetalK8s 124 does (`env add-solution --webhook`).",
    )


class VersionBody(Body):
    version: Name


class RemoveBody(Body):
    delete_data: bool = Field(False, alias="deleteData")


class InstanceBody(Body):
    namespace: Name
    name: Name
    spec: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict, description="labels, annotations")


router = APIRouter(prefix="/api", responses=ERRORS)
Caller = Annotated[Principal, Depends(user)]
Wait = Annotated[bool, Query(description="false: run as a job and answer 202 {job}")]


def _job_json(job: Job) -> Json:
    return {"job": job.id, "state": job.state, "events": f"/api/jobs/{job.id}/events"}


async def _timed(ui: UiState, key: str, dry_run: bool, work: Awaitable[Outcome]) -> Outcome:
    """Await ``work``, recording its duration and outcome (ok, refused, failed)."""
    started = time.monotonic()
    outcome = "failed"
    try:
        result = await work
        outcome = "ok"
        return result
    except SolutionsError as err:
        outcome = "refused" if classify(err).status < 500 else "failed"
        raise
    finally:
        mode = "plan" if dry_run else "run"
        ui.metrics.operation(key, mode, outcome, time.monotonic() - started)


async def run_operation(
    request: Request,
    who: Principal,
    key: str,
    params: dict[str, str],
    *,
    dry_run: bool,
    wait: bool = True,
) -> Json | Job:
    """Run one operation of :data:`service.OPERATIONS` as ``who`` (or start it as a job)."""
    op = service.OPERATIONS[key]
    if op.admin_node:
        await require_record_rights(request, who, op.title(params))
    if not dry_run:
        service.check_confirmation(op, params)
    ui = state_of(request)
    if wait or dry_run:
        outcome: Outcome = await _timed(
            ui, key, dry_run, op.run(context(request, who), params, dry_run)
        )
        return outcome.to_json()

    async def work(say: Any) -> Json:
        result: Outcome = await _timed(
            ui, key, False, op.run(context(request, who, say), params, False)
        )
        return result.to_json()

    return ui.jobs.start(who.key, op.title(params), op.back(params), work)


async def _answer(
    request: Request, who: Principal, key: str, params: dict[str, str], dry: bool, wait: bool
) -> Any:
    result = await run_operation(request, who, key, params, dry_run=dry, wait=wait)
    if isinstance(result, Job):
        return JSONResponse(_job_json(result), status_code=202)
    return result


# -- session -------------------------------------------------------------------------------


@router.post(
    "/session",
    summary="Log in with a Kubernetes bearer token (sets the cookie)",
    description="Refused (403, kind `csrf`) when a browser says another site sent it "
    "(`Origin`, `Sec-Fetch-Site`); login attempts are rate-limited per client address.",
    responses={
        429: {"model": ErrorBody, "description": "too many login attempts (see Retry-After)"}
    },
)
async def login(body: LoginBody, request: Request, response: Response) -> Json:
    check_login_origin(request)
    limit_logins(request)
    ui = state_of(request)
    identity, token = await ui.authenticator.authenticate(body.token)
    session = ui.sessions.create(identity.user, identity.groups, token)
    set_session_cookie(response, session.id, ui)
    return {"user": identity.user, "groups": list(identity.groups), "csrf": session.csrf}


@router.get("/session", summary="Who am I, and what may I do")
async def whoami(request: Request, who: Annotated[Principal, Depends(principal)]) -> Json:
    checks = {
        "import": RECORD_UPDATE,
        "activate": Check("create", "customresourcedefinitions", "apiextensions.k8s.io"),
        "createEnvironment": Check("create", "namespaces"),
        "deleteEnvironment": Check("delete", "namespaces"),
    }
    answers = await can(request, who, checks.values())
    return {"user": who.user, "csrf": who.csrf, "can": {k: answers[c] for k, c in checks.items()}}


@router.delete("/session", summary="Log out")
async def logout(request: Request, response: Response) -> Json:
    ui = state_of(request)
    session_id = request.cookies.get(COOKIE)
    if session_id:
        ui.sessions.delete(session_id)
        ui.perms.forget(session_id)
        ui.ui_sessions.end(session_id)  # its Solution UI sessions end with it
        if ui.oidc is not None:
            ui.oidc.forget(session_id)
    response.delete_cookie(COOKIE, path="/")
    return {"loggedOut": True}


# -- whole state ---------------------------------------------------------------------------


@router.get("/status", summary="The whole-state view: available, config, environments")
async def whole_status(request: Request, who: Caller) -> Json:
    return await status(context(request, who))


# -- solutions -----------------------------------------------------------------------------


@router.get("/solutions", summary="Imported versions, active marks, archive details")
async def get_solutions(request: Request, who: Caller) -> Json:
    return await views.solutions_view(context(request, who))


@router.post("/solutions/import", summary="Import archives (paths on the admin node)")
async def import_solutions(
    body: ImportBody, request: Request, who: Caller, wait: Wait = True
) -> Any:
    params = {"archives": "\n".join(body.archives), "policy": body.policy or ""}
    return await _answer(request, who, "import", params, body.dry_run, wait)


async def receive_upload(request: Request, who: Principal) -> ReceivedArchive:
    """Stream an uploaded archive into the upload directory (same name must mean same bytes).

    The caller's rights, and a CSRF token sent as a header, are checked before any byte of the
    body is read; a form's ``csrf`` field before any byte of the archive is stored.
    """
    await require_record_rights(request, who, "uploading an archive")
    header = request.headers.get("x-csrf-token")
    if header is not None:
        require_csrf(who, header)

    async def check_form(fields: dict[str, str]) -> None:
        if header is None:
            require_csrf(who, fields.get("csrf"))

    settings = state_of(request).settings
    return await receive_archive(request, settings.uploads, settings.upload_limit, check_form)


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["archive"],
                    "properties": {
                        "archive": {
                            "type": "string",
                            "format": "binary",
                            "description": "the .iso archive (at most the server's upload limit)",
                        },
                        "dryRun": {"type": "boolean", "default": False},
                    },
                }
            }
        },
    }
}
_TRUE, _FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no", "")


def _flag(fields: dict[str, str], name: str) -> bool:
    value = fields.get(name, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise InvalidInput(f"form field {name!r} must be true or false, not {value!r}")
    return value in _TRUE


@router.post(
    "/solutions/upload",
    summary="Upload an archive to the admin node, then import it",
    openapi_extra=UPLOAD_BODY,
    responses={413: {"model": ErrorBody, "description": "the archive is over the upload limit"}},
)
async def upload_solution(request: Request, who: Annotated[Principal, Depends(principal)]) -> Any:
    received = await receive_upload(request, who)
    path = received.path
    dry_run = _flag(received.fields, "dryRun")
    result = await run_operation(request, who, "import", {"archives": str(path)}, dry_run=dry_run)
    assert isinstance(result, dict)  # noqa: S101 - waited for
    return {**result, "archive": str(path)}


@router.post("/solutions/unimport", summary="Unimport versions (refused while in use)")
async def unimport_solutions(body: UnimportBody, request: Request, who: Caller) -> Any:
    return await _answer(
        request, who, "unimport", {"ref": "\n".join(body.refs)}, body.dry_run, True
    )


@router.post("/solutions/{name}/activate", summary="Activate a version: apply its CRDs safely")
async def activate_solution(
    name: str, body: ActivateBody, request: Request, who: Caller, wait: Wait = True
) -> Any:
    params = {
        "name": name,
        "version": body.version,
        "force": str(body.force),
        "take_over_crds": ",".join(body.take_over_crds),
    }
    return await _answer(request, who, "activate", params, body.dry_run, wait)


@router.post("/solutions/{name}/deactivate", summary="Deactivate (refused while data exists)")
async def deactivate_solution(
    name: str, body: DeactivateBody, request: Request, who: Caller
) -> Any:
    params = {"name": name, "force": str(body.force)}
    return await _answer(request, who, "deactivate", params, body.dry_run, True)


# -- environments --------------------------------------------------------------------------


@router.get("/environments", summary="Environments with their solutions and health")
async def get_environments(request: Request, who: Caller) -> list[Json]:
    return await views.environments_view(context(request, who))


@router.post("/environments", summary="Create an environment")
async def create_env(body: EnvCreateBody, request: Request, who: Caller) -> Any:
    params = {
        "name": body.name,
        "description": body.description,
        "namespaces": "\n".join(body.namespaces),
    }
    return await _answer(request, who, "env-create", params, body.dry_run, True)


@router.get("/environments/{env}", summary="An environment: solutions, operators, history")
async def get_environment(env: str, request: Request, who: Caller) -> Json:
    return await views.environment_view(context(request, who), env)


@router.post("/environments/{env}/delete", summary="Delete an environment (typed confirmation)")
async def delete_env(env: str, body: EnvDeleteBody, request: Request, who: Caller) -> Any:
    params = {"name": env, "confirm": body.confirm}
    return await _answer(request, who, "env-delete", params, body.dry_run, True)


@router.get(
    "/environments/{env}/solutions/{solution}/versions",
    summary="Imported versions, highest first, and whether each is compatible",
)
async def versions(env: str, solution: str, request: Request, who: Caller) -> list[Json]:
    return await views.solution_versions(context(request, who), env, solution)


@router.post("/environments/{env}/solutions", summary="Add a solution version to an environment")
async def add_to_env(
    env: str, body: AddBody, request: Request, who: Caller, wait: Wait = True
) -> Any:
    params = {
        "env": env,
        "solution": body.solution,
        "version": body.version,
        "webhook": str(body.webhook),
    }
    return await _answer(request, who, "env-add", params, body.dry_run, wait)


@router.put("/environments/{env}/solutions/{solution}", summary="Upgrade or downgrade a solution")
async def change_version(
    env: str, solution: str, body: VersionBody, request: Request, who: Caller, wait: Wait = True
) -> Any:
    params = {"env": env, "solution": solution, "version": body.version}
    return await _answer(request, who, "env-upgrade", params, body.dry_run, wait)


@router.post(
    "/environments/{env}/solutions/{solution}/remove",
    summary="Remove a solution from an environment",
)
async def remove_from_env(
    env: str, solution: str, body: RemoveBody, request: Request, who: Caller, wait: Wait = True
) -> Any:
    params = {"env": env, "solution": solution, "deleteData": str(body.delete_data)}
    return await _answer(request, who, "env-remove", params, body.dry_run, wait)


# -- application instances -----------------------------------------------------------------


@router.get(
    "/environments/{env}/solutions/{solution}/kinds",
    summary="The kinds of the deployed version, with their OpenAPI schema",
)
async def kinds(env: str, solution: str, request: Request, who: Caller) -> list[Json]:
    return await inst.kinds_view(context(request, who), env, solution)


@router.get(
    "/environments/{env}/solutions/{solution}/instances", summary="Instances and their status"
)
async def list_instances(env: str, solution: str, request: Request, who: Caller) -> Json:
    return await inst.instances_view(context(request, who), env, solution)


@router.post(
    "/environments/{env}/solutions/{solution}/instances/{kind}", summary="Create an instance"
)
async def create_instance(
    env: str, solution: str, kind: str, body: InstanceBody, request: Request, who: Caller
) -> Json:
    obj = {"metadata": body.metadata, "spec": body.spec}
    return await inst.save_instance(
        context(request, who),
        inst.InstanceRef(env, solution, kind, body.namespace, body.name),
        obj,
        create=True,
        dry_run=body.dry_run,
    )


@router.get(INSTANCE_PATH, summary="One instance")
async def get_instance(ref: InstanceAt, request: Request, who: Caller) -> Json:
    _, obj = await inst.get_instance(context(request, who), ref)
    return obj


@router.put(INSTANCE_PATH, summary="Replace an instance's spec (scale, configure)")
async def update_instance(
    ref: InstanceAt, body: InstanceBody, request: Request, who: Caller
) -> Json:
    if (body.namespace, body.name) != (ref.namespace, ref.name):
        raise InvalidInput("namespace and name in the body must match the URL")
    ctx = context(request, who)
    _, current = await inst.get_instance(ctx, ref)
    obj = inst.merge_posted(current, {"metadata": body.metadata, "spec": body.spec})
    return await inst.save_instance(ctx, ref, obj, create=False, dry_run=body.dry_run)


@router.delete(INSTANCE_PATH, summary="Delete an instance")
async def delete_instance(ref: InstanceAt, request: Request, who: Caller) -> Json:
    await inst.remove_instance(context(request, who), ref)
    return {"deleted": f"{ref.namespace}/{ref.name}"}


# -- jobs ----------------------------------------------------------------------------------


def job_of(request: Request, who: Principal, job_id: str) -> Job:
    """The job ``job_id`` of ``who`` (pages and API alike), else 404."""
    job = state_of(request).jobs.get(job_id, who.key)
    if job is None:
        raise not_found(f"job {job_id} does not exist (or is not yours)")
    return job


def follow_job(request: Request, job: Job) -> StreamingResponse:
    """The job's progress as server-sent events, until it ends or the client leaves."""

    async def stream() -> AsyncIterator[str]:
        async for event, data in job.follow():
            if await request.is_disconnected():
                return
            yield sse(event, data)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/jobs/{job_id}", summary="A job: its lines, state, result or error")
async def get_job(job_id: str, request: Request, who: Caller) -> Json:
    return job_of(request, who, job_id).to_json()


@router.get(
    "/jobs/{job_id}/events",
    summary="Server-sent events: one 'line' event per progress line, then 'done'",
    response_class=StreamingResponse,
)
async def job_events(job_id: str, request: Request, who: Caller) -> StreamingResponse:
    return follow_job(request, job_of(request, who, job_id))


SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in (data.splitlines() or [""]))
    return f"event: {event}\n{lines}\n"
