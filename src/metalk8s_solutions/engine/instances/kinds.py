"""The kinds of a solution's custom resources, and how one instance reads (pure, no I/O).

One kind type for the CLI and the web: picked from a CRD document of the archive (the version
the operator of that archive stores), optionally as the cluster serves it; its printer columns
read with the subset of JSONPath kubectl uses; an instance's readiness in the words of
:mod:`engine.wording`.  May import ``cluster.resources`` (paths), ``engine.names``,
``engine.wording`` and ``errors``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.cluster.resources import custom_collection
from metalk8s_solutions.engine.names import did_you_mean
from metalk8s_solutions.engine.wording import readiness
from metalk8s_solutions.errors import InvalidInput, command

_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_-]+)==[\"']([^\"']*)[\"']\)\]")


def json_path(obj: Any, expression: str) -> Any:
    """The subset of kubectl's JSONPath that printer columns use: ``.a.b``, ``[0]`` and
    ``[?(@.k=="v")]``; None where the object has nothing (or the expression is beyond it)."""
    node = obj
    rest = expression.strip().lstrip("$")
    pos = 0
    while pos < len(rest) and node is not None:
        match = _STEP.match(rest, pos)
        if match is None:
            return None
        pos = match.end()
        if match[1] is not None:
            node = node.get(match[1]) if isinstance(node, Mapping) else None
        elif match[2] is not None:
            index = int(match[2])
            node = node[index] if isinstance(node, list) and index < len(node) else None
        else:
            key, want = match[3], match[4]
            items = node if isinstance(node, list) else []
            node = next(
                (i for i in items if isinstance(i, Mapping) and str(i.get(key)) == want), None
            )
    return node


@dataclass(frozen=True)
class CustomKind:
    """One kind of custom resource a solution defines, at the API version read and written."""

    kind: str
    group: str
    version: str
    plural: str
    schema: Mapping[str, Any]
    columns: tuple[Mapping[str, Any], ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def shown_columns(self) -> tuple[Mapping[str, Any], ...]:
        """The printer columns kubectl shows without ``-o wide`` (priority 0)."""
        return tuple(c for c in self.columns if not c.get("priority"))

    def matches(self, text: str) -> bool:
        lowered = text.lower()
        return lowered in (self.kind.lower(), self.plural, f"{self.plural}.{self.group}")

    def path(self, namespace: str, name: str | None = None) -> str:
        """The API path of this kind's collection in ``namespace``, or of one instance."""
        base = custom_collection(self.group, self.version, self.plural, namespace)
        return base if name is None else f"{base}/{urllib.parse.quote(name, safe='')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "plural": self.plural,
            "apiVersion": self.api_version,
            "schema": dict(self.schema),
        }


def kind_of_crd(crd: Mapping[str, Any], live: Mapping[str, Any] | None = None) -> CustomKind | None:
    """The kind ``crd`` (a document of the archive) defines, at the version it stores (else the
    first it serves); with ``live`` (the CRD as the cluster serves it), at the first of those
    versions the cluster serves, as the cluster describes it.  None for a cluster-scoped kind or
    when no version fits."""
    spec = (live if live is not None else crd).get("spec") or {}
    if spec.get("scope", "Namespaced") != "Namespaced":
        return None
    wanted = [v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served", True)]
    ordered = sorted(wanted, key=lambda v: not v.get("storage"))
    if live is None:
        chosen = ordered[0] if ordered else None
    else:
        served = {v["name"]: v for v in spec.get("versions") or [] if v.get("served", True)}
        chosen = next((served[v["name"]] for v in ordered if v["name"] in served), None)
    if chosen is None:
        return None
    names = spec.get("names") or {}
    return CustomKind(
        kind=str(names.get("kind", "")),
        group=str(spec.get("group", "")),
        version=str(chosen.get("name", "")),
        plural=str(names.get("plural", "")),
        schema=(chosen.get("schema") or {}).get("openAPIV3Schema") or {},
        columns=tuple(chosen.get("additionalPrinterColumns") or ()),
    )


def kinds_of_crds(crds: Iterable[Mapping[str, Any]]) -> list[CustomKind]:
    """The namespaced kinds the CRD documents of an archive define, by kind."""
    found = (kind_of_crd(crd) for crd in crds)
    return sorted((k for k in found if k is not None), key=lambda k: k.kind)


def find_kind(kinds: Sequence[CustomKind], text: str, env: str, solution: str) -> CustomKind:
    """The kind called ``text`` (kind, plural or plural.group, any case), else a refusal."""
    for kind in kinds:
        if kind.matches(text):
            return kind
    known = ", ".join(k.kind for k in kinds) or "none"
    raise InvalidInput(
        f"{text} is not a kind of {solution} (its kinds: {known})"
        + did_you_mean(text, [k.kind for k in kinds]),
        hint=f"see '{command('instance', 'kinds', env, solution)}'",
    )


def instance_status(obj: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """Ready or not, and why, from the conventional ``Ready`` condition (engine.wording)."""
    found = readiness(name, obj)
    reason = found.reason or ("Unknown" if found.status in ("", "Unknown") else "")
    return {
        "ready": found.ready,
        "condition": found.status,  # "True", "False", "Unknown", "" (nothing reported)
        "reason": reason,
        "message": found.message or ("" if found.status else "no readiness reported"),
        "why": found.why(),
    }


def column_values(
    kind: CustomKind, obj: Mapping[str, Any], *, dates: bool = True
) -> dict[str, Any]:
    """The shown printer columns of ``obj`` (``dates=False``: without the date columns)."""
    return {
        str(c.get("name")): json_path(obj, str(c.get("jsonPath", "")))
        for c in kind.shown_columns
        if dates or c.get("type") != "date"
    }


def instance_row(kind: CustomKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """One instance as the web lists it: where, when, its readiness, columns and spec."""
    meta = obj.get("metadata") or {}
    return {
        "kind": kind.kind,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "created": meta.get("creationTimestamp"),
        "deleting": bool(meta.get("deletionTimestamp")),
        "status": instance_status(obj, f"{kind.kind} {meta.get('name')}"),
        "columns": column_values(kind, obj),
        "spec": obj.get("spec") or {},
    }


def instance_summary(kind: CustomKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """One instance as the CLI prints it (and its verbs answer): columns, spec and status."""
    meta = obj.get("metadata") or {}
    return {
        "kind": kind.kind,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "apiVersion": kind.api_version,
        "columns": column_values(kind, obj, dates=False),
        "spec": obj.get("spec"),
        "status": obj.get("status"),
    }
