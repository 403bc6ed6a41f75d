"""Activation's CRD safety checks on the example's CRDs: every supported upgrade and downgrade
passes, the unsafe ones are caught (the same transitions run on a real API server in
test_crd_evolution.py)."""

from __future__ import annotations

from typing import Any

import pytest

from .support import crd_document


@pytest.fixture
def crds() -> Any:
    """Activation's checks (skipped only while that module is not in the tree)."""
    return pytest.importorskip("metalk8s_solutions.engine.crds")


WITH_LOG_LEVEL = {
    "apiVersion": "example-solution.metalk8s.scality.com/v1beta1",
    "kind": "VersionServer",
    "metadata": {"name": "web", "namespace": "env-a"},
    "spec": {"version": "1.1.0", "replicas": 2, "logLevel": "debug"},
}
PLAIN = {
    "apiVersion": "example-solution.metalk8s.scality.com/v1alpha1",
    "kind": "VersionServer",
    "metadata": {"name": "old", "namespace": "env-a"},
    "spec": {"version": "1.0.0", "replicas": 1},
}


def test_the_shipped_crds_evolve_as_documented() -> None:
    def versions(release: str) -> list[tuple[str, bool, bool, bool]]:
        return [
            (v["name"], v["served"], v["storage"], v.get("deprecated", False))
            for v in crd_document(release)["spec"]["versions"]
        ]

    assert versions("1.0.0") == [("v1alpha1", True, True, False)]
    assert versions("1.1.0") == [("v1alpha1", True, True, False), ("v1beta1", True, False, False)]
    assert versions("2.0.0") == [("v1alpha1", True, False, True), ("v1beta1", True, True, False)]
    for release in ("1.1.0", "2.0.0"):
        assert crd_document(release)["spec"]["conversion"] == {"strategy": "None"}
        fields = [
            sorted(v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])
            for v in crd_document(release)["spec"]["versions"]
        ]
        assert fields[0] == fields[1], "without conversion, every version has the same fields"


def live(version: str, stored: list[str]) -> dict[str, Any]:
    """The CRD of ``version`` as the API server shows it, with its stored versions."""
    return {**crd_document(version), "status": {"storedVersions": stored}}


@pytest.mark.parametrize(
    ("before", "stored", "after", "objects"),
    [
        ("1.0.0", ["v1alpha1"], "1.1.0", [PLAIN]),
        ("1.1.0", ["v1alpha1"], "2.0.0", [PLAIN, WITH_LOG_LEVEL]),
        ("2.0.0", ["v1alpha1", "v1beta1"], "1.1.0", [PLAIN, WITH_LOG_LEVEL]),
        ("1.0.0", ["v1alpha1"], "2.0.0", [PLAIN]),
        ("1.1.0", ["v1alpha1"], "1.0.0", [PLAIN]),  # nobody uses logLevel yet
    ],
)
def test_safe_transitions(
    crds: Any, before: str, stored: list[str], after: str, objects: list[dict[str, Any]]
) -> None:
    assert crds.check_transition(live(before, stored), crd_document(after), objects) == []


def test_2_0_0_to_1_0_0_is_refused_objects_stored_in_v1beta1(crds: Any) -> None:
    problems = crds.check_transition(
        live("2.0.0", ["v1alpha1", "v1beta1"]), crd_document("1.0.0"), [PLAIN, WITH_LOG_LEVEL]
    )
    messages = [str(p) for p in problems]
    assert any("stored in version(s) v1beta1" in m for m in messages), messages
    assert any("field spec.logLevel is removed" in m for m in messages), messages


def test_1_1_0_to_1_0_0_is_refused_once_log_level_holds_data(crds: Any) -> None:
    problems = crds.check_transition(
        live("1.1.0", ["v1alpha1"]), crd_document("1.0.0"), [WITH_LOG_LEVEL]
    )
    assert [p.objects for p in problems] == [("env-a/web",)]
    assert "spec.logLevel" in str(problems[0])
