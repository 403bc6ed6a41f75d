"""Writing instances: the CLI's ``instance create|edit|delete`` and the web's forms and API.

Every write is checked twice before it is sent: against the CRD's OpenAPI schema in Python (a
message per wrong field, :func:`.edits.check_schema`), then by the API server in a dry run
(admission, defaults, CEL rules, :func:`send`); only then is the real request made.
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import custom_collection, wait_gone
from metalk8s_solutions.engine.desired import check_dns_label
from metalk8s_solutions.engine.environments import session
from metalk8s_solutions.engine.instances.edits import Obj, apply_sets, check_schema, clean_body
from metalk8s_solutions.engine.instances.kinds import CustomKind, instance_summary
from metalk8s_solutions.engine.instances.samples import pick_sample
from metalk8s_solutions.engine.instances.scope import (
    InstanceRef,
    Scope,
    locate,
    resolve_scope,
    scope_samples,
)
from metalk8s_solutions.engine.names import closest
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.errors import InvalidInput, Refused, command


def _fix_hint(scope: Scope) -> str:
    return "nothing was sent; fix the values (see " + (
        f"'{command('instance', 'kinds', scope.env, scope.solution)}')"
    )


async def send(kube: Kube, method: str, path: str, body: Obj, action: str, dry_run: bool) -> Obj:
    # The API server's verdict first (admission, defaults, CEL rules), then the real request.
    # Strict: the API server refuses fields its schema does not declare instead of dropping them.
    strict = {"fieldValidation": "Strict"}
    checked = await request(
        kube, method, path, action=action, body=body, params={**strict, "dryRun": "All"}
    )
    if dry_run:
        return checked or {}
    return await request(kube, method, path, action=action, body=body, params=strict) or {}


@dataclass(frozen=True)
class CreateInstanceOptions:
    env: str
    solution: str
    document: Mapping[str, Any] | None = None  # from -f FILE
    kind: str | None = None
    name: str | None = None
    sets: tuple[str, ...] = ()
    namespace: str | None = None
    dry_run: bool = False
    sample: str | None = None  # start from this sample of the archive (--from-sample)


async def create_instance(
    ctx: Context, opts: CreateInstanceOptions, *, connection: Kube | None = None
) -> dict[str, Any]:
    """Create a custom resource, validated against its CRD schema before it is sent."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, opts.env, opts.solution, opts.namespace)
        scope.require_deployed()
        doc: Obj = copy.deepcopy(dict(opts.document or {}))
        if opts.sample is not None:
            if opts.document is not None:
                raise InvalidInput(
                    "give either a file or a sample, not both",
                    hint="drop -f FILE or --from-sample NAME",
                )
            samples = await scope_samples(scope)
            hint = f"see '{command('instance', 'samples', scope.env, scope.solution)}'"
            sample = pick_sample(samples, opts.sample, scope.solution, scope.version, hint)
            doc = copy.deepcopy(dict(sample.document))
        kind_text = opts.kind or doc.get("kind")
        if not kind_text:
            raise InvalidInput("no kind given", hint="pass --kind KIND or -f FILE")
        kind = scope.kind(str(kind_text))
        meta = doc.setdefault("metadata", {})
        if opts.name:
            meta["name"] = opts.name
        if not meta.get("name"):
            raise InvalidInput("no name given", hint="pass --name NAME or set metadata.name")
        if meta.get("namespace") not in (None, scope.namespace):
            raise Refused(
                f"{kind.kind} {meta['name']} names namespace {meta['namespace']}, but "
                f"{opts.solution} runs in {scope.namespace} in environment {opts.env}",
                hint="remove metadata.namespace from the file",
            )
        meta["namespace"] = scope.namespace
        doc["kind"] = kind.kind
        if doc.get("apiVersion", kind.api_version).split("/")[0] != kind.group:
            raise InvalidInput(f"apiVersion {doc['apiVersion']} is not in group {kind.group}")
        doc.setdefault("apiVersion", kind.api_version)
        doc = apply_sets(doc, opts.sets)
        doc.setdefault("spec", {})
        check_schema(kind, doc, hint=_fix_hint(scope))
        version = doc["apiVersion"].split("/", 1)[1]
        path = custom_collection(kind.group, version, kind.plural, scope.namespace)
        name = str(meta["name"])
        existing = f"{path}/{urllib.parse.quote(name, safe='')}"
        if await request(
            kube, "GET", existing, action=f"reading {kind.kind} {name}", missing_ok=True
        ):
            where = ["-N", scope.namespace] if opts.namespace else []
            raise Refused(
                f"{kind.kind} {name} already exists in {scope.env}/{scope.namespace}",
                hint="change it with: "
                + command(
                    "instance",
                    "edit",
                    scope.env,
                    scope.solution,
                    f"{kind.kind}/{name}",
                    *where,
                    "--set",
                    "<field>=<value>",
                ),
            )
        created = await send(
            kube, "POST", path, doc, f"creating {kind.kind} {meta['name']}", opts.dry_run
        )
    return instance_summary(kind, created)


