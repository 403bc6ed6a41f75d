"""Application instances: the custom resources of a solution in an environment.

The kinds and their schemas come from the archive of the version deployed in the environment
(the operator there understands exactly those), so listing them needs no right on CRDs.  Reads
and writes go to the API server with the user's token; the API server validates them against
the live CRD and RBAC decides.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.cluster.apply import request
from metalk8s_solutions.cluster.kube import Kube, connect
from metalk8s_solutions.cluster.resources import custom_collection, read_environment_states
from metalk8s_solutions.engine.crds import unknown_fields
from metalk8s_solutions.engine.desired import check_dns_label, check_env_name
from metalk8s_solutions.engine.environments import load_version_content, read_inventory
from metalk8s_solutions.engine.instances import Sample, read_samples
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.errors import InvalidInput, Missing, Refused
from metalk8s_solutions.web.forms import FormSpec, spec_form

_FILTER = re.compile(r"^\[\?\(@\.(\w+)==\"([^\"]*)\"\)\]$")


@dataclass(frozen=True)
class KindInfo:
    """One kind of a solution, at the API version the UI reads and writes."""

    kind: str
    plural: str
    group: str
    version: str
    schema: Mapping[str, Any]
    columns: tuple[Mapping[str, Any], ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def form(self) -> FormSpec:
        return spec_form(self.schema)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "plural": self.plural,
            "apiVersion": self.api_version,
            "schema": dict(self.schema),
        }


def kinds_of_crds(crds: Any) -> list[KindInfo]:
    """The kinds defined by CRD documents, each at its storage (else first served) version."""
    kinds: list[KindInfo] = []
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("scope", "Namespaced") != "Namespaced":
            continue
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        chosen = next((v for v in versions if v.get("storage")), versions[0] if versions else None)
        if chosen is None:
            continue
        names = spec.get("names") or {}
        kinds.append(
            KindInfo(
                kind=str(names.get("kind", "")),
                plural=str(names.get("plural", "")),
                group=str(spec.get("group", "")),
                version=str(chosen.get("name", "")),
                schema=(chosen.get("schema") or {}).get("openAPIV3Schema") or {},
                columns=tuple(
                    c for c in chosen.get("additionalPrinterColumns") or [] if not c.get("priority")
                ),
            )
        )
    return sorted(kinds, key=lambda k: k.kind)


def json_path(obj: Any, path: str) -> Any:
    """The subset of kubectl's JSONPath printer columns use: ``.a.b`` and ``[?(@.k=="v")]``."""
    current = obj
    for part in re.findall(r"\[[^\]]*\]|[^.\[]+", path.lstrip(".")):
        match = _FILTER.match(part)
        if match:
            key, value = match.groups()
            current = next(
                (i for i in current or [] if isinstance(i, Mapping) and str(i.get(key)) == value),
                None,
            )
        elif isinstance(current, Mapping):
            current = current.get(part)
        else:
            return None
        if current is None:
            return None
    return current


