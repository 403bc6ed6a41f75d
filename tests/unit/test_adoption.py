"""Adopting what MetalK8s deployed (pure parts): names MetalK8s accepts, and the plan merge."""

from __future__ import annotations

from typing import Any

import pytest

from metalk8s_solutions.cluster.apply import Action, Change, ObjectKey
from metalk8s_solutions.engine.adoption import SaltObjects, adopt, is_ours, role_names
from metalk8s_solutions.engine.desired import (
    VersionContent,
    check_env_name,
    check_not_system_namespace,
)
from metalk8s_solutions.errors import InvalidInput, Refused

from .test_env_desired import content as sol_content


@pytest.mark.parametrize("name", ["prod", "Team_A.test", "A", "a" * 63, "x-1_2.Y"])
def test_environment_names_are_label_values_when_namespaces_are_given(name: str) -> None:
    assert check_env_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a.", "_a", "a b", "a/b", "a" * 64])
def test_environment_names_that_no_label_can_hold_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid name"):
        check_env_name(name)


def test_without_namespaces_the_name_must_be_a_namespace_name() -> None:
    assert check_env_name("prod", namespaced=False) == "prod"
    with pytest.raises(InvalidInput, match="for its namespace") as err:
        check_env_name("Team_A", namespaced=False)
    assert "--namespace" in (err.value.hint or "")
    assert "-N team-a" in (err.value.hint or "")


def obj(kind: str, name: str, ns: str = "ns", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if ns:
        meta["namespace"] = ns
    return {"kind": kind, "metadata": meta}


def test_a_create_of_a_metalk8s_object_becomes_a_replace_and_the_rest_is_deleted() -> None:
    ours = obj("Deployment", "s-operator", **{"app.kubernetes.io/managed-by": "metalk8s-solutions"})
    sa = obj(
        "ServiceAccount", "s-operator", **{"app.kubernetes.io/managed-by": "metalk8s-solutions"}
    )
    changes = [
        Change(Action.CREATE, ObjectKey("Deployment", "ns", "s-operator"), ours),
        Change(Action.CREATE, ObjectKey("ServiceAccount", "ns", "s-operator"), sa),
    ]
    salt_deployment = obj("Deployment", "s-operator", app="s-operator")
    salt_deployment["spec"] = {"selector": {"matchLabels": {"app": "s-operator"}}}
    salt = SaltObjects(
        objects=[
            salt_deployment,
            obj("RoleBinding", "s-operator-role-s-manager", app="s-operator"),
        ],
        cluster_roles=[obj("ClusterRole", "s-leader", ns="")],
    )
    merged = {str(c.key): c for c in adopt(changes, salt)}
    replaced = merged["Deployment ns/s-operator"]
    assert replaced.action is Action.REPLACE and replaced.desired is ours
    assert "selector app=s-operator (immutable)" in replaced.note
    assert merged["ServiceAccount ns/s-operator"].action is Action.CREATE
    assert merged["RoleBinding ns/s-operator-role-s-manager"].action is Action.DELETE
    assert merged["ClusterRole s-leader"].action is Action.DELETE
    assert is_ours(ours) and not is_ours(salt.objects[0])


def test_role_names_of_every_imported_version() -> None:
    versions: list[VersionContent] = [
        sol_content("1.0.0", ({"kind": "Role", "metadata": {"name": "a"}},)),
        sol_content(
            "2.0.0", ({"kind": "ClusterRole", "metadata": {"name": "b"}}, {"kind": "Role"})
        ),
    ]
    names = role_names(versions)
    assert names["sol"].roles == {"a"} and names["sol"].cluster_roles == {"b"}


@pytest.mark.parametrize(
    "ns",
    ["default", "kube-system", "kube-public", "kube-node-lease", "kube-x", "metalk8s-solutions"],
)
def test_system_namespaces_are_refused(ns: str) -> None:
    with pytest.raises(Refused, match=f"namespace {ns} is a system namespace") as err:
        check_not_system_namespace(ns)
    assert "delete" not in str(err.value)


def test_other_namespaces_are_accepted() -> None:
    assert check_not_system_namespace("prod") == "prod"
    assert check_not_system_namespace("metalk8s-monitoring-x") == "metalk8s-monitoring-x"
