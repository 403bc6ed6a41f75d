"""What the operator makes of a VersionServer, as data: image choice, objects, status."""

from __future__ import annotations

import dataclasses
from typing import Any

from example_solution_operator.config import parse_config
from example_solution_operator.resources import (
    AVAILABLE,
    IMAGE_NOT_LISTED,
    NAME_CONFLICT,
    PROGRESSING,
    UNKNOWN_VERSION,
    Resolution,
    VersionServer,
    compute_status,
    controller_of,
    deployment_manifest,
    is_controlled_by,
    resolve_image,
    service_manifest,
)

from .support import operator_config

DIGEST = "sha256:" + "c" * 64
CONFIG = parse_config(
    operator_config({"1.0.0": ["reg/example-solution-1.0.0"]})
    + """\
  1.1.0:
    - endpoint: reg/other
      images: [example-solution-operator:1.1.0]
    - endpoint: reg/example-solution-1.1.0
      images: [base-server:1.1.0@"""
    + DIGEST
    + """]
  2.0.0:
    - endpoint: reg/example-solution-2.0.0
      images: [example-solution-operator:2.0.0]
"""
)


def versionserver(**spec: Any) -> VersionServer:
    return VersionServer.from_body(
        {
            "apiVersion": "example-solution.metalk8s.scality.com/v1beta1",
            "kind": "VersionServer",
            "metadata": {"name": "web", "namespace": "env-a", "uid": "u-1", "generation": 4},
            "spec": {"version": "1.0.0", **spec},
        }
    )


def test_the_image_comes_from_the_config_entry_of_the_version() -> None:
    assert resolve_image(CONFIG, "1.0.0") == Resolution(
        "reg/example-solution-1.0.0/base-server:1.0.0"
    )


def test_a_digest_is_preferred_and_the_repository_listing_the_image_is_chosen() -> None:
    assert (
        resolve_image(CONFIG, "1.1.0").image == f"reg/example-solution-1.1.0/base-server@{DIGEST}"
    )


def test_an_unknown_version_is_a_reason_not_an_error() -> None:
    resolution = resolve_image(CONFIG, "9.9.9")
    assert resolution.image is None
    assert resolution.reason == UNKNOWN_VERSION
    assert "'9.9.9' is not available" in resolution.message
    assert "1.0.0, 1.1.0, 2.0.0" in resolution.message


def test_a_version_without_base_server_is_reported() -> None:
    resolution = resolve_image(CONFIG, "2.0.0")
    assert (resolution.image, resolution.reason) == (None, IMAGE_NOT_LISTED)


def test_defaults_of_a_minimal_spec() -> None:
    vs = versionserver()
    assert (vs.replicas, vs.log_level, vs.generation) == (1, None, 4)


def test_the_deployment_is_owned_labelled_and_hardened() -> None:
    vs = versionserver(replicas=3, logLevel="debug")
    deployment = deployment_manifest(vs, "reg/x/base-server:1.0.0")
    meta = deployment["metadata"]
    assert (meta["name"], meta["namespace"]) == ("web", "env-a")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "example-solution.metalk8s.scality.com/v1beta1",
            "kind": "VersionServer",
            "name": "web",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "example-solution-operator"
    assert meta["labels"]["app.kubernetes.io/part-of"] == "example-solution"
    assert meta["labels"]["app.kubernetes.io/version"] == "1.0.0"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    # The selector must not contain the version: an upgrade is a rolling update, not a new set.
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "base-server",
        "app.kubernetes.io/instance": "web",
    }
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "reg/x/base-server:1.0.0"
    assert container["args"] == ["--port=8080", "--log-level=debug"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert is_controlled_by(deployment, vs)
    assert controller_of(deployment) == (vs.api_version, "web", "u-1")


def test_the_service_selects_the_pods_of_the_deployment() -> None:
    vs = versionserver()
    service = service_manifest(vs)
    deployment = deployment_manifest(vs, "img")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert is_controlled_by(service, vs)
    assert not is_controlled_by(service, dataclasses.replace(vs, uid="u-2"))


def deployment_state(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 2,
    updated: int = 2,
    ready: int = 2,
    available: int = 2,
    version: str = "1.0.0",
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation, "labels": {"app.kubernetes.io/version": version}},
        "spec": {"template": {"spec": {"containers": [{"image": f"reg/base-server:{version}"}]}}},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
        },
    }


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    (condition,) = status["conditions"]
    assert condition["type"] == "Ready"
    return condition


