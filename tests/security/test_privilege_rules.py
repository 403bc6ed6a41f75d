"""Least privilege: what role.yaml may grant, and what our own pods may do (pure, fast)."""

from __future__ import annotations

from typing import Any

import pytest

from metalk8s_solutions.api.crd import broad_grants, check_role, privileged_grants
from metalk8s_solutions.api.manifest import ImageRef, SolutionManifest, UiSpec
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import (
    Settings,
    VersionContent,
    privileged_approval,
)
from metalk8s_solutions.errors import Refused

DIGEST = "sha256:" + "a" * 64
RBAC = "rbac.authorization.k8s.io/v1"


def role(*rules: dict[str, Any], kind: str = "Role") -> dict[str, Any]:
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": {"name": "operator"},
        "rules": list(rules),
    }


def content(*roles: dict[str, Any], ui: bool = False) -> VersionContent:
    manifest = SolutionManifest(
        name="sol",
        version="1.0.0",
        images=(ImageRef("sol-operator", "1.0.0"), ImageRef("sol-ui", "1.0.0")),
        operator_image=ImageRef("sol-operator", "1.0.0"),
        display_name="Sol",
        ui=UiSpec(image=ImageRef("sol-ui", "1.0.0")) if ui else None,
    )
    return VersionContent(manifest, roles=roles, digests={"sol-operator:1.0.0": DIGEST})


def deploy(version: VersionContent, settings: Settings | None = None) -> list[dict[str, Any]]:
    return desired_environment(
        "prod",
        {"prod": {"sol": "1.0.0"}},
        {("sol", "1.0.0"): version},
        settings or Settings(endpoint="registry.local:5000"),
    )


#: The finding's own example: every group and resource, and the verbs that climb out of RBAC.
FINDING = {
    "apiGroups": ["*"],
    "resources": ["*"],
    "verbs": ["get", "escalate", "bind", "impersonate"],
}
#: Rules that reach beyond the environment's namespaces even through a RoleBinding.
PRIVILEGED = {
    "escalate": {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles"],
        "verbs": ["escalate"],
    },
    "bind": {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]},
    "impersonate": {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
    "pods/exec": {"apiGroups": [""], "resources": ["pods", "pods/exec"], "verbs": ["create"]},
    "pods/attach": {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["get"]},
    "token": {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    "namespace": {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch"]},
    "the finding": FINDING,
    "core wildcard": {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
    "'*' verbs on roles": {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles"],
        "verbs": ["*"],
    },
}
#: Broad but bounded to the namespaces a RoleBinding grants them in, and what MetalK8s's example
#: Solution asks for (issue 17): deployed with no approval; ``validate`` warns (SOL052, SOL055).
BROAD = {
    "wildcard groups": {"apiGroups": ["*"], "resources": ["things"], "verbs": ["get"]},
    "wildcard resources": {"apiGroups": ["ex.com"], "resources": ["*"], "verbs": ["get"]},
    "wildcard verbs": {"apiGroups": ["ex.com"], "resources": ["things"], "verbs": ["*"]},
    "every secret": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
    "secrets watch": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"]},
}
HARMLESS = {
    "named secret": {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["sol-tls"],
        "verbs": ["get", "update"],
    },
    "create secrets": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    "own things": {"apiGroups": ["ex.com"], "resources": ["things"], "verbs": ["get", "patch"]},
    "configmaps": {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
}


@pytest.mark.parametrize("rule", PRIVILEGED.values(), ids=PRIVILEGED.keys())
def test_privileged_rules_are_refused_by_default(rule: dict[str, Any]) -> None:
    with pytest.raises(Refused, match="--allow-privileged-role") as caught:
        deploy(content(role(rule)))
    assert "nothing was changed" in (caught.value.hint or "")


def test_the_findings_role_names_every_reason() -> None:
    with pytest.raises(Refused) as caught:
        deploy(content(role(FINDING)))
    message = str(caught.value)
    for reason in ("escalate", "bind", "impersonate", "pods/attach", "serviceaccounts/token"):
        assert reason in message


@pytest.mark.parametrize("kind", ["Role", "ClusterRole"])
def test_checks_are_on_rules_not_on_kinds(kind: str) -> None:
    rule = PRIVILEGED["escalate"]
    with pytest.raises(Refused, match="escalate"):
        deploy(content(role(rule, kind=kind)))
    assert privileged_grants(rule) == ["verb escalate"]


@pytest.mark.parametrize("rule", HARMLESS.values(), ids=HARMLESS.keys())
def test_least_privilege_rules_pass(rule: dict[str, Any]) -> None:
    assert privileged_grants(rule) == []
    objects = deploy(content(role(rule)))
    assert [o["rules"] for o in objects if o["kind"] == "Role"] == [[rule]]


@pytest.mark.parametrize("rule", BROAD.values(), ids=BROAD.keys())
def test_broad_rules_bounded_to_the_namespace_pass_without_approval(rule: dict[str, Any]) -> None:
    assert privileged_grants(rule) == []
    assert broad_grants(rule)
    objects = deploy(content(role(rule)))
    assert [o["rules"] for o in objects if o["kind"] == "Role"] == [[rule]]


@pytest.mark.parametrize("rule", PRIVILEGED.values(), ids=PRIVILEGED.keys())
def test_an_approval_lets_exactly_that_solution_through(rule: dict[str, Any]) -> None:
    approval = privileged_approval(content(role(rule)))
    approved = Settings(endpoint="registry.local:5000", privileged=frozenset({approval}))
    objects = deploy(content(role(rule)), approved)
    assert [o["rules"] for o in objects if o["kind"] == "Role"] == [[rule]]
    other = Settings(endpoint="registry.local:5000", privileged=frozenset({"other"}))
    with pytest.raises(Refused):
        deploy(content(role(rule)), other)
    named = Settings(endpoint="registry.local:5000", privileged=frozenset({"sol"}))
    with pytest.raises(Refused):  # a bare name approves no rule
        deploy(content(role(rule)), named)


def test_an_approval_covers_the_rules_approved_not_new_ones() -> None:
    approval = privileged_approval(content(role(PRIVILEGED["bind"])))
    assert approval.startswith("sol@")
    approved = Settings(endpoint="registry.local:5000", privileged=frozenset({approval}))
    with pytest.raises(Refused, match="impersonate"):
        deploy(content(role(PRIVILEGED["bind"], PRIVILEGED["impersonate"])), approved)


def test_cluster_admin_is_refused_even_when_approved() -> None:
    admin = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    approved = Settings(endpoint="registry.local:5000", privileged=frozenset({"sol"}))
    with pytest.raises(Refused, match="cluster-admin"):
        deploy(content(role(admin)), approved)


def test_validate_warns_about_privileged_verbs_and_secrets() -> None:
    doc = role(PRIVILEGED["bind"], BROAD["every secret"], HARMLESS["named secret"])
    rules = [f.rule for f in check_role(doc, "operator/deploy/role.yaml")]
    assert rules == ["SOL054", "SOL055"]


# -- our own pods -----------------------------------------------------------------------------


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] == "Deployment"
    }


def test_operator_and_ui_pods_are_restricted() -> None:
    specs = pod_specs(deploy(content(role(HARMLESS["own things"]), ui=True)))
    assert sorted(specs) == ["sol-operator", "sol-ui"]
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc.get("privileged") is not True, name
        # A read-only root file system still gets a writable /tmp.
        tmp = [m for c in spec["containers"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[tmp[0]["name"]], name
