"""Roles of role.yaml granted as MetalK8s grants them (issue 17 item 3): every Role and
ClusterRole bound by RoleBindings in each namespace of the environment, under names that never
collide, with no flag; what a RoleBinding cannot grant is warned about, not refused."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from metalk8s_solutions.api.crd import check_role, cluster_scoped_grants, privileged_grants
from metalk8s_solutions.api.manifest import ImageRef, SolutionManifest
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import (
    Settings,
    VersionContent,
    check_roles,
    role_warnings,
)
from metalk8s_solutions.errors import Refused
from roles_support import metalk8s_example_roles, metalk8s_legacy_role

GROUP = "clock.example.test"
DIGEST = "sha256:" + "b" * 64
SETTINGS = Settings(endpoint="reg.local:5000")
EXAMPLE = metalk8s_example_roles(GROUP, ("clockservers", "versionservers"))


def content(
    version: str, roles: list[Any], crds: tuple[dict[str, Any], ...] = ()
) -> VersionContent:
    manifest = SolutionManifest(
        name="clock",
        version=version,
        images=(ImageRef("clock-operator", version),),
        operator_image=ImageRef("clock-operator", version),
        display_name="Clock",
    )
    return VersionContent(
        manifest, roles=tuple(roles), crds=crds, digests={f"clock-operator:{version}": DIGEST}
    )


def deploy(
    env: str,
    namespaces: tuple[str, ...],
    version: str = "1.1.2-dev",
    roles: list[Any] = EXAMPLE,
    settings: Settings = SETTINGS,
) -> list[dict[str, Any]]:
    return desired_environment(
        env,
        {ns: {"clock": version} for ns in namespaces},
        {("clock", version): content(version, roles)},
        settings,
    )


def rbac(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    return {
        f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o
        for o in objects
        if o["kind"] in kinds
    }


def test_the_example_roles_deploy_with_no_flag_each_bound_in_each_namespace() -> None:
    objects = rbac(deploy("prod", ("prod", "prod-2")))
    cluster_roles = [d for d in EXAMPLE if d["kind"] == "ClusterRole"]
    assert len(cluster_roles) == 9
    for doc in cluster_roles:
        name = doc["metadata"]["name"]
        role = objects.pop(f"ClusterRole//solutions:prod:clock-1.1.2-dev:{name}")
        assert role["rules"] == doc["rules"]  # every rule, as MetalK8s creates it
        for ns in ("prod", "prod-2"):
            binding = objects.pop(f"RoleBinding/{ns}/clock-1.1.2-dev-{name}")
            assert binding["roleRef"] == {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"solutions:prod:clock-1.1.2-dev:{name}",
            }
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": "clock-operator", "namespace": ns}
            ]
    for ns in ("prod", "prod-2"):
        assert objects.pop(f"Role/{ns}/clock-leader-election-role")["rules"] == EXAMPLE[1]["rules"]
        assert objects.pop(f"RoleBinding/{ns}/clock-leader-election-role")["roleRef"]["kind"] == (
            "Role"
        )
    assert objects == {}  # and no ClusterRoleBinding: nothing is granted outside the namespaces


def test_names_never_collide_between_environments_and_versions() -> None:
    keys: list[str] = []
    for env, version in (("test", "1.0.3"), ("prod", "1.1.2-dev"), ("prod-b", "1.1.2-dev")):
        keys += rbac(deploy(env, (env, f"{env}-x"), version))
    assert len(keys) == len(set(keys))
    cluster = {k for k in keys if k.startswith("ClusterRole/")}
    assert len(cluster) == 3 * 9


def test_what_a_rolebinding_cannot_grant_is_a_warning_that_says_what_it_needs() -> None:
    version = content("1.1.2-dev", EXAMPLE)
    assert check_roles(version) == []
    warnings = role_warnings(version, cluster_scope_allowed=False)
    assert len(warnings) == 3
    tokens, reviews, urls = warnings
    assert (
        "ClusterRole metrics-auth-role" in tokens and "authentication.k8s.io/tokenreviews" in tokens
    )
    assert "authorization.k8s.io/subjectaccessreviews" in reviews
    assert "ClusterRole metrics-reader" in urls and "nonResourceURLs /metrics" in urls
    for line in warnings:
        assert "cannot grant" in line and "--allow-cluster-scope" in line
    assert role_warnings(version, cluster_scope_allowed=True) == []


def test_cluster_scope_allowed_gives_those_rules_a_cluster_role_binding() -> None:
    allowed = Settings(endpoint="reg.local:5000", cluster_scope=frozenset({"clock"}))
    objects = rbac(deploy("prod", ("prod", "prod-2"), settings=allowed))
    binding = objects[
        "ClusterRoleBinding//solutions:prod:clock-1.1.2-dev:metrics-auth-role:cluster"
    ]
    assert [s["namespace"] for s in binding["subjects"]] == ["prod", "prod-2"]
    assert "ClusterRole//solutions:prod:clock-1.1.2-dev:metrics-auth-role" not in objects
    assert "ClusterRoleBinding//solutions:prod:clock-1.1.2-dev:manager-role:cluster" not in objects
    assert "RoleBinding/prod/clock-1.1.2-dev-manager-role" in objects


def test_the_legacy_role_with_wildcards_and_secrets_deploys_with_no_flag() -> None:
    legacy = [metalk8s_legacy_role("clock", "example-solution.metalk8s.scality.com")]
    objects = rbac(deploy("prod", ("prod",), "1.0.3", legacy))
    assert objects["Role/prod/clock-operator"]["rules"] == legacy[0]["rules"]
    assert role_warnings(content("1.0.3", legacy), cluster_scope_allowed=False) == []
    assert [privileged_grants(rule) for rule in legacy[0]["rules"]] == [[], [], [], []]


#: Rules that reach beyond the namespaces even through a RoleBinding: still refused.
BEYOND = {
    "core wildcard reaches exec": ({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}),
    "wildcard groups reach tokens": (
        {"apiGroups": ["*"], "resources": ["serviceaccounts/token"], "verbs": ["create"]}
    ),
    "'*' verbs impersonate": (
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["*"]}
    ),
    "'*' verbs escalate": (
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["*"]}
    ),
    "'*' verbs on namespaces": ({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["*"]}),
    "subresource wildcard": ({"apiGroups": [""], "resources": ["*/exec"], "verbs": ["create"]}),
}


@pytest.mark.parametrize("rule", BEYOND.values(), ids=BEYOND.keys())
def test_rules_reaching_beyond_the_namespace_stay_refused(rule: dict[str, Any]) -> None:
    assert privileged_grants(rule)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}
    with pytest.raises(Refused, match="--allow-privileged-role"):
        deploy("prod", ("prod",), roles=[{**role, "metadata": {"name": "op"}, "rules": [rule]}])


def test_a_wildcard_on_the_own_group_needs_cluster_scope_only_for_its_cluster_scoped_crds() -> None:
    rule = {"apiGroups": [GROUP], "resources": ["*"], "verbs": ["*"]}
    assert cluster_scoped_grants(rule) == []
    assert cluster_scoped_grants(rule, [(GROUP, "clocks")]) == [f"{GROUP}/clocks"]
    crd = {"spec": {"group": GROUP, "scope": "Cluster", "names": {"plural": "clocks"}}}
    doc = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "all"},
        "rules": [rule],
    }
    assert len(role_warnings(content("1.0.0", [doc], (crd,)), cluster_scope_allowed=False)) == 1
    assert role_warnings(content("1.0.0", [doc]), cluster_scope_allowed=False) == []


def test_validate_warns_per_rule_a_rolebinding_cannot_grant() -> None:
    findings = [f for doc in EXAMPLE for f in check_role(doc, "operator/deploy/role.yaml")]
    sol053 = [f.message for f in findings if f.rule == "SOL053"]
    assert len(sol053) == 3
    assert all("--allow-cluster-scope" in m for m in sol053)
    assert sol053[2].startswith("ClusterRole metrics-reader: rules[0] grants nonResourceURLs")
    assert {f.rule for f in findings} == {"SOL052", "SOL053"}  # '*' verbs of the admin roles


def test_an_approval_recorded_before_issue_17_still_covers_its_version() -> None:
    bind = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]}
    secrets = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
    doc = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "op"},
        "rules": [bind, secrets],
    }
    # What the release before recorded: a digest of both rules (every secret was privileged).
    lines = [
        'Role op rule ""/secrets (every secret: secrets without resourceNames)',
        "Role op rule rbac.authorization.k8s.io/roles (verb bind)",
    ]
    old = "clock@" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    recorded = Settings(endpoint="reg.local:5000", privileged=frozenset({old}))
    objects = rbac(deploy("prod", ("prod",), "1.0.0", [doc], recorded))
    assert objects["Role/prod/clock-op"]["rules"] == [bind, secrets]
    with pytest.raises(Refused, match="verb bind"):  # and nothing else approves it
        deploy("prod", ("prod",), "1.0.0", [doc], Settings(endpoint="reg.local:5000"))


def test_validate_knows_the_archives_cluster_scoped_crds(tmp_path: Any) -> None:
    """A rule on the archive's own cluster-scoped CRD cannot be granted by a RoleBinding either:
    validate says so (SOL053) as add-solution does."""
    from conftest import make_source  # noqa: PLC0415
    from metalk8s_solutions.engine.validate import ValidateOptions, validate  # noqa: PLC0415

    src = make_source(tmp_path / "src")
    crd = src / "operator" / "deploy" / "crds" / "example.yaml"
    namespaced = validate(ValidateOptions(src)).findings
    assert not [f for f in namespaced if f.rule == "SOL053"]
    crd.write_text(crd.read_text().replace("scope: Namespaced", "scope: Cluster"))
    findings = [f for f in validate(ValidateOptions(src)).findings if f.rule == "SOL053"]
    assert len(findings) == 1 and "examples" in findings[0].message, findings