def test_status_of_a_complete_rollout() -> None:
    vs = versionserver(replicas=2)
    status = compute_status(vs, Resolution("img"), deployment_state(), "T1")
    assert status["observedGeneration"] == 4
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert (status["version"], status["image"]) == ("1.0.0", "reg/base-server:1.0.0")
    condition = ready_condition(status)
    assert (condition["status"], condition["reason"]) == ("True", AVAILABLE)
    assert condition["lastTransitionTime"] == "T1"
    assert condition["observedGeneration"] == 4


def test_status_while_rolling_out() -> None:
    vs = versionserver(replicas=3)
    cases = [
        (
            deployment_state(observed=1),
            "the Deployment controller has not seen the latest change yet",
        ),
        (deployment_state(updated=2, replicas=3), "2 of 3 replicas updated"),
        (deployment_state(replicas=4, updated=3), "1 old replicas still terminating"),
        (
            deployment_state(replicas=3, updated=3, available=1, ready=1),
            "1 of 3 replicas available",
        ),
    ]
    for deployment, message in cases:
        condition = ready_condition(compute_status(vs, Resolution("img"), deployment, "T"))
        assert (condition["status"], condition["reason"]) == ("False", PROGRESSING)
        assert condition["message"] == message


def test_zero_replicas_is_ready() -> None:
    vs = versionserver(replicas=0)
    deployment = deployment_state(replicas=0, updated=0, ready=0, available=0)
    status = compute_status(vs, Resolution("img"), deployment, "T")
    assert ready_condition(status)["status"] == "True"
    assert status["readyReplicas"] == 0


def test_an_unknown_version_keeps_reporting_what_runs() -> None:
    vs = versionserver(version="9.9.9", replicas=2)
    resolution = resolve_image(CONFIG, "9.9.9")
    status = compute_status(vs, resolution, deployment_state(version="1.0.0"), "T")
    condition = ready_condition(status)
    assert (condition["status"], condition["reason"]) == ("False", UNKNOWN_VERSION)
    assert status["version"] == "1.0.0"  # the previous Deployment keeps running
    assert status["readyReplicas"] == 2


def test_no_deployment_yet() -> None:
    status = compute_status(versionserver(), Resolution("img"), None, "T")
    assert ready_condition(status)["reason"] == PROGRESSING
    assert status["version"] is None and status["image"] is None  # removed by the merge patch


def test_a_name_conflict_is_reported() -> None:
    status = compute_status(
        versionserver(), Resolution("img"), deployment_state(), "T", conflict="taken"
    )
    condition = ready_condition(status)
    assert (condition["reason"], condition["message"]) == (NAME_CONFLICT, "taken")
    assert status["readyReplicas"] == 0  # the foreign Deployment's pods are not ours


def test_last_transition_time_only_moves_on_a_transition() -> None:
    first = compute_status(versionserver(replicas=2), Resolution("img"), deployment_state(), "T1")
    vs = VersionServer.from_body(
        {
            "apiVersion": "example-solution.metalk8s.scality.com/v1beta1",
            "metadata": {"name": "web", "namespace": "env-a", "uid": "u-1", "generation": 5},
            "spec": {"version": "1.0.0", "replicas": 2},
            "status": first,
        }
    )
    same = compute_status(vs, Resolution("img"), deployment_state(), "T2")
    assert ready_condition(same)["lastTransitionTime"] == "T1"
    changed = compute_status(vs, Resolution("img"), deployment_state(ready=1, available=1), "T3")
    assert ready_condition(changed)["lastTransitionTime"] == "T3"
