"""CRD transitions: what activation allows, and the precise reason when it refuses."""

from __future__ import annotations

import copy
from typing import Any

from crd_versions import CRD_NAME, crd
from metalk8s_solutions.engine.crds import (
    bridge_crd,
    check_transition,
    crd_info,
    dropped_stored_versions,
    removed_fields,
    spec_diff,
    validation_errors,
)


def live(version: str, stored: list[str]) -> dict[str, Any]:
    doc = crd(version)
    doc["status"] = {"storedVersions": stored}
    return doc


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "widgets.test.solutions/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {"version": "1.0.0", **spec},
    }


def test_upgrades_along_the_example_path_are_safe() -> None:
    objects = [widget("a", replicas=2)]
    assert check_transition(live("1.0.0", ["v1alpha1"]), crd("1.1.0"), objects) == []
    assert check_transition(live("1.1.0", ["v1alpha1"]), crd("2.0.0"), objects) == []
    # 2.0.0 -> 1.1.0 after migration (objects stored in v1beta1 only): still served, safe.
    assert check_transition(live("2.0.0", ["v1beta1"]), crd("1.1.0"), objects) == []


def test_downgrade_to_a_version_that_cannot_read_stored_objects_is_refused() -> None:
    problems = check_transition(
        live("2.0.0", ["v1beta1"]), crd("1.0.0"), [widget("a"), widget("b")]
    )
    assert [str(p) for p in problems] == [
        f"{CRD_NAME}: objects are stored in version(s) v1beta1 that the new CRD no longer "
        "serves: they could not be read any more [prod/a, prod/b]"
    ]


def test_a_stored_version_without_objects_is_no_reason_to_refuse() -> None:
    # storedVersions lists v1beta1, but no object exists: nothing is stored, nothing is lost.
    assert check_transition(live("2.0.0", ["v1beta1"]), crd("1.0.0"), []) == []


def test_the_bridge_keeps_dropped_stored_versions_unserved() -> None:
    before = live("2.0.0", ["v1beta1"])
    assert dropped_stored_versions(before, crd("1.0.0")) == ["v1beta1"]
    assert dropped_stored_versions(before, crd("1.1.0")) == []
    assert bridge_crd(before, crd("1.1.0")) is None
    bridge = bridge_crd(before, crd("1.0.0"))
    assert bridge is not None
    info = crd_info(bridge)
    assert sorted(info.versions) == ["v1alpha1", "v1beta1"]
    assert info.served == {"v1alpha1"} and info.storage_version == "v1alpha1"
    assert info.versions["v1beta1"].schema == crd_info(before).versions["v1beta1"].schema
    assert len(crd("1.0.0")["spec"]["versions"]) == 1  # the new document is left as it was


def test_objects_that_break_the_new_schema_are_listed() -> None:
    newer = crd("1.1.0")
    spec = newer["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["replicas"]["maximum"] = 5
    problems = check_transition(live("1.0.0", ["v1alpha1"]), newer, [widget("big", replicas=9)])
    assert len(problems) == 1
    assert "prod/big does not validate against the new schema of v1alpha1" in str(problems[0])
    assert "replicas: 9 is greater than the maximum of 5" in str(problems[0])


def test_removed_field_with_data_is_reported() -> None:
    older = live("1.1.0", ["v1alpha1"])
    newer = crd("1.0.0")  # no logLevel
    assert removed_fields(
        older["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        newer["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
    ) == [("spec", "logLevel")]
    problems = check_transition(older, newer, [widget("quiet"), widget("chatty", logLevel="debug")])
    assert [str(p) for p in problems] == [
        f"{CRD_NAME}: field spec.logLevel is removed from v1alpha1 while objects hold data in it "
        "(it would be pruned) [prod/chatty]"
    ]


def test_versions_needed_by_deployed_operators_must_stay_served() -> None:
    problems = check_transition(
        live("1.1.0", ["v1alpha1"]),
        crd("1.0.0"),
        needed={"the operator of example-solution 1.1.0 in environment prod (prod)": {"v1beta1"}},
    )
    assert [p.message for p in problems] == [
        "the operator of example-solution 1.1.0 in environment prod (prod) needs version(s) "
        "v1beta1, which the new CRD does not serve"
    ]


def test_scope_change_and_webhooks() -> None:
    cluster_scoped = copy.deepcopy(crd("1.0.0"))
    cluster_scoped["spec"]["scope"] = "Cluster"
    assert "scope would change from Namespaced to Cluster" in str(
        check_transition(live("1.0.0", ["v1alpha1"]), cluster_scoped)[0]
    )
    hooked = copy.deepcopy(crd("2.0.0"))
    hooked["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "ops", "name": "convert"}},
        },
    }
    assert [p.message for p in check_transition(None, hooked)] == [
        "conversion webhook service convert does not exist in namespace ops"
    ]
    assert check_transition(None, hooked, services=["ops/convert"]) == []
    # A Service of that name in another namespace is not the webhook's.
    assert check_transition(None, hooked, services=["default/convert"]) != []


def test_openapi_extensions_are_understood() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "port": {"x-kubernetes-int-or-string": True},
                    "note": {"type": "string", "nullable": True},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }
        },
    }
    ok = {"spec": {"port": "http", "note": None, "extra": {"anything": [1, 2]}}}
    assert validation_errors(ok, schema) == []
    assert validation_errors({"spec": {"port": 80, "note": 3}}, schema) == [
        "spec.note: 3 is not of type 'string', 'null'"
    ]


def test_spec_diff_shows_the_change() -> None:
    diff = spec_diff(live("1.0.0", ["v1alpha1"]), crd("1.1.0"))
    assert diff.startswith(f"--- live/{CRD_NAME}\n+++ new/{CRD_NAME}\n")
    assert "+- name: v1beta1\n" in diff
    assert spec_diff(crd("1.1.0"), crd("1.1.0")) == ""