@dataclass(frozen=True)
class EditInstanceOptions:
    env: str
    solution: str
    ref: str  # KIND/NAME
    sets: tuple[str, ...]
    namespace: str | None = None
    dry_run: bool = False


async def _missing(kube: Kube, scope: Scope, kind: CustomKind, name: str) -> InvalidInput:
    """The error for an instance that does not exist, naming the closest one that does."""
    data = await request(kube, "GET", scope.path(kind), action=f"listing {kind.plural}")
    names = [str((i.get("metadata") or {}).get("name")) for i in (data or {}).get("items") or []]
    near = closest(name, names)
    return InvalidInput(
        f"{kind.kind} {name} does not exist in {scope.env}/{scope.namespace}"
        + (f" (did you mean {kind.kind}/{near}?)" if near else ""),
        hint=f"see '{command('instance', 'list', scope.env, scope.solution)}'",
    )


def _split_ref(ref: str) -> tuple[str, str]:
    if ref.count("/") != 1 or not all(ref.split("/")):
        raise InvalidInput(f"{ref!r} is not KIND/NAME", hint="e.g. VersionServer/web")
    kind, name = ref.split("/")
    return kind, name


async def edit_instance(
    ctx: Context, opts: EditInstanceOptions, *, connection: Kube | None = None
) -> dict[str, Any]:
    """Change fields of a custom resource (``--set spec.replicas=3``), validated first."""
    if not opts.sets:
        raise InvalidInput("nothing to change", hint="pass --set PATH=VALUE")
    kind_text, name = _split_ref(opts.ref)
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, opts.env, opts.solution, opts.namespace)
        scope.require_deployed()
        kind = scope.kind(kind_text)
        path = scope.path(kind, name)
        current = await request(
            kube, "GET", path, action=f"reading {kind.kind} {name}", missing_ok=True
        )
        if current is None:
            raise await _missing(kube, scope, kind, name)
        changed = apply_sets(current, opts.sets)
        check_schema(kind, changed, current, hint=_fix_hint(scope))
        changed.pop("status", None)  # the status belongs to the operator
        updated = await send(
            kube, "PUT", path, changed, f"updating {kind.kind} {name}", opts.dry_run
        )
    return instance_summary(kind, updated)


@dataclass(frozen=True)
class DeleteInstanceOptions:
    env: str
    solution: str
    ref: str
    namespace: str | None = None
    dry_run: bool = False
    wait: bool = True
    timeout: float = 120.0


async def delete_instance(
    ctx: Context, opts: DeleteInstanceOptions, *, connection: Kube | None = None
) -> dict[str, Any]:
    """Delete a custom resource (the operator's finalizers run before it disappears)."""
    kind_text, name = _split_ref(opts.ref)
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, opts.env, opts.solution, opts.namespace)
        kind = scope.kind(kind_text)
        path = scope.path(kind, name)
        action = f"deleting {kind.kind} {name}"
        params = {"dryRun": "All"} if opts.dry_run else {}
        found = await request(kube, "DELETE", path, action=action, params=params, missing_ok=True)
        if found is None:
            raise await _missing(kube, scope, kind, name)
        left: list[str] = []
        if opts.wait and not opts.dry_run:
            left = await wait_gone(kube, [path], timeout=opts.timeout, say=ctx.say)
    return {"kind": kind.kind, "name": name, "namespace": scope.namespace, "gone": not left}


# -- the web: a whole document from a form or the JSON API -----------------------------------


async def save_instance(
    ctx: Context,
    ref: InstanceRef,
    body: Mapping[str, Any],
    *,
    create: bool,
    dry_run: bool = False,
    connection: Kube | None = None,
) -> dict[str, Any]:
    """Create or replace the instance ``ref`` with ``body`` (its spec and metadata; status and
    server fields are dropped), checked like every write before it is sent."""
    if len(ref.name) <= 63:
        check_dns_label(ref.name, "instance name")
    async with session(ctx, connection) as kube:
        found = await locate(ctx, kube, ref)
        obj = clean_body(body, found.kind, found.namespace, found.name)
        # Values are left to the API server, whose messages name the CRD's own rules.
        check_schema(found.kind, obj, values=False, hint="nothing was sent; fix the field names")
        if create:
            obj["metadata"].pop("resourceVersion", None)
            collection = found.kind.path(found.namespace)
            return await send(kube, "POST", collection, obj, found.action("creating"), dry_run)
        if not obj["metadata"].get("resourceVersion"):
            current = await request(kube, "GET", found.path, action=found.action("reading"))
            meta = (current or {}).get("metadata") or {}
            obj["metadata"]["resourceVersion"] = meta.get("resourceVersion")
        return await send(kube, "PUT", found.path, obj, found.action("updating"), dry_run)


async def remove_instance(
    ctx: Context, ref: InstanceRef, *, connection: Kube | None = None
) -> None:
    """Delete the instance ``ref`` (its operator's finalizers run afterwards)."""
    async with session(ctx, connection) as kube:
        found = await locate(ctx, kube, ref)
        await request(kube, "DELETE", found.path, action=found.action("deleting"))
