"""Forms from a CRD's OpenAPI schema: fields, values parsed back, and readable validation.

Pure functions, no I/O.  Scalars (string, integer, number, boolean, enums) and lists of
scalars get an input each; nested objects are flattened into dotted paths (``spec.a.b``).
Whatever a form cannot express (lists of objects, free-form maps) is left to the YAML view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from metalk8s_solutions.api.yamldoc import load_yaml_document
from metalk8s_solutions.errors import InvalidInput

MAX_DEPTH = 6


@dataclass(frozen=True)
class Field:
    """One form input for the value at ``path`` under ``spec``."""

    path: tuple[str, ...]
    type: str  # string | integer | number | boolean | enum | list
    required: bool = False
    description: str = ""
    default: Any = None
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    item_type: str | None = None  # for lists: the type of each item

    @property
    def name(self) -> str:
        return "spec." + ".".join(self.path)

    @property
    def label(self) -> str:
        last = self.path[-1]
        spaced = "".join(f" {c.lower()}" if c.isupper() else c for c in last)
        return spaced[:1].upper() + spaced[1:]

    @property
    def html_id(self) -> str:
        return "f-" + "-".join(self.path)

    def constraints(self) -> str:
        """A short human summary: range, length, allowed values."""
        parts: list[str] = []
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{_num(self.minimum)} to {_num(self.maximum)}")
        elif self.minimum is not None:
            parts.append(f"≥ {_num(self.minimum)}")
        elif self.maximum is not None:
            parts.append(f"≤ {_num(self.maximum)}")
        if self.max_length is not None:
            parts.append(f"at most {self.max_length} characters")
        if self.default is not None:
            parts.append(f"default {self.default}")
        return ", ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class FormSpec:
    """The form for one kind: its fields and the schema the values are validated against."""

    fields: tuple[Field, ...]
    spec_schema: Mapping[str, Any] = field(default_factory=dict)
    yaml_only: tuple[str, ...] = ()  # paths the form cannot edit (YAML view only)


def spec_form(openapi_schema: Mapping[str, Any]) -> FormSpec:
    """The form for ``spec`` of a CRD version's ``openAPIV3Schema``."""
    spec = (openapi_schema.get("properties") or {}).get("spec") or {}
    fields: list[Field] = []
    others: list[str] = []
    _walk(spec, (), True, fields, others, 0)
    return FormSpec(tuple(fields), spec, tuple(others))


def _walk(
    schema: Mapping[str, Any],
    path: tuple[str, ...],
    parent_required: bool,
    fields: list[Field],
    others: list[str],
    depth: int,
) -> None:
    required = set(schema.get("required") or ())
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        here = (*path, str(name))
        kind = sub.get("type")
        is_required = parent_required and name in required
        if kind == "object" and sub.get("properties") and depth < MAX_DEPTH:
            _walk(sub, here, is_required, fields, others, depth + 1)
            continue
        item_type = (sub.get("items") or {}).get("type") if kind == "array" else None
        if kind in ("string", "integer", "number", "boolean") or item_type in (
            "string",
            "integer",
            "number",
        ):
            enum = tuple(str(v) for v in sub.get("enum") or ())
            fields.append(
                Field(
                    path=here,
                    type="list" if kind == "array" else ("enum" if enum else str(kind)),
                    required=is_required,
                    description=str(sub.get("description", "")).strip(),
                    default=sub.get("default"),
                    enum=enum,
                    minimum=sub.get("minimum"),
                    maximum=sub.get("maximum"),
                    min_length=sub.get("minLength"),
                    max_length=sub.get("maxLength"),
                    pattern=sub.get("pattern"),
                    item_type=item_type,
                )
            )
        else:
            others.append("spec." + ".".join(here))


