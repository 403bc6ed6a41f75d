"""Issue #20 items 2 and 7, the pure parts: the closest name, and fields a CRD does not declare."""

from __future__ import annotations

from typing import Any

from metalk8s_solutions.engine.crds import unknown_fields
from metalk8s_solutions.engine.names import closest, did_you_mean

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "version": {"type": "string"},
                "servers": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"port": {"type": "integer"}}},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "open": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": {"type": "object", "properties": {"a": {}}}},
                },
                "template": {"type": "object", "x-kubernetes-embedded-resource": True},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def test_closest_name() -> None:
    assert closest("example-soluton", ["example-solution", "other"]) == "example-solution"
    assert closest("prd", ["prod", "staging"]) == "prod"
    assert closest("zzz", ["prod", "staging"]) is None
    assert closest("prod", ["prod"]) is None  # the name itself is not a suggestion
    assert closest("Gadget", ["gadget"]) == "gadget"
    assert did_you_mean("replica", ["replicas", "version"]) == " (did you mean replicas?)"
    assert did_you_mean("nothing", []) == ""


def test_unknown_fields_name_the_closest_declared_field() -> None:
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"labels": {"a": "b"}}}
    assert unknown_fields({**obj, "spec": {"replicas": 3}}, SCHEMA) == []
    found = unknown_fields({**obj, "spec": {"replica": 3}}, SCHEMA)
    assert len(found) == 1 and found[0].startswith("spec.replica: unknown field")
    assert "did you mean spec.replicas?" in found[0]
    assert "spex" in unknown_fields({"spex": {}}, SCHEMA)[0]
    assert "did you mean spec?" in unknown_fields({"spex": {}}, SCHEMA)[0]
    nested = unknown_fields({"spec": {"servers": [{"port": 1}, {"prot": 2}]}}, SCHEMA)
    assert nested == [
        "spec.servers[1].prot: unknown field (did you mean spec.servers[1].port?); "
        "the fields here: port"
    ]
    assert "did you mean" not in unknown_fields({"spec": {"zzzzzz": 1}}, SCHEMA)[0]


def test_unknown_fields_honour_open_schemas() -> None:
    spec = {
        "labels": {"anything": "x"},
        "extra": {"whatever": {"deep": 1}},
        "open": {"free": 1, "known": {"a": 1}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}},
    }
    assert unknown_fields({"spec": spec, "status": {"anything": 1}}, SCHEMA) == []
    # Below a preserved level, the declared properties are still checked.
    found = unknown_fields({"spec": {"open": {"known": {"b": 1}}}}, SCHEMA)
    assert [f.split(":")[0] for f in found] == ["spec.open.known.b"]
    assert unknown_fields({"spec": {"x": 1}}, {}) == []  # no schema: nothing to check
