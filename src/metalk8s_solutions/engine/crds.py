"""CRD upgrade safety, as pure functions over plain documents (testable in milliseconds).

CRDs are cluster-wide: one active version of a solution supplies them for every environment, and
a careless change loses data silently.  Before a CRD is applied, :func:`check_transition` compares
the live CRD and its objects with the new CRD and reports every way the change would break:

- a changed scope (Namespaced <-> Cluster);
- a version listed in ``status.storedVersions`` that the new CRD no longer serves (objects stored
  in it could no longer be read);
- a version that an operator deployed in an environment needs, no longer served;
- an existing object that does not validate against the new schema of a version it is read in;
- a field removed from the schema while objects still hold data in it (it would be pruned);
- a conversion webhook whose service does not exist (looked up in the namespace it names).

CRDs are also owned: :func:`foreign_owner` says whether a live CRD is a given solution's (our
``managed-by`` label and its ``part-of``) or whose it is, so that activation never takes over a
CRD that something else installed.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from metalk8s_solutions.engine.names import closest

Doc = Mapping[str, Any]

PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    served: bool
    storage: bool
    deprecated: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class CrdInfo:
    """The parts of a CRD that activation reasons about."""

    name: str
    group: str
    kind: str
    plural: str
    scope: str
    versions: dict[str, VersionInfo]
    stored_versions: tuple[str, ...] = ()
    conversion: Mapping[str, Any] = field(default_factory=dict)

    @property
    def storage_version(self) -> str:
        return next((v.name for v in self.versions.values() if v.storage), "")

    @property
    def served(self) -> set[str]:
        return {v.name for v in self.versions.values() if v.served}

    @property
    def namespaced(self) -> bool:
        return self.scope == "Namespaced"


def crd_info(doc: Doc) -> CrdInfo:
    spec = doc.get("spec") or {}
    names = spec.get("names") or {}
    versions: dict[str, VersionInfo] = {}
    for version in spec.get("versions") or []:
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        versions[str(version.get("name"))] = VersionInfo(
            name=str(version.get("name")),
            served=bool(version.get("served")),
            storage=bool(version.get("storage")),
            deprecated=bool(version.get("deprecated", False)),
            schema=schema,
        )
    status = doc.get("status") or {}
    return CrdInfo(
        name=str((doc.get("metadata") or {}).get("name", "")),
        group=str(spec.get("group", "")),
        kind=str(names.get("kind", "")),
        plural=str(names.get("plural", "")),
        scope=str(spec.get("scope", "Namespaced")),
        versions=versions,
        stored_versions=tuple(status.get("storedVersions") or ()),
        conversion=_dict(spec.get("conversion")),
    )


@dataclass(frozen=True)
class Problem:
    """One reason a CRD change is unsafe; ``objects`` are the resources it concerns."""

    crd: str
    message: str
    objects: tuple[str, ...] = ()

    def __str__(self) -> str:
        listed = ""
        if self.objects:
            shown = ", ".join(self.objects[:10])
            more = f" and {len(self.objects) - 10} more" if len(self.objects) > 10 else ""
            listed = f" [{shown}{more}]"
        return f"{self.crd}: {self.message}{listed}"


# -- schema handling ------------------------------------------------------------------------


def to_json_schema(schema: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural schema) -> JSON Schema that jsonschema can check.

    ``nullable`` allows null, ``x-kubernetes-int-or-string`` allows both types,
    ``x-kubernetes-preserve-unknown-fields`` and embedded resources accept anything below.
    Unknown fields are allowed, as the API server prunes rather than rejects them (pruned data
    is reported separately by :func:`removed_fields`).
    """
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format", "example"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [*out.get("anyOf", []), {"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        out.pop("type", None)
    if schema.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    return out


def validation_errors(obj: Doc, schema: Mapping[str, Any]) -> list[str]:
    """Messages for each place where ``obj`` breaks ``schema`` (empty when it validates)."""
    if not schema:
        return []
    import jsonschema  # noqa: PLC0415 - costly to import; only CRD transitions with objects need it

    validator = jsonschema.Draft7Validator(to_json_schema(dict(schema)))
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind", "status")}
    errors = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(root)"
        errors.append(f"{where}: {error.message}")
    return errors


