"""Application instances: the custom resources of a solution in an environment, without kubectl.

Scaling and configuring an application goes through its operator: the administrator creates and
edits custom resources of the solution's CRDs.  Every write is checked twice before it is sent:
against the CRD's OpenAPI schema in Python (a message per wrong field), then by the API server in
a dry run (admission, defaults, CEL rules); only then is the real request made.
"""

from __future__ import annotations

import asyncio
import copy
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.api.streams import read_limited
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.layout import crd_samples
from metalk8s_solutions.archive.pinning import open_archive
from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.cluster.resources import custom_collection, read_crd, wait_gone
from metalk8s_solutions.engine.crds import unknown_fields, validation_errors
from metalk8s_solutions.engine.environments import (
    load_version_content,
    read_inventory,
    require_environment,
    session,
)
from metalk8s_solutions.engine.names import closest, did_you_mean
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.errors import InvalidInput, Refused, command

Obj = dict[str, Any]
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


# -- pure helpers ---------------------------------------------------------------------------


def parse_path(path: str) -> list[str | int]:
    """``spec.servers[0].port`` -> ["spec", "servers", 0, "port"]."""
    parts: list[str | int] = []
    pos = 0
    text = path.strip()
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
            continue
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise InvalidInput(f"--set {path}: cannot read the path at {text[pos:]!r}")
        parts.append(int(match[2]) if match[2] is not None else match[1])
        pos = match.end()
    if not parts:
        raise InvalidInput(f"--set {path!r}: empty path", hint="e.g. --set spec.replicas=3")
    return parts


def parse_set(text: str) -> tuple[list[str | int], Any]:
    """``spec.replicas=3`` -> (path, 3); the value is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise InvalidInput(
            f"--set {text!r}: expected PATH=VALUE", hint="e.g. --set spec.replicas=3"
        )
    path, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parse_path(path), value


def apply_sets(obj: Mapping[str, Any], sets: Sequence[str]) -> Obj:
    """A copy of ``obj`` with every ``PATH=VALUE`` of ``sets`` applied (maps are created)."""
    out: Obj = copy.deepcopy(dict(obj))
    for text in sets:
        _set_one(out, text)
    return out


def _set_one(out: Obj, text: str) -> None:
    path, value = parse_set(text)
    if path[0] in ("apiVersion", "kind") or path[:2] in (
        ["metadata", "name"],
        ["metadata", "namespace"],
    ):
        raise InvalidInput(f"--set {text}: {'.'.join(map(str, path))} cannot be changed")
    node: Any = out
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                raise InvalidInput(f"--set {text}: index {key} does not exist")
            node = node[key]
            continue
        if not isinstance(node, dict):
            raise InvalidInput(f"--set {text}: {key} is not inside a mapping")
        if key not in node or node[key] is None:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise InvalidInput(f"--set {text}: index {last} does not exist")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise InvalidInput(f"--set {text}: {last} is not inside a mapping")


def json_path(obj: Any, expression: str) -> Any:
    """The subset of kubectl's JSONPath that printer columns use: ``.a.b``, ``[0]``, filters."""
    node = obj
    rest = expression.strip().lstrip("$")
    pattern = re.compile(
        r"\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_-]+)==[\"']([^\"']*)[\"']\)\]"
    )
    pos = 0
    while pos < len(rest) and node is not None:
        match = pattern.match(rest, pos)
        if match is None:
            return None
        pos = match.end()
        if match[1] is not None:
            node = node.get(match[1]) if isinstance(node, dict) else None
        elif match[2] is not None:
            index = int(match[2])
            node = node[index] if isinstance(node, list) and index < len(node) else None
        else:
            key, want = match[3], match[4]
            items = node if isinstance(node, list) else []
            node = next((i for i in items if isinstance(i, dict) and str(i.get(key)) == want), None)
    return node


# -- resolving a solution's kinds in an environment ----------------------------------------