def instance_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Ready or not, and why, from the conventional ``Ready`` condition."""
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return {
                "ready": cond.get("status") == "True",
                "reason": cond.get("reason") or "",
                "message": cond.get("message") or "",
            }
    return {"ready": None, "reason": "Unknown", "message": "the operator has not reported yet"}


@dataclass(frozen=True)
class Deployed:
    env: str
    solution: str
    version: str
    namespaces: tuple[str, ...]
    kinds: tuple[KindInfo, ...]
    archive: str = ""  # the archive of ``version`` (its samples are read from it)
    pin: Pin | None = None

    def kind(self, name: str) -> KindInfo:
        for k in self.kinds:
            if name in (k.kind, k.plural):
                return k
        known = ", ".join(k.kind for k in self.kinds) or "none"
        raise InvalidInput(f"{self.solution} has no kind {name} (its kinds: {known})")

    def namespace(self, name: str) -> str:
        if name not in self.namespaces:
            raise InvalidInput(
                f"{name} is not a namespace of environment {self.env} running {self.solution} "
                f"(those are: {', '.join(self.namespaces)})"
            )
        return name


async def deployed(ctx: Context, kube: Kube, env: str, solution: str) -> Deployed:
    """Where ``solution`` runs in ``env`` and the kinds of that version."""
    check_env_name(env)
    states = await read_environment_states(kube, env)
    if env not in states:
        raise Missing(f"environment {env} does not exist")
    placed = {
        ns: s.config[solution] for ns, s in states[env].namespaces.items() if solution in s.config
    }
    if not placed:
        raise Refused(
            f"{solution} is not deployed in environment {env}",
            hint="add it from the environment page first",
        )
    version = _highest(placed.values())
    inventory = await read_inventory(ctx, kube)
    archive = inventory.require(solution, version)
    content = await asyncio.to_thread(load_version_content, Path(archive), inventory.pin(archive))
    return Deployed(
        env,
        solution,
        version,
        tuple(sorted(placed)),
        tuple(kinds_of_crds(content.crds)),
        archive,
        inventory.pin(archive),
    )


async def samples_of(where: Deployed, kind: str | None = None) -> list[Sample]:
    """The sample instances (``*_cr.yaml``) of the deployed version, of its kinds (or ``kind``)."""
    if not where.archive:
        return []
    found = await asyncio.to_thread(read_samples, Path(where.archive), where.pin)
    kinds = {k.kind for k in where.kinds} if kind is None else {kind}
    return [s for s in found if s.kind in kinds]


def _highest(versions: Iterable[str]) -> str:
    from metalk8s_solutions.api.versions import latest  # noqa: PLC0415

    return latest(versions)


def _path(kind: KindInfo, namespace: str, name: str | None = None) -> str:
    base = custom_collection(kind.group, kind.version, kind.plural, namespace)
    return base + (f"/{urllib.parse.quote(name, safe='')}" if name else "")


async def list_instances(ctx: Context, env: str, solution: str) -> dict[str, Any]:
    """Every instance of every kind of ``solution`` in ``env``, with its status and columns."""
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        rows: list[dict[str, Any]] = []
        for kind in where.kinds:
            for ns in where.namespaces:
                data = await request(
                    kube,
                    "GET",
                    _path(kind, ns),
                    action=f"listing {kind.plural} in {ns}",
                    missing_ok=True,
                )
                for obj in (data or {}).get("items") or []:
                    rows.append(_row(kind, obj))
    return {
        "env": env,
        "solution": solution,
        "version": where.version,
        "namespaces": list(where.namespaces),
        "kinds": [
            {"kind": k.kind, "apiVersion": k.api_version, "columns": [c["name"] for c in k.columns]}
            for k in where.kinds
        ],
        "instances": rows,
        "samples": [{"kind": s.kind, "name": s.name} for s in await samples_of(where)],
    }


def _row(kind: KindInfo, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "kind": kind.kind,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "created": meta.get("creationTimestamp"),
        "deleting": bool(meta.get("deletionTimestamp")),
        "status": instance_status(obj),
        "columns": {
            str(c["name"]): json_path(obj, str(c.get("jsonPath", ""))) for c in kind.columns
        },
        "spec": obj.get("spec") or {},
    }


async def get_instance(
    ctx: Context, env: str, solution: str, kind: str, namespace: str, name: str
) -> tuple[KindInfo, dict[str, Any]]:
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        obj = await request(
            kube,
            "GET",
            _path(info, where.namespace(namespace), name),
            action=f"reading {info.kind} {namespace}/{name}",
        )
    return info, obj or {}


async def kind_info(ctx: Context, env: str, solution: str, kind: str) -> tuple[Deployed, KindInfo]:
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
    return where, where.kind(kind)


def _clean(body: Mapping[str, Any], info: KindInfo, namespace: str, name: str) -> dict[str, Any]:
    obj = dict(body)
    obj["apiVersion"] = info.api_version
    obj["kind"] = info.kind
    meta = dict(obj.get("metadata") or {})
    meta["name"], meta["namespace"] = name, namespace
    for key in ("managedFields", "creationTimestamp", "uid", "generation", "selfLink"):
        meta.pop(key, None)
    obj["metadata"] = meta
    obj.pop("status", None)
    return obj


async def save_instance(
    ctx: Context,
    env: str,
    solution: str,
    kind: str,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    *,
    create: bool,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Create or replace an instance; the API server validates it against the live CRD."""
    check_dns_label(name, "instance name") if len(name) <= 63 else None
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        ns = where.namespace(namespace)
        obj = _clean(body, info, ns, name)
        unknown = unknown_fields(obj, info.schema)
        if unknown:
            raise InvalidInput(
                f"{info.kind} {name} does not match the {info.api_version} schema: "
                + "; ".join(unknown[:10]),
                hint="nothing was sent; fix the field names",
            )
        # Strict: the API server refuses undeclared fields instead of dropping them silently.
        params = {"fieldValidation": "Strict", **({"dryRun": "All"} if dry_run else {})}
        if create:
            obj["metadata"].pop("resourceVersion", None)
            result = await request(
                kube,
                "POST",
                _path(info, ns),
                body=obj,
                params=params,
                action=f"creating {info.kind} {ns}/{name}",
            )
        else:
            if not obj["metadata"].get("resourceVersion"):
                current = await request(
                    kube, "GET", _path(info, ns, name), action=f"reading {info.kind} {ns}/{name}"
                )
                meta = (current or {}).get("metadata") or {}
                obj["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            result = await request(
                kube,
                "PUT",
                _path(info, ns, name),
                body=obj,
                params=params,
                action=f"updating {info.kind} {ns}/{name}",
            )
    return result or {}


async def delete_instance(
    ctx: Context, env: str, solution: str, kind: str, namespace: str, name: str
) -> None:
    async with connect(ctx.target) as kube:
        where = await deployed(ctx, kube, env, solution)
        info = where.kind(kind)
        await request(
            kube,
            "DELETE",
            _path(info, where.namespace(namespace), name),
            action=f"deleting {info.kind} {namespace}/{name}",
        )