def unknown_fields(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """A message per field of ``obj`` that ``schema`` (structural) does not declare.

    The API server prunes such fields silently: a typo would be reported as a success. Fields
    under ``x-kubernetes-preserve-unknown-fields``, ``additionalProperties`` and embedded
    resources are accepted; ``apiVersion``, ``kind`` and ``metadata`` at the root are not
    checked. Each message suggests the closest declared field.
    """
    if not schema:
        return []
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    found: list[str] = []
    _unknown(body, schema, "", found)
    return found


def _unknown(value: Any, schema: Any, path: str, found: list[str]) -> None:
    if not isinstance(schema, Mapping) or schema.get("x-kubernetes-embedded-resource"):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _unknown(item, schema.get("items"), f"{path}[{i}]", found)
        return
    if not isinstance(value, Mapping):
        return
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    extra = schema.get("additionalProperties")
    keeps = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
    for key, child in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key in props:
            _unknown(child, props[key], where, found)
        elif isinstance(extra, Mapping):
            _unknown(child, extra, where, found)
        elif not keeps:
            near = closest(str(key), map(str, props))
            hint = f" (did you mean {path + '.' if path else ''}{near}?)" if near else ""
            known = ", ".join(sorted(map(str, props))) or "none"
            found.append(f"{where}: unknown field{hint}; the fields here: {known}")


def _leaf_paths(schema: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if not isinstance(schema, dict):
        return
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, child in props.items():
            path = (*prefix, str(name))
            yield path
            yield from _leaf_paths(child, path)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _leaf_paths(items, (*prefix, "[]"))


def _preserves_unknown(schema: Any, path: tuple[str, ...]) -> bool:
    """True when some prefix of ``path`` keeps unknown fields (nothing is pruned there)."""
    node = schema
    for part in path:
        if not isinstance(node, dict):
            return False
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return True
        node = node.get("items") if part == "[]" else (node.get("properties") or {}).get(part)
    return isinstance(node, dict) and bool(node.get("x-kubernetes-preserve-unknown-fields"))


def removed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Field paths declared in ``old`` that ``new`` would prune."""
    new_paths = set(_leaf_paths(new))
    return sorted(
        path
        for path in set(_leaf_paths(old)) - new_paths
        if path[0] not in ("metadata", "apiVersion", "kind", "status")
        and not _preserves_unknown(new, path[:-1])
        and not any(
            path[:i] in new_paths and _preserves_unknown(new, path[:i]) for i in range(1, len(path))
        )
    )


def has_data(obj: Any, path: tuple[str, ...]) -> bool:
    """Whether ``obj`` holds a value at ``path`` (``[]`` walks every list item)."""
    if not path:
        return obj is not None
    head, rest = path[0], path[1:]
    if head == "[]":
        return isinstance(obj, list) and any(has_data(item, rest) for item in obj)
    return isinstance(obj, dict) and head in obj and has_data(obj[head], rest)


# -- the checks -----------------------------------------------------------------------------


def object_name(obj: Doc) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def check_transition(
    live: Doc | None,
    new: Doc,
    objects: Iterable[Doc] = (),
    needed: Mapping[str, Iterable[str]] | None = None,
    services: Iterable[str] = (),
) -> list[Problem]:
    """Everything that makes replacing ``live`` by ``new`` unsafe.

    ``objects`` are the existing custom resources of this CRD, ``needed`` maps a reason (e.g.
    ``"operator example-solution 1.0.0 in env prod"``) to the CRD versions it needs served, and
    ``services`` lists ``namespace/name`` of existing Services (for conversion webhooks).
    """
    after = crd_info(new)
    objects = list(objects)
    problems = _live_problems(crd_info(live), after, objects) if live is not None else []
    for reason, versions in (needed or {}).items():
        missing = sorted(set(versions) - after.served)
        if missing:
            problems.append(
                Problem(
                    after.name,
                    f"{reason} needs version(s) {', '.join(missing)}, which the new CRD does "
                    "not serve",
                )
            )
    return problems + _webhook_problems(new, set(services))


def _live_problems(before: CrdInfo, after: CrdInfo, objects: list[Doc]) -> list[Problem]:
    problems: list[Problem] = []
    if before.scope != after.scope:
        problems.append(
            Problem(after.name, f"scope would change from {before.scope} to {after.scope}")
        )
    lost = [v for v in before.stored_versions if v not in after.served]
    # storedVersions only says a version may hold objects: with none, nothing can be lost
    # (the activation forgets those versions, see bridge_crd).
    if lost and objects:
        problems.append(
            Problem(
                after.name,
                f"objects are stored in version(s) {', '.join(lost)} that the new CRD no "
                "longer serves: they could not be read any more",
                tuple(object_name(o) for o in objects),
            )
        )
    readable = (before.served & after.served) | {after.storage_version}
    for version in sorted(readable):
        schema = after.versions[version].schema if version in after.versions else {}
        for obj in objects:
            errors = validation_errors(obj, schema)
            if errors:
                problems.append(
                    Problem(
                        after.name,
                        f"{object_name(obj)} does not validate against the new schema of "
                        f"{version}: {'; '.join(errors[:3])}",
                        (object_name(obj),),
                    )
                )
    for version in sorted(before.served & set(after.versions)):
        removed = removed_fields(before.versions[version].schema, after.versions[version].schema)
        for path in removed:
            holders = tuple(object_name(o) for o in objects if has_data(o, path))
            if holders:
                dotted = ".".join(path).replace(".[]", "[]")
                problems.append(
                    Problem(
                        after.name,
                        f"field {dotted} is removed from {version} while objects hold data "
                        "in it (it would be pruned)",
                        holders,
                    )
                )
    return problems


def dropped_stored_versions(live: Doc, new: Doc) -> list[str]:
    """Versions ``live`` lists in ``status.storedVersions`` that ``new`` does not declare.

    The API server refuses ``new`` as long as they are listed, even when no object exists.
    """
    declared = set(crd_info(new).versions)
    return [v for v in crd_info(live).stored_versions if v not in declared]


def bridge_crd(live: Doc, new: Doc) -> dict[str, Any] | None:
    """``new`` plus, unserved, the versions of :func:`dropped_stored_versions` (else None).

    Applied first, it makes ``new``'s storage version the storage version while the API server
    still accepts ``storedVersions``; once the objects are rewritten and ``storedVersions`` is
    trimmed to it, ``new`` itself applies.
    """
    dropped = dropped_stored_versions(live, new)
    if not dropped:
        return None
    bridge = copy.deepcopy(dict(new))
    live_versions = {str(v.get("name")): v for v in (live.get("spec") or {}).get("versions") or []}
    for name in dropped:
        version = copy.deepcopy(dict(live_versions.get(name) or {"name": name}))
        version.update(served=False, storage=False)
        version.pop("deprecated", None)
        version.pop("deprecationWarning", None)
        bridge["spec"]["versions"].append(version)
    return bridge


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def uses_webhook(doc: Doc) -> bool:
    """Whether the CRD converts between its versions with a webhook."""
    return _dict(_dict(doc.get("spec")).get("conversion")).get("strategy") == "Webhook"


def webhook_service(doc: Doc) -> tuple[str, str] | None:
    """``(namespace, name)`` of the Service of the CRD's conversion webhook, if it names both.

    Any shape is accepted (archive content): what is not a mapping counts as absent.
    """
    conversion = _dict(_dict(doc.get("spec")).get("conversion"))
    client = _dict(_dict(conversion.get("webhook")).get("clientConfig"))
    service = _dict(client.get("service"))
    namespace, name = service.get("namespace"), service.get("name")
    if isinstance(namespace, str) and namespace and isinstance(name, str) and name:
        return namespace, name
    return None


def _webhook_problems(doc: Doc, services: set[str]) -> list[Problem]:
    name = str(_dict(doc.get("metadata")).get("name", ""))
    if not uses_webhook(doc):
        return []
    ref = webhook_service(doc)
    if ref is None:
        return [Problem(name, "conversion webhook has no service reference (namespace/name)")]
    # The Service must be in the namespace that the CRD names: one of the same name elsewhere
    # is not the one the API server would call.
    if f"{ref[0]}/{ref[1]}" not in services:
        return [
            Problem(
                name, f"conversion webhook service {ref[1]} does not exist in namespace {ref[0]}"
            )
        ]
    return []


def _field_managers(live: Doc) -> list[str]:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return sorted(
        {str(e.get("manager")) for e in entries if isinstance(e, dict) and e.get("manager")}
    )


def foreign_owner(live: Doc, solution: str, manager: str) -> str | None:
    """None when the live CRD belongs to ``solution``, else a description of its owner.

    A CRD is a solution's only when it carries both ``managed-by: <manager>`` (ours) and
    ``part-of: <solution>``, and ``manager`` applied it (labels alone can be put by anyone); a
    CRD of another solution, or one with no or foreign labels (created by hand, by Helm, by
    another operator) belongs to someone else.
    """
    labels = (live.get("metadata") or {}).get("labels") or {}
    part_of = labels.get(PART_OF)
    if labels.get(MANAGED_BY) == manager:
        if part_of == solution and applied_by(live, manager):
            return None
        if part_of == solution:
            appliers = ", ".join(_field_managers(live)) or "none"
            return (
                f"something labelled for {solution} that Solutions never applied "
                f"(field managers: {appliers})"
            )
        return f"solution {part_of}" if part_of else f"{manager} (with no {PART_OF} label)"
    owner = part_of or labels.get(MANAGED_BY)
    facts = [f"{key}={labels[key]}" for key in (PART_OF, MANAGED_BY) if labels.get(key)]
    managers = _field_managers(live)
    if managers:
        facts.append(f"field managers: {', '.join(managers)}")
    described = f" ({'; '.join(facts)})" if facts else ""
    return f"{owner or 'something other than Solutions'}{described}"


def applied_by(live: Doc, manager: str) -> bool:
    """Whether ``manager`` has applied fields of the live object (its managedFields)."""
    return manager in _field_managers(live)


def spec_diff(live: Doc | None, new: Doc) -> str:
    """A unified diff of the CRD spec, live -> new (``live`` None: everything is added)."""

    def text(doc: Doc | None) -> list[str]:
        if doc is None:
            return []
        spec = doc.get("spec") or {}
        return yaml.safe_dump(spec, sort_keys=True, default_flow_style=False).splitlines(True)

    name = str((new.get("metadata") or {}).get("name", ""))
    return "".join(difflib.unified_diff(text(live), text(new), f"live/{name}", f"new/{name}", n=2))


def normalized_for_apply(doc: Doc) -> dict[str, Any]:
    """The fields of a CRD that we own when applying (no status, no server metadata)."""
    meta = doc.get("metadata") or {}
    return {
        "apiVersion": doc.get("apiVersion", "apiextensions.k8s.io/v1"),
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": meta.get("name"),
            **({"labels": dict(meta["labels"])} if meta.get("labels") else {}),
            **({"annotations": dict(meta["annotations"])} if meta.get("annotations") else {}),
        },
        "spec": copy.deepcopy(dict(doc.get("spec") or {})),
    }


# -- apiextensions.k8s.io/v1beta1 -> v1 -----------------------------------------------------

CRD_V1 = "apiextensions.k8s.io/v1"
CRD_V1BETA1 = "apiextensions.k8s.io/v1beta1"
#: Root fields whose schema the API server fixes itself (``metadata`` may only restrict
#: ``name``/``generateName``): left as they are.
_ROOT_RESERVED = ("apiVersion", "kind", "metadata")


#: Sample custom resources beside the CRDs (operator-sdk's ``<group>_<version>_<kind>_cr.yaml``):
#: MetalK8s applies only ``*_crd.yaml``; the samples are offered as instance templates.
def crd_name(doc: object) -> str:
    """``metadata.name`` of a document of any shape (archive content), else ``""``."""
    meta = doc.get("metadata") if isinstance(doc, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return str(name) if name is not None else ""


def is_v1beta1_crd(doc: object) -> bool:
    """Whether ``doc`` is an ``apiextensions.k8s.io/v1beta1`` CustomResourceDefinition."""
    return (
        isinstance(doc, Mapping)
        and doc.get("apiVersion") == CRD_V1BETA1
        and doc.get("kind") == "CustomResourceDefinition"
    )


def _typed(node: Any, keep_unknown: bool, root: bool = False) -> Any:
    """A v1beta1 schema node made structural: every node typed, pruning as v1beta1 did.

    A node without ``type`` becomes ``object`` when it declares properties, ``array`` when it
    has items, and otherwise keeps any value (``x-kubernetes-preserve-unknown-fields``, which
    is what an untyped v1beta1 node accepted). With ``keep_unknown`` (``preserveUnknownFields``
    unset or true, v1beta1's default) every object node keeps the fields it does not declare,
    as the v1beta1 API server kept them.
    """
    if not isinstance(node, Mapping):
        return copy.deepcopy(node)
    # allOf/anyOf/oneOf/not only validate values (no types inside): they are copied as they are.
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions") and isinstance(value, Mapping):
            out[key] = {
                k: _typed(v, keep_unknown and not (root and k in _ROOT_RESERVED))
                for k, v in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = _typed(value, keep_unknown)
        else:
            out[key] = copy.deepcopy(value)
    for junctor in ("anyOf", "oneOf"):
        if not out.get("type") and _int_or_string(out.get(junctor)):
            del out[junctor]  # the int-or-string idiom of v1beta1 generators
            out["x-kubernetes-int-or-string"] = True
    if not out.get("type") and not out.get("x-kubernetes-int-or-string"):
        if "properties" in out or "additionalProperties" in out or root:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if (
        keep_unknown
        and out.get("type") == "object"
        and not isinstance(out.get("additionalProperties"), Mapping)
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _int_or_string(branches: Any) -> bool:
    return isinstance(branches, list) and sorted(
        (str(b.get("type")) if isinstance(b, Mapping) and len(b) == 1 else "") for b in branches
    ) == ["integer", "string"]


def _columns(columns: Any) -> list[dict[str, Any]]:
    """v1beta1 printer columns (``JSONPath``) as v1 ones (``jsonPath``)."""
    out = []
    for column in columns if isinstance(columns, list) else []:
        if isinstance(column, Mapping):
            col = {k: copy.deepcopy(v) for k, v in column.items() if k != "JSONPath"}
            if "JSONPath" in column:
                col["jsonPath"] = column["JSONPath"]
            out.append(col)
    return out


def _conversion(conversion: Any) -> dict[str, Any] | None:
    """v1beta1 ``spec.conversion`` (webhook fields at its top) as v1's (under ``webhook``)."""
    if not isinstance(conversion, Mapping) or not conversion:
        return None
    strategy = conversion.get("strategy", "None")
    if strategy != "Webhook":
        return {"strategy": strategy}
    reviews = conversion.get("conversionReviewVersions")
    webhook: dict[str, Any] = {
        "conversionReviewVersions": list(reviews) if isinstance(reviews, list) else ["v1beta1"]
    }
    if isinstance(conversion.get("webhookClientConfig"), Mapping):
        webhook["clientConfig"] = copy.deepcopy(dict(conversion["webhookClientConfig"]))
    return {"strategy": "Webhook", "webhook": webhook}


def convert_v1beta1(doc: Doc) -> dict[str, Any]:
    """An ``apiextensions.k8s.io/v1beta1`` CRD as the equivalent ``v1`` CRD.

    No current API server serves v1beta1 (removed in Kubernetes 1.22), while MetalK8s 1.0.x-era
    archives (operator-sdk 0.x) ship it. The conversion follows the API server's own defaulting
    and conversion of v1beta1 objects:

    - ``spec.version`` alone becomes the one served storage version;
    - the top-level ``validation``, ``subresources`` and ``additionalPrinterColumns`` (``JSONPath``
      -> ``jsonPath``) are copied to every version that does not set its own;
    - ``preserveUnknownFields`` (true unless set to false in v1beta1; v1 requires false) becomes
      ``x-kubernetes-preserve-unknown-fields: true`` on every object node, and a version without
      any schema keeps every field, so nothing is pruned that v1beta1 kept;
    - untyped schema nodes get the type their content implies (the root is an object);
    - a webhook conversion moves under ``conversion.webhook``.

    A document that is not a v1beta1 CRD is returned unchanged (as a copy).
    """
    if not is_v1beta1_crd(doc):
        return copy.deepcopy(dict(doc))
    spec = _dict(doc.get("spec"))
    keep_unknown = spec.get("preserveUnknownFields", True) is not False
    shared_schema = _dict(spec.get("validation")).get("openAPIV3Schema")
    shared_sub = spec.get("subresources")
    shared_columns = spec.get("additionalPrinterColumns")
    versions_in = [v for v in spec.get("versions") or [] if isinstance(v, Mapping)]
    if not versions_in and spec.get("version"):
        versions_in = [{"name": spec["version"], "served": True, "storage": True}]
    versions: list[dict[str, Any]] = []
    for version in versions_in:
        out: dict[str, Any] = {
            "name": version.get("name"),
            "served": version.get("served", True),
            "storage": version.get("storage", len(versions_in) == 1),
        }
        for key in ("deprecated", "deprecationWarning"):
            if key in version:
                out[key] = version[key]
        own = _dict(version.get("schema")).get("openAPIV3Schema")
        schema = own if own is not None else shared_schema
        if isinstance(schema, Mapping):
            root = _typed(schema, keep_unknown, root=True)
        else:
            root = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        out["schema"] = {"openAPIV3Schema": root}
        sub = version.get("subresources", shared_sub)
        if isinstance(sub, Mapping) and sub:
            out["subresources"] = copy.deepcopy(dict(sub))
        columns = _columns(version.get("additionalPrinterColumns", shared_columns))
        if columns:
            out["additionalPrinterColumns"] = columns
        versions.append(out)
    new_spec: dict[str, Any] = {
        "group": spec.get("group"),
        "names": copy.deepcopy(spec.get("names")),
        "scope": spec.get("scope", "Namespaced"),
        "versions": versions,
    }
    conversion = _conversion(spec.get("conversion"))
    if conversion:
        new_spec["conversion"] = conversion
    meta = _dict(doc.get("metadata"))
    return {
        "apiVersion": CRD_V1,
        "kind": "CustomResourceDefinition",
        "metadata": {
            k: copy.deepcopy(v) for k, v in meta.items() if k in ("name", "labels", "annotations")
        },
        "spec": new_spec,
    }