@dataclass(frozen=True)
class CustomKind:
    """One kind of custom resource a solution defines, as the live CRD serves it."""

    kind: str
    group: str
    version: str
    plural: str
    schema: Mapping[str, Any]
    columns: tuple[Mapping[str, Any], ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def matches(self, text: str) -> bool:
        lowered = text.lower()
        return lowered in (self.kind.lower(), self.plural, f"{self.plural}.{self.group}")


@dataclass(frozen=True)
class Scope:
    env: str
    solution: str
    namespace: str
    version: str
    kinds: tuple[CustomKind, ...]
    deployed: bool = True  # False: instances kept after 'env delete-solution' (no operator)

    def require_deployed(self) -> None:
        """Refuse to create or change an instance that no operator would reconcile."""
        if not self.deployed:
            raise Refused(
                f"{self.solution} is not deployed in environment {self.env} (its instances "
                f"in {self.namespace} were kept, without an operator: they can be listed "
                "and deleted only)",
                hint="deploy it again: "
                + command("env", "add-solution", self.env, self.solution, "<version>")
                + "; or delete them: "
                + command("env", "delete-solution", self.env, self.solution, "--delete-data"),
            )

    def kind(self, text: str) -> CustomKind:
        for kind in self.kinds:
            if kind.matches(text):
                return kind
        known = ", ".join(k.kind for k in self.kinds) or "none"
        raise InvalidInput(
            f"{text} is not a kind of {self.solution} (its kinds: {known})"
            + did_you_mean(text, [k.kind for k in self.kinds]),
            hint=f"see '{command('instance', 'kinds', self.env, self.solution)}'",
        )

    def path(self, kind: CustomKind, name: str | None = None) -> str:
        base = custom_collection(kind.group, kind.version, kind.plural, self.namespace)
        return base if name is None else f"{base}/{urllib.parse.quote(name, safe='')}"


async def resolve_scope(
    ctx: Context, kube: Kube, env: str, solution: str, namespace: str | None
) -> Scope:
    """Where ``solution`` runs in ``env`` and the kinds its live CRDs serve."""
    state = await require_environment(kube, env)
    places = [ns for ns, s in state.namespaces.items() if solution in s.config]
    if not places or (namespace is not None and namespace not in places):
        # Instances kept by 'env delete-solution' (without --delete-data) stay reachable.
        where = sorted(state.namespaces) if namespace is None else [namespace]
        kept = await _kept_scope(
            ctx, kube, env, solution, [n for n in where if n in state.namespaces]
        )
        if kept is not None:
            return kept
    if namespace is not None:
        if namespace not in places:
            raise Refused(
                f"{solution} is not deployed in {env}/{namespace} (it is in: "
                f"{', '.join(sorted(places)) or 'no namespace'})"
            )
        places = [namespace]
    if not places:
        inventory = await read_inventory(ctx, kube)
        known = {s for ns in state.namespaces.values() for s in ns.config}
        known |= {i.manifest.name for i in inventory.imported if i.manifest is not None}
        version = inventory.active.get(solution, "<version>")
        raise Refused(
            f"{solution} is not deployed in environment {env}" + did_you_mean(solution, known),
            hint="deploy it first: " + command("env", "add-solution", env, solution, version),
        )
    if len(places) > 1:
        raise InvalidInput(
            f"{solution} runs in several namespaces of {env} ({', '.join(sorted(places))})",
            hint="choose one with -N NAMESPACE",
        )
    ns = places[0]
    version = state.namespaces[ns].config[solution]
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(solution, version)
    content = await asyncio.to_thread(load_version_content, Path(archive), inventory.pin(archive))
    kinds: list[CustomKind] = []
    for crd in content.crds:
        name = str((crd.get("metadata") or {}).get("name", ""))
        live = await read_crd(kube, name)
        if live is None:
            raise Refused(
                f"CRD {name} of {solution} is not in the cluster",
                hint=f"activate {solution} first: '{command('activate', solution, version)}'",
            )
        found = _custom_kind(live, crd)
        if found is not None:
            kinds.append(found)
    return Scope(env, solution, ns, version, tuple(kinds))


def _custom_kind(live: Mapping[str, Any], crd: Mapping[str, Any]) -> CustomKind | None:
    """The kind of a live CRD, at the version ``crd`` (from the archive) stores, else serves."""
    spec = live.get("spec") or {}
    if spec.get("scope") != "Namespaced":
        return None
    wanted = [v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]
    served = {v["name"]: v for v in spec.get("versions") or [] if v.get("served")}
    # The version this operator version stores (or any it serves) that the cluster serves.
    ordered = sorted(wanted, key=lambda v: not v.get("storage"))
    chosen = next((served[v["name"]] for v in ordered if v["name"] in served), None)
    if chosen is None:
        return None
    names = spec.get("names") or {}
    return CustomKind(
        kind=str(names.get("kind")),
        group=str(spec.get("group")),
        version=str(chosen["name"]),
        plural=str(names.get("plural")),
        schema=(chosen.get("schema") or {}).get("openAPIV3Schema") or {},
        columns=tuple(chosen.get("additionalPrinterColumns") or ()),
    )


async def _kept_scope(
    ctx: Context, kube: Kube, env: str, solution: str, wanted: Sequence[str]
) -> Scope | None:
    """Where instances of a solution that is no longer deployed were kept, if anywhere."""
    inventory = await read_inventory(ctx, kube)
    contents = await inventory.contents([solution])
    crds = {
        str((crd.get("metadata") or {}).get("name", "")): crd
        for _, content in sorted(contents.items())
        for crd in content.crds
    }
    kinds: list[CustomKind] = []
    places: set[str] = set()
    for name, crd in sorted(crds.items()):
        live = await read_crd(kube, name)
        kind = _custom_kind(live, crd) if live is not None else None
        if kind is None:
            continue
        kinds.append(kind)
        for ns in wanted:
            path = custom_collection(kind.group, kind.version, kind.plural, ns)
            data = await request(kube, "GET", path, action=f"listing {kind.plural}")
            if (data or {}).get("items"):
                places.add(ns)
    if not places:
        return None
    if len(places) > 1:
        raise InvalidInput(
            f"instances of {solution} were kept in several namespaces of {env} "
            f"({', '.join(sorted(places))})",
            hint="choose one with -N NAMESPACE",
        )
    return Scope(env, solution, places.pop(), "", tuple(kinds), deployed=False)


def _summary(kind: CustomKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    columns = {
        str(c.get("name")): json_path(obj, str(c.get("jsonPath", "")))
        for c in kind.columns
        if c.get("type") != "date" and not c.get("priority")
    }
    return {
        "kind": kind.kind,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "apiVersion": kind.api_version,
        "columns": columns,
        "spec": obj.get("spec"),
        "status": obj.get("status"),
    }


# -- samples: the *_cr.yaml files beside the CRDs ------------------------------------------

MAX_SAMPLE_FILE = 1 << 20


@dataclass(frozen=True)
class Sample:
    """One sample custom resource of an archive (operator-sdk's ``*_cr.yaml``)."""

    name: str
    kind: str
    api_version: str
    file: str
    document: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "apiVersion": self.api_version,
            "file": self.file,
            "spec": copy.deepcopy(self.document.get("spec")),
        }


def read_samples(archive: Path, pin: Pin | None = None) -> list[Sample]:
    """The sample custom resources of an archive, read from the ISO (checked against ``pin``).

    MetalK8s 1.0.x-era archives ship them beside the CRDs; they are never applied, only offered
    as templates for new instances. Documents without a kind are skipped; one without a name is
    named after its file.
    """
    samples: list[Sample] = []
    with open_archive(archive, pin) as iso:
        for path in crd_samples(iso.files()):
            docs = load_yaml_documents(
                read_limited(iso, path, MAX_SAMPLE_FILE), f"{archive.name}:{path}"
            )
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            for doc in docs:
                if not isinstance(doc, dict) or not doc.get("kind"):
                    continue
                meta = doc.get("metadata")
                meta = meta if isinstance(meta, dict) else {}
                name = str(meta.get("name") or stem)
                body = {k: copy.deepcopy(v) for k, v in doc.items() if k != "status"}
                # a sample's namespace is never kept: the instance goes where the solution runs
                body["metadata"] = {
                    "name": name,
                    **{k: copy.deepcopy(meta[k]) for k in ("labels", "annotations") if k in meta},
                }
                samples.append(
                    Sample(name, str(doc["kind"]), str(doc.get("apiVersion", "")), path, body)
                )
    return samples


async def _scope_samples(ctx: Context, kube: Kube, scope: Scope) -> list[Sample]:
    """The samples of the version deployed in ``scope``, of the kinds it serves."""
    scope.require_deployed()
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(scope.solution, scope.version)
    found = await asyncio.to_thread(read_samples, Path(archive), inventory.pin(archive))
    return [s for s in found if any(k.matches(s.kind) for k in scope.kinds)]


def pick_sample(
    samples: Sequence[Sample], name: str, solution: str, version: str, hint: str = ""
) -> Sample:
    """The sample called ``name`` (its metadata.name, or KIND/NAME), else a clear refusal."""
    for sample in samples:
        if name in (sample.name, f"{sample.kind}/{sample.name}"):
            return sample
    names = [s.name for s in samples]
    listed = ", ".join(f"{s.kind}/{s.name}" for s in samples) or "none"
    raise InvalidInput(
        f"{solution} {version} has no sample {name!r} (its samples: {listed})"
        + did_you_mean(name, names),
        hint=hint,
    )


# -- verbs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceQuery:
    env: str
    solution: str
    namespace: str | None = None


async def list_instances(
    ctx: Context, query: InstanceQuery, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """Every custom resource of the solution in its environment namespace, with its status."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, query.env, query.solution, query.namespace)
        result: list[dict[str, Any]] = []
        for kind in scope.kinds:
            data = await request(kube, "GET", scope.path(kind), action=f"listing {kind.plural}")
            for item in (data or {}).get("items") or []:
                result.append(_summary(kind, item))
    return result


async def list_samples(
    ctx: Context, query: InstanceQuery, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """The sample custom resources the deployed version ships (templates for new instances)."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, query.env, query.solution, query.namespace)
        samples = await _scope_samples(ctx, kube, scope)
    return [{**s.to_dict(), "namespace": scope.namespace} for s in samples]


async def list_kinds(
    ctx: Context, query: InstanceQuery, *, connection: Kube | None = None
) -> list[dict[str, Any]]:
    """The kinds of the solution, with the top-level fields of their spec (for forms)."""
    async with session(ctx, connection) as kube:
        scope = await resolve_scope(ctx, kube, query.env, query.solution, query.namespace)
    return [
        {
            "kind": k.kind,
            "apiVersion": k.api_version,
            "plural": k.plural,
            "namespace": scope.namespace,
            "schema": dict(k.schema),
        }
        for k in scope.kinds
    ]


def _validate(
    scope: Scope,
    kind: CustomKind,
    obj: Mapping[str, Any],
    before: Mapping[str, Any] | None = None,
) -> None:
    """Refuse what breaks the schema, and every field it does not declare (the API server
    would drop it silently); fields already in ``before`` are not reported again."""
    known = set(unknown_fields(before, kind.schema)) if before is not None else set()
    errors = [e for e in unknown_fields(obj, kind.schema) if e not in known]
    errors += validation_errors(obj, kind.schema)
    if errors:
        name = (obj.get("metadata") or {}).get("name")
        raise InvalidInput(
            f"{kind.kind} {name} does not match the {kind.api_version} schema: "
            + "; ".join(errors[:10]),
            hint="nothing was sent; fix the values (see "
            f"'{command('instance', 'kinds', scope.env, scope.solution)}')",
        )


async def _send(kube: Kube, method: str, path: str, body: Obj, action: str, dry_run: bool) -> Obj:
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
            samples = await _scope_samples(ctx, kube, scope)
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
        _validate(scope, kind, doc)
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
        created = await _send(
            kube, "POST", path, doc, f"creating {kind.kind} {meta['name']}", opts.dry_run
        )
    return _summary(kind, created)


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
        _validate(scope, kind, changed, current)
        changed.pop("status", None)  # the status belongs to the operator
        updated = await _send(
            kube, "PUT", path, changed, f"updating {kind.kind} {name}", opts.dry_run
        )
    return _summary(kind, updated)


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
