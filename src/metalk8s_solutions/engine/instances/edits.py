"""Changing an instance's document before it is sent (pure, no I/O).

``--set PATH=VALUE`` edits, the fields a client may not choose (status, server metadata), and
the check of a document against its kind's schema (every field the schema does not declare,
and optionally every value that breaks it), so that nothing wrong is ever sent.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from metalk8s_solutions.engine.crds import unknown_fields, validation_errors
from metalk8s_solutions.engine.instances.kinds import CustomKind
from metalk8s_solutions.errors import InvalidInput

Obj = dict[str, Any]
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


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


#: Metadata the API server owns: never sent back.
SERVER_FIELDS = ("managedFields", "creationTimestamp", "uid", "generation", "selfLink")


def new_document(kind: CustomKind, namespace: str, name: str, spec: Mapping[str, Any]) -> Obj:
    """A new instance of ``kind`` called ``namespace/name`` with ``spec``."""
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def editable(obj: Mapping[str, Any]) -> Obj:
    """What a user edits of an instance: all but its status and the server's field records."""
    shown = {k: v for k, v in obj.items() if k != "status"}
    meta = shown.get("metadata") or {}
    shown["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return shown


def merge_posted(current: Mapping[str, Any], posted: Mapping[str, Any]) -> Obj:
    """What saving ``posted`` over the instance ``current`` sends (empty ``current``: a new
    one), from a page's form or YAML and from the JSON API alike: each field ``posted`` names
    replaces the current one (a spec is posted whole), and ``metadata`` merges key by key, so
    what is not posted (labels, ``resourceVersion``) keeps its value."""
    meta = {**(current.get("metadata") or {}), **(posted.get("metadata") or {})}
    return {**current, **posted, "metadata": meta}


def clean_body(body: Mapping[str, Any], kind: CustomKind, namespace: str, name: str) -> Obj:
    """``body`` as ``kind``'s instance ``namespace/name``, without status or server metadata."""
    obj = dict(body)
    obj["apiVersion"] = kind.api_version
    obj["kind"] = kind.kind
    meta = dict(obj.get("metadata") or {})
    meta["name"], meta["namespace"] = name, namespace
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    obj["metadata"] = meta
    obj.pop("status", None)
    return obj


def check_schema(
    kind: CustomKind,
    obj: Mapping[str, Any],
    before: Mapping[str, Any] | None = None,
    *,
    values: bool = True,
    hint: str = "",
) -> None:
    """Refuse every field the schema does not declare (the API server would drop it silently)
    and, with ``values``, every value that breaks the schema; fields already in ``before`` are
    not reported again."""
    known = set(unknown_fields(before, kind.schema)) if before is not None else set()
    errors = [e for e in unknown_fields(obj, kind.schema) if e not in known]
    if values:
        errors += validation_errors(obj, kind.schema)
    if errors:
        name = (obj.get("metadata") or {}).get("name")
        raise InvalidInput(
            f"{kind.kind} {name} does not match the {kind.api_version} schema: "
            + "; ".join(errors[:10]),
            hint=hint or "nothing was sent; fix the values",
        )