def _get(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = data
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    current = data
    for part in path[:-1]:
        nxt = current.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            current[part] = nxt
        current = nxt
    current[path[-1]] = value


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    current: Any = data
    for part in path[:-1]:
        current = current.get(part) if isinstance(current, dict) else None
    if isinstance(current, dict):
        current.pop(path[-1], None)


def form_values(form: FormSpec, spec: Mapping[str, Any] | None) -> dict[str, str]:
    """What each input shows: the object's value, else the schema's default, else empty."""
    values: dict[str, str] = {}
    for f in form.fields:
        value = _get(spec or {}, f.path) if spec is not None else None
        if value is None and spec is None:
            value = f.default
        if value is None:
            values[f.name] = ""
        elif f.type == "boolean":
            values[f.name] = "true" if value else ""
        elif f.type == "list" and isinstance(value, list):
            values[f.name] = ", ".join(str(v) for v in value)
        else:
            values[f.name] = str(value)
    return values


def parse_form(
    form: FormSpec, posted: Mapping[str, str], base: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``spec`` the form describes (over ``base``) and per-field error messages."""
    spec: dict[str, Any] = yaml.safe_load(yaml.safe_dump(dict(base or {}))) or {}
    errors: dict[str, str] = {}
    for f in form.fields:
        raw = posted.get(f.name, "").strip()
        if f.type == "boolean":
            _set(spec, f.path, raw.lower() in ("true", "on", "1", "yes"))
            continue
        if raw == "":
            _drop(spec, f.path)
            if f.required:
                errors[f.name] = f"{f.label} is required"
            continue
        try:
            _set(spec, f.path, _convert(f, raw))
        except ValueError as err:
            errors[f.name] = f"{f.label}: {err}"
    if not errors:
        errors.update(validate_spec(form, spec))
    return spec, errors


def _convert(f: Field, raw: str) -> Any:
    if f.type == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
    if f.type == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if f.type == "list":
        items = [p.strip() for p in raw.split(",") if p.strip()]
        if f.item_type in ("integer", "number"):
            return [_convert(Field(f.path, f.item_type), item) for item in items]
        return items
    return raw


def validate_spec(form: FormSpec, spec: Mapping[str, Any]) -> dict[str, str]:
    """Schema violations of ``spec``, keyed by input name (``spec`` for the whole object)."""
    labels = {f.name: f.label for f in form.fields}
    errors: dict[str, str] = {}
    validator = jsonschema.Draft7Validator(_plain(form.spec_schema))
    for err in sorted(validator.iter_errors(spec), key=lambda e: list(e.path)):
        path = ".".join(str(p) for p in err.absolute_path)
        name = f"spec.{path}" if path else "spec"
        if err.validator == "required" and isinstance(err.instance, dict):
            missing = str(err.message).split("'")[1] if "'" in err.message else ""
            name = f"{name}.{missing}" if missing else name
            errors.setdefault(name, f"{labels.get(name, missing or 'a value')} is required")
            continue
        label = labels.get(name, name)
        errors.setdefault(name, f"{label}: {_message(err)}")
    return errors


def _message(err: jsonschema.ValidationError) -> str:
    schema = err.schema if isinstance(err.schema, Mapping) else {}
    if err.validator == "minimum":
        return f"must be at least {_num(schema['minimum'])}"
    if err.validator == "maximum":
        return f"must be at most {_num(schema['maximum'])}"
    if err.validator == "enum":
        return "must be one of " + ", ".join(str(v) for v in schema["enum"])
    if err.validator == "maxLength":
        return f"must be at most {schema['maxLength']} characters"
    if err.validator == "minLength":
        return f"must be at least {schema['minLength']} character(s)"
    if err.validator == "pattern":
        return f"must match {schema['pattern']}"
    if err.validator == "type":
        return f"must be of type {schema['type']}"
    return str(err.message)


def _plain(schema: Any) -> Any:
    """The schema without Kubernetes extensions (``x-kubernetes-*``) that JSON Schema ignores."""
    if isinstance(schema, Mapping):
        return {k: _plain(v) for k, v in schema.items() if not str(k).startswith("x-kubernetes")}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


def parse_yaml_object(text: str) -> dict[str, Any]:
    """A YAML document from the YAML view, as a mapping (size and depth limited)."""
    try:
        doc = load_yaml_document(text.encode(), "the YAML view")
    except Exception as err:  # the loader explains size, depth and syntax problems
        raise InvalidInput(f"the YAML is not valid: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidInput("the YAML must be a mapping (an object with apiVersion, kind, spec)")
    return doc


def to_yaml(obj: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False)
