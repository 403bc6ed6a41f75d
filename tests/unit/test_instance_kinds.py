"""Issue 19 item 1: one kind type, one CRD reading and one JSONPath for the CLI and the web."""

from __future__ import annotations

from typing import Any

import pytest

from metalk8s_solutions.engine.instances import (
    CustomKind,
    check_schema,
    clean_body,
    editable,
    find_kind,
    instance_row,
    instance_summary,
    json_path,
    kind_of_crd,
    kinds_of_crds,
    new_document,
)
from metalk8s_solutions.errors import InvalidInput

COLUMNS = [
    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
    {"name": "Wide", "type": "string", "jsonPath": ".spec.wide", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
SCHEMA = {
    "type": "object",
    "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
}


def crd(versions: list[dict[str, Any]], scope: str = "Namespaced") -> dict[str, Any]:
    return {
        "metadata": {"name": "gadgets.ex.com"},
        "spec": {
            "group": "ex.com",
            "scope": scope,
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": versions,
        },
    }


def version(name: str, storage: bool = False, served: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "served": served,
        "storage": storage,
        "schema": {"openAPIV3Schema": {**SCHEMA, "description": name}},
        "additionalPrinterColumns": COLUMNS,
    }


def test_a_kind_is_read_at_the_stored_version_or_as_the_cluster_serves_it() -> None:
    archive = crd([version("v1alpha1"), version("v1", storage=True)])
    kind = kind_of_crd(archive)
    assert kind is not None and kind.api_version == "ex.com/v1"
    assert kind.schema["description"] == "v1"
    assert [c["name"] for c in kind.shown_columns] == ["Size", "Age"]
    # The cluster serves only v1alpha1 (an older operator's CRD): that one, as it describes it.
    live = crd([version("v1alpha1", storage=True), version("v1", served=False)])
    served = kind_of_crd(archive, live)
    assert served is not None and served.version == "v1alpha1"
    assert kind_of_crd(archive, crd([version("v2", storage=True)])) is None
    assert kind_of_crd(crd([version("v1", storage=True)], scope="Cluster")) is None
    assert [k.kind for k in kinds_of_crds([archive, crd([], scope="Cluster")])] == ["Gadget"]


def test_a_kind_is_found_by_kind_plural_or_plural_dot_group() -> None:
    kind = kind_of_crd(crd([version("v1", storage=True)]))
    assert kind is not None
    for text in ("Gadget", "gadget", "gadgets", "gadgets.ex.com"):
        assert find_kind([kind], text, "prod", "sol") is kind
    with pytest.raises(InvalidInput) as err:
        find_kind([kind], "Gadgte", "prod", "sol")
    assert "Gadgte is not a kind of sol (its kinds: Gadget)" in err.value.message
    assert "did you mean Gadget" in err.value.message
    assert kind.path("prod", "a b") == "/apis/ex.com/v1/namespaces/prod/gadgets/a%20b"


def test_json_path_reads_what_printer_columns_use() -> None:
    obj = {
        "spec": {"size": 3, "servers": [{"port": 80}, {"port": 443}], "dotted-key": "x"},
        "status": {"conditions": [{"type": "Ready", "reason": "Done"}]},
    }
    assert json_path(obj, ".spec.size") == 3
    assert json_path(obj, "$.spec.size") == 3
    assert json_path(obj, "spec.size") == 3
    assert json_path(obj, ".spec.servers[1].port") == 443
    assert json_path(obj, ".spec.servers[2].port") is None
    assert json_path(obj, ".spec.dotted-key") == "x"
    assert json_path(obj, '.status.conditions[?(@.type=="Ready")].reason') == "Done"
    assert json_path(obj, ".status.conditions[?(@.type=='Ready')].reason") == "Done"
    assert json_path(obj, '.status.conditions[?(@.type=="Gone")].reason') is None
    assert json_path(obj, ".spec.size.deeper") is None


def test_one_instance_as_the_web_lists_it_and_as_the_cli_prints_it() -> None:
    kind = CustomKind("Gadget", "ex.com", "v1", "gadgets", SCHEMA, tuple(COLUMNS))
    obj = {
        "metadata": {"name": "g", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"size": 3},
    }
    row = instance_row(kind, obj)
    assert row["columns"] == {"Size": 3, "Age": "2026-01-01T00:00:00Z"}
    assert row["status"]["ready"] is None and row["status"]["message"] == "no readiness reported"
    summary = instance_summary(kind, obj)
    assert summary["columns"] == {"Size": 3} and summary["apiVersion"] == "ex.com/v1"


def test_a_body_is_cleaned_and_checked_against_the_schema() -> None:
    kind = CustomKind("Gadget", "ex.com", "v1", "gadgets", SCHEMA, ())
    body = {
        "metadata": {"name": "x", "uid": "u", "managedFields": [], "labels": {"a": "b"}},
        "spec": {"size": "big", "colour": "red"},
        "status": {"ready": True},
    }
    obj = clean_body(body, kind, "prod", "g")
    assert obj["metadata"] == {"name": "g", "namespace": "prod", "labels": {"a": "b"}}
    assert obj["apiVersion"] == "ex.com/v1" and "status" not in obj
    with pytest.raises(InvalidInput) as fields:
        check_schema(kind, obj, values=False, hint="fix the field names")
    assert "spec.colour: unknown field" in fields.value.message
    assert "big" not in fields.value.message and fields.value.hint == "fix the field names"
    with pytest.raises(InvalidInput) as values:
        check_schema(kind, obj)
    assert "spec.colour" in values.value.message and "'big' is not of type" in values.value.message
    check_schema(kind, {**obj, "spec": {"size": 2}})


def test_what_a_form_starts_from_and_what_a_user_edits() -> None:
    kind = CustomKind("Gadget", "ex.com", "v1", "gadgets", SCHEMA, ())
    assert new_document(kind, "prod", "g", {"size": 1}) == {
        "apiVersion": "ex.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "prod"},
        "spec": {"size": 1},
    }
    live = {
        "kind": "Gadget",
        "metadata": {"name": "g", "managedFields": [{}], "resourceVersion": "7"},
        "spec": {"size": 1},
        "status": {"ready": True},
    }
    assert editable(live) == {
        "kind": "Gadget",
        "metadata": {"name": "g", "resourceVersion": "7"},
        "spec": {"size": 1},
    }
