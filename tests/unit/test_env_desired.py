"""The pure core of environments: desired objects, plans, diffs, names, --set paths."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import yaml

from metalk8s_solutions.api.manifest import ImageRef, OperatorMetrics, SolutionManifest
from metalk8s_solutions.api.monitoring import Dashboard, MonitoringContent
from metalk8s_solutions.cluster.apply import (
    APPLY_WAVES,
    KINDS,
    PRUNE_WAVES,
    Action,
    changed_fields,
    is_subset,
    plan,
    rollout_status,
)
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import (
    Settings,
    VersionContent,
    check_dns_label,
    check_roles,
)
from metalk8s_solutions.engine.instances import apply_sets, json_path, parse_path
from metalk8s_solutions.engine.monitoring import monitoring_support
from metalk8s_solutions.errors import InvalidInput, Refused

DIGEST = "sha256:" + "a" * 64
ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "operator"},
    "rules": [{"apiGroups": ["ex.com"], "resources": ["things"], "verbs": ["get"]}],
}
CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "reader"},
    "rules": [{"apiGroups": ["ex.com"], "resources": ["things"], "verbs": ["list"]}],
}


def content(version: str, roles: tuple[dict[str, Any], ...] = (ROLE,)) -> VersionContent:
    manifest = SolutionManifest(
        name="sol",
        version=version,
        images=(ImageRef("server", version), ImageRef("sol-operator", version)),
        operator_image=ImageRef("sol-operator", version),
        display_name="Sol",
    )
    return VersionContent(manifest, roles=roles, digests={f"sol-operator:{version}": DIGEST})


def contents(
    *versions: str, roles: tuple[dict[str, Any], ...] = (ROLE,)
) -> dict[tuple[str, str], VersionContent]:
    return {("sol", v): content(v, roles) for v in versions}


SETTINGS = Settings(endpoint="reg.local:5000")


def by_key(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o
        for o in objects
    }


def test_one_namespace_gets_the_operator_contract() -> None:
    objects = by_key(
        desired_environment(
            "prod", {"prod": {"sol": "1.0.0"}}, contents("1.0.0", "2.0.0"), SETTINGS
        )
    )
    assert sorted(objects) == [
        "ConfigMap/prod/sol-operator-config",
        "Deployment/prod/sol-operator",
        "Role/prod/sol-operator",
        "RoleBinding/prod/sol-operator",
        "ServiceAccount/prod/sol-operator",
        "ValidatingAdmissionPolicy//metalk8s-solutions-images-prod",
        "ValidatingAdmissionPolicyBinding//metalk8s-solutions-images-prod",
    ]
    dep = objects["Deployment/prod/sol-operator"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"reg.local:5000/sol-1.0.0/sol-operator@{DIGEST}"
    assert container["command"] == ["sol-operator", "--config=/etc/config/operator.yaml"]
    assert dep["metadata"]["labels"]["solutions.metalk8s.scality.com/environment"] == "prod"
    assert "solutions.metalk8s.scality.com/applied-hash" in dep["metadata"]["annotations"]
    config = yaml.safe_load(objects["ConfigMap/prod/sol-operator-config"]["data"]["operator.yaml"])
    assert config == {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "OperatorConfig",
        "repositories": {
            "1.0.0": [
                {
                    "endpoint": "reg.local:5000/sol-1.0.0",
                    "images": ["server:1.0.0", "sol-operator:1.0.0"],
                }
            ],
            "2.0.0": [
                {
                    "endpoint": "reg.local:5000/sol-2.0.0",
                    "images": ["server:2.0.0", "sol-operator:2.0.0"],
                }
            ],
        },
    }


def test_two_environments_and_two_versions_never_collide() -> None:
    roles = (ROLE, CLUSTER_ROLE)
    everything = contents("1.0.0", "2.0.0", roles=roles)
    names: list[str] = []
    for env, version in (("test", "1.0.0"), ("prod", "2.0.0")):
        objects = desired_environment(env, {env: {"sol": version}}, everything, SETTINGS)
        names += list(by_key(objects))
    assert len(names) == len(set(names))
    cluster = sorted(n for n in names if n.startswith("ClusterRole/"))
    assert cluster == [
        "ClusterRole//solutions:prod:sol-2.0.0:reader",
        "ClusterRole//solutions:test:sol-1.0.0:reader",
    ]
    assert not any(n.startswith("ClusterRoleBinding/") for n in names)  # bound by RoleBindings


def test_cluster_scope_needs_permission_and_cluster_admin_never_passes() -> None:
    nodes = copy.deepcopy(CLUSTER_ROLE)
    nodes["rules"].append({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]})
    # As MetalK8s: bound by RoleBindings only (which cannot grant nodes), no flag needed.
    plain = by_key(
        desired_environment(
            "e", {"e": {"sol": "1.0.0"}}, contents("1.0.0", roles=(nodes,)), SETTINGS
        )
    )
    assert plain["ClusterRole//solutions:e:sol-1.0.0:reader"]["rules"] == nodes["rules"]
    assert not [k for k in plain if k.startswith("ClusterRoleBinding/")]
    allowed = Settings(endpoint="r", cluster_scope=frozenset({"sol"}))
    objects = by_key(
        desired_environment(
            "e",
            {"e": {"sol": "1.0.0"}, "e2": {"sol": "1.0.0"}},
            contents("1.0.0", roles=(nodes,)),
            allowed,
        )
    )
    binding = objects["ClusterRoleBinding//solutions:e:sol-1.0.0:reader:cluster"]
    assert [s["namespace"] for s in binding["subjects"]] == ["e", "e2"]
    admin = copy.deepcopy(CLUSTER_ROLE)
    admin["rules"] = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    problems = check_roles(content("1.0.0", (admin,)), privileged_allowed=True)
    assert any("cluster-admin" in p for p in problems)


def test_not_imported_is_refused() -> None:
    with pytest.raises(Refused, match="not imported"):
        desired_environment("e", {"e": {"sol": "3.0.0"}}, contents("1.0.0"), SETTINGS)


@pytest.mark.parametrize("name", ["prod", "team-a-1", "a" * 63])
def test_dns_labels_accepted(name: str) -> None:
    assert check_dns_label(name, "environment name") == name


@pytest.mark.parametrize("name", ["Prod", "-a", "a-", "a_b", "a" * 64, ""])
def test_dns_labels_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="lowercase letters"):
        check_dns_label(name, "environment name")


def live_of(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: our fields plus defaults and metadata."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="u", resourceVersion="1", creationTimestamp="t")
    if live["kind"] == "Deployment":
        live["spec"]["strategy"] = {"type": "RollingUpdate"}
        container = live["spec"]["template"]["spec"]["containers"][0]
        container["terminationMessagePath"] = "/dev/termination-log"
        for env in container["env"]:
            if "valueFrom" in env:
                env["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
    return live


def test_plan_is_empty_when_live_holds_our_fields_and_orders_changes() -> None:
    desired = desired_environment(
        "p", {"p": {"sol": "1.0.0"}}, contents("1.0.0", "2.0.0"), SETTINGS
    )
    assert plan(desired, [live_of(o) for o in desired]) == []
    creates = plan(desired, [])
    assert [c.key.kind for c in creates] == [
        "ServiceAccount",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",  # before the Deployment: its pods must be admitted
        "ValidatingAdmissionPolicyBinding",
        "Deployment",
    ]
    assert all(c.action is Action.CREATE for c in creates)
    prunes = plan([], [live_of(o) for o in desired])
    assert [c.key.kind for c in prunes] == [
        "Deployment",
        "ValidatingAdmissionPolicyBinding",
        "RoleBinding",
        "Role",
        "ValidatingAdmissionPolicy",
        "ConfigMap",
        "ServiceAccount",
    ]


def test_plan_tells_drift_from_our_own_change_and_diffs_our_fields() -> None:
    desired = desired_environment(
        "p", {"p": {"sol": "1.0.0"}}, contents("1.0.0", "2.0.0"), SETTINGS
    )
    live = [live_of(o) for o in desired]
    dep = next(o for o in live if o["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
    (change,) = plan(desired, live)
    assert change.action is Action.CHANGE and change.drift
    assert "-        image: other:1" in change.diff()
    assert "terminationMessagePath" not in change.diff()  # only the fields we manage
    upgraded = desired_environment(
        "p", {"p": {"sol": "2.0.0"}}, contents("1.0.0", "2.0.0"), SETTINGS
    )
    changes = plan(upgraded, [live_of(o) for o in desired])
    assert {c.action for c in changes} == {Action.CHANGE}
    assert not any(c.drift for c in changes)


def test_a_change_is_summarised_by_the_fields_it_touches() -> None:
    desired = desired_environment(
        "p", {"p": {"sol": "1.0.0"}}, contents("1.0.0", "2.0.0"), SETTINGS
    )
    live = [live_of(o) for o in desired]
    dep = next(o for o in live if o["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
    dep["metadata"]["labels"]["extra"] = "x"  # not ours: no change
    (change,) = plan(desired, live)
    container = dep["spec"]["template"]["spec"]["containers"][0]["name"]
    assert change.summary() == f"spec.template.spec.containers[{container}].image (1 field)"
    upgraded = desired_environment(
        "p", {"p": {"sol": "2.0.0"}}, contents("1.0.0", "2.0.0"), SETTINGS
    )
    changes = plan(upgraded, [live_of(o) for o in desired])
    summaries = {c.key.kind: c.summary() for c in changes}
    assert "metadata.labels" in summaries["Deployment"]
    assert f"containers[{container}].image" in summaries["Deployment"]
    assert all(s and "\n" not in s for s in summaries.values())


def test_changed_fields_name_keys_list_items_and_whole_lists() -> None:
    before = {"a": {"b": 1, "c": [1, 2]}, "l": [{"name": "x", "v": 1}], "m": {"k": 1}}
    after = {"a": {"b": 2, "c": [1, 2, 3]}, "l": [{"name": "x", "v": 2}], "n": 1}
    assert changed_fields(before, after) == [
        ("a", "b"),
        ("a", "c"),
        ("l", "[x]", "v"),
        ("m",),
        ("n",),
    ]
    assert changed_fields({"a": [1, 2]}, {"a": [1, 3]}) == [("a", "[1]")]
    assert changed_fields(before, before) == []


def test_subset_rules() -> None:
    assert is_subset({"a": 1}, {"a": 1, "b": 2})
    assert not is_subset({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert is_subset({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]})
    assert not is_subset({"a": {"x": 1}}, {"a": None})


def test_rollout_status() -> None:
    base = {"metadata": {"generation": 2}, "spec": {"replicas": 1}}
    assert not rollout_status({**base, "status": {"observedGeneration": 1}}).ready
    old = {
        **base,
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    assert rollout_status(old).message == "1 old replicas still running"
    done = {
        **base,
        "status": {
            "observedGeneration": 2,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    assert rollout_status(done).ready


def test_set_paths() -> None:
    assert parse_path("spec.servers[1].port") == ["spec", "servers", 1, "port"]
    obj = {"spec": {"replicas": 1, "servers": [{"port": 1}]}}
    out = apply_sets(
        obj, ["spec.replicas=3", "spec.servers[0].port=8080", "spec.logLevel=debug", "spec.on=true"]
    )
    assert out["spec"] == {
        "replicas": 3,
        "servers": [{"port": 8080}],
        "logLevel": "debug",
        "on": True,
    }
    assert obj["spec"]["replicas"] == 1  # not modified in place
    with pytest.raises(InvalidInput, match="cannot be changed"):
        apply_sets(obj, ["metadata.name=x"])
    with pytest.raises(InvalidInput, match="PATH=VALUE"):
        apply_sets(obj, ["spec.replicas"])


def test_json_path_of_printer_columns() -> None:
    obj = {
        "spec": {"version": "1.0.0"},
        "status": {"conditions": [{"type": "Ready", "reason": "Done"}]},
    }
    assert json_path(obj, ".spec.version") == "1.0.0"
    assert json_path(obj, '.status.conditions[?(@.type=="Ready")].reason') == "Done"
    assert json_path(obj, ".status.missing.x") is None


# -- monitoring bound to each environment (engine/monitoring.py wired into desired objects) ---

MONITORING = MonitoringContent(
    documents=(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "sol-server"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/part-of": "sol", "app": "srv"}},
                "endpoints": [{"port": "metrics"}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "sol-alerts"},
            "spec": {
                "groups": [
                    {
                        "name": "sol",
                        "rules": [
                            {
                                "alert": "SolDown",
                                "expr": "up == 0",
                                "labels": {"severity": "critical"},
                                "annotations": {"summary": "down"},
                            }
                        ],
                    }
                ]
            },
        },
    ),
    dashboards=(Dashboard("monitoring/overview.json", "Sol", "sol-overview", '{"title":"Sol"}'),),
)


def monitored(version: str) -> VersionContent:
    base = content(version)
    manifest = dataclasses.replace(
        base.manifest, operator_metrics=OperatorMetrics(True, "http", 9090)
    )
    return dataclasses.replace(base, manifest=manifest, monitoring=MONITORING)


def test_monitoring_objects_are_bound_to_each_environment_namespace() -> None:
    everything = {("sol", "1.0.0"): monitored("1.0.0")}
    seen: dict[str, dict[str, dict[str, Any]]] = {}
    for env in ("test", "prod"):
        every = by_key(desired_environment(env, {env: {"sol": "1.0.0"}}, everything, SETTINGS))
        # (the environment's admission policy is cluster-scoped: engine/admission.py)
        objects = {k: v for k, v in every.items() if k.split("/")[1]}
        seen[env] = objects
        assert sorted(k for k in objects if k.split("/")[0] not in ("Role", "RoleBinding")) == [
            f"ConfigMap/{env}/sol-dashboard-overview",
            f"ConfigMap/{env}/sol-operator-config",
            f"Deployment/{env}/sol-operator",
            f"PrometheusRule/{env}/sol-alerts",
            f"Service/{env}/sol-operator-metrics",
            f"ServiceAccount/{env}/sol-operator",
            f"ServiceMonitor/{env}/sol-operator-metrics",
            f"ServiceMonitor/{env}/sol-server",
        ]
        for obj in objects.values():  # found, diffed and pruned like the rest
            labels = obj["metadata"]["labels"]
            assert labels["solutions.metalk8s.scality.com/environment"] == env
            assert labels["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
            assert labels["app.kubernetes.io/component"] == "operator"
            assert "solutions.metalk8s.scality.com/applied-hash" in obj["metadata"]["annotations"]
        for name in ("sol-server", "sol-operator-metrics"):
            spec = objects[f"ServiceMonitor/{env}/{name}"]["spec"]
            assert spec["namespaceSelector"] == {"matchNames": [env]}
            assert spec["selector"]["matchLabels"]["app.kubernetes.io/part-of"] == "sol"
        own = objects[f"ServiceMonitor/{env}/sol-operator-metrics"]["spec"]["selector"]
        assert own["matchLabels"]["solutions.metalk8s.scality.com/environment"] == env
        rule = objects[f"PrometheusRule/{env}/sol-alerts"]["spec"]["groups"][0]["rules"][0]
        assert rule["labels"]["namespace"] == env and rule["labels"]["environment"] == env
        board = objects[f"ConfigMap/{env}/sol-dashboard-overview"]
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert board["data"] == {"overview.json": '{"title":"Sol"}'}
        container = objects[f"Deployment/{env}/sol-operator"]["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
        service = objects[f"Service/{env}/sol-operator-metrics"]
        assert service["spec"]["ports"][0]["port"] == 9090
        assert service["spec"]["selector"] == {
            "app.kubernetes.io/name": "sol-operator",
            "app.kubernetes.io/instance": "sol-operator",
        }
    # Never scraping each other: each monitor is confined to its own namespace.
    for env, other in (("test", "prod"), ("prod", "test")):
        for key, obj in seen[env].items():
            if key.startswith(("ServiceMonitor/", "PodMonitor/")):
                assert other not in obj["spec"]["namespaceSelector"]["matchNames"]
                assert obj["metadata"]["namespace"] == env


def test_two_namespaces_of_one_environment_each_get_their_own_monitoring() -> None:
    everything = {("sol", "1.0.0"): monitored("1.0.0")}
    objects = by_key(
        desired_environment(
            "prod", {"prod-a": {"sol": "1.0.0"}, "prod-b": {"sol": "1.0.0"}}, everything, SETTINGS
        )
    )
    for ns, other in (("prod-a", "prod-b"), ("prod-b", "prod-a")):
        monitor = objects[f"ServiceMonitor/{ns}/sol-server"]
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [ns]}
        assert f"ServiceMonitor/{other}/sol-server" in objects


def test_without_the_prometheus_operator_only_dashboards_and_the_service_are_kept() -> None:
    support = monitoring_support([])
    assert support.message is not None and "\n" not in support.message
    everything = {("sol", "1.0.0"): monitored("1.0.0")}
    objects = by_key(
        desired_environment(
            "prod", {"prod": {"sol": "1.0.0"}}, everything, SETTINGS, monitoring=support
        )
    )
    kinds = {key.split("/")[0] for key in objects}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert "ConfigMap/prod/sol-dashboard-overview" in objects
    assert "Service/prod/sol-operator-metrics" in objects


def test_monitoring_is_applied_after_the_deployment_and_pruned_before_it() -> None:
    everything = {("sol", "1.0.0"): monitored("1.0.0")}
    desired = desired_environment("prod", {"prod": {"sol": "1.0.0"}}, everything, SETTINGS)
    creates = [c.key.kind for c in plan(desired, [])]
    deployment = creates.index("Deployment")
    assert creates.index("Service") < deployment
    assert max(i for i, k in enumerate(creates) if k == "ConfigMap") < deployment
    assert all(
        i > deployment for i, k in enumerate(creates) if k in ("ServiceMonitor", "PrometheusRule")
    )
    deletes = [c.key.kind for c in plan([], desired)]
    deployment = deletes.index("Deployment")
    assert all(
        i < deployment for i, k in enumerate(deletes) if k in ("ServiceMonitor", "PrometheusRule")
    )
    assert deletes.index("Service") > deployment
    assert deletes[-1] == "ServiceAccount"
    assert PRUNE_WAVES[0] == {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Ingress"}
    assert APPLY_WAVES[-1] == {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Ingress"}


def test_every_managed_kind_is_in_exactly_one_apply_and_one_prune_wave() -> None:
    # A kind missing from the waves would be planned, reported, and silently never sent.
    for waves in (APPLY_WAVES, PRUNE_WAVES):
        seen = [kind for wave in waves for kind in wave]
        assert sorted(seen) == sorted(KINDS), waves
