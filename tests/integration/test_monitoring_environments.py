"""Monitoring per environment against the real local control plane (issue 10, part 1 and 2).

A Solution whose archive ships ``monitoring/`` (a ServiceMonitor, a PrometheusRule, a Grafana
dashboard) and ``spec.operator.metrics`` is added to environments: its objects appear bound to
each environment's namespace, a re-converge writes nothing, removing the Solution removes them,
and without the Prometheus Operator's CRDs the skip is one clear line.

The Prometheus Operator is not installed by the harness: this module installs reduced stand-ins
of its CRDs and deletes them at the end (the control plane is shared by the whole session).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from env_support import Api, build_solution, cli, crd_document, open_crd, wait_for, write_config
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "montest"
GROUP = "montest.test.solutions"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"
MONITORING = "/apis/monitoring.coreos.com/v1"
PROMETHEUS_KINDS = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}
FILES = {
    "monitoring/server.yaml": yaml.safe_dump(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": f"{SOL}-server"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/part-of": SOL, "app": "server"}},
                "endpoints": [{"port": "metrics", "interval": "30s"}],
            },
        }
    ),
    "monitoring/rules.yaml": yaml.safe_dump(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": f"{SOL}-alerts"},
            "spec": {
                "groups": [
                    {
                        "name": SOL,
                        "rules": [
                            {
                                "alert": "MontestServerDown",
                                "expr": 'sum(up{job="montest-server"}) == 0',
                                "for": "5m",
                                "labels": {"severity": "critical"},
                                "annotations": {"summary": "the server is down: see its pods"},
                            }
                        ],
                    }
                ]
            },
        }
    ),
    "monitoring/overview.json": json.dumps(
        {"title": "Montest", "uid": "montest-overview", "panels": []}
    ),
}
METRICS = {"enabled": True, "scheme": "http", "port": 8383, "path": "/metrics"}


def prometheus_crd(kind: str, plural: str) -> dict[str, Any]:
    """A reduced stand-in of the upstream Prometheus Operator CRD of ``kind``: same group,
    version, names and scope, but an open schema (``x-kubernetes-preserve-unknown-fields``)
    instead of the upstream one.  The API server serving it is real."""
    return open_crd("monitoring.coreos.com", kind, plural)


def prometheus_operator_installed(admin: Api) -> bool:
    return admin.http.get(MONITORING).status_code == 200


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitoring-archives")
    return build_solution(out, SOL, "1.0.0", group=GROUP, files=FILES, metrics=METRICS)


@pytest.fixture(scope="module")
def admin(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        api = Api(http)
        api.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        yield api
        # The stand-in CRDs must not outlive this module (other modules share the cluster).
        for plural in PROMETHEUS_KINDS.values():
            api.delete(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                f"{plural}.monitoring.coreos.com"
            )
        wait_for(lambda: not prometheus_operator_installed(api), what="monitoring CRDs gone")


@pytest.fixture
def prometheus_operator(admin: Api) -> Api:
    """The stand-in Prometheus Operator CRDs, installed (left for the module's teardown)."""
    for kind, plural in PROMETHEUS_KINDS.items():
        admin.install_crd(prometheus_crd(kind, plural))
    return admin


@pytest.fixture
def ctx(tmp_path: Path, archive: Path, local_cluster: LocalCluster) -> Context:
    config = write_config(tmp_path / "solutions.yaml", [archive])
    return Context(config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))


def monitoring_objects(admin: Api, ns: str) -> dict[str, dict[str, Any]]:
    """kind/name -> object of the Prometheus Operator kinds in ``ns``."""
    return {
        f"{kind}/{obj['metadata']['name']}": obj
        for kind, plural in PROMETHEUS_KINDS.items()
        for obj in admin.items(f"{MONITORING}/namespaces/{ns}/{plural}")
    }


def check_bound(admin: Api, env: str) -> None:
    """Everything the Solution's monitoring needs is in ``env``'s namespace, bound to it."""
    found = monitoring_objects(admin, env)
    assert sorted(found) == [
        f"PrometheusRule/{SOL}-alerts",
        f"ServiceMonitor/{SOL}-operator-metrics",
        f"ServiceMonitor/{SOL}-server",
    ]
    for obj in found.values():
        labels = obj["metadata"]["labels"]
        assert labels[ENV_LABEL] == env
        assert labels["app.kubernetes.io/part-of"] == SOL
        assert labels["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
    for name in (f"{SOL}-server", f"{SOL}-operator-metrics"):
        spec = found[f"ServiceMonitor/{name}"]["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [env]}
    rule = found[f"PrometheusRule/{SOL}-alerts"]["spec"]["groups"][0]["rules"][0]
    assert rule["labels"]["namespace"] == env and rule["labels"]["environment"] == env
    service = admin.get(f"/api/v1/namespaces/{env}/services/{SOL}-operator-metrics")
    assert service is not None
    assert service["metadata"]["labels"][ENV_LABEL] == env
    assert service["spec"]["ports"][0]["port"] == METRICS["port"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    board = admin.get(f"/api/v1/namespaces/{env}/configmaps/{SOL}-dashboard-overview")
    assert board is not None
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["labels"][ENV_LABEL] == env
    assert json.loads(board["data"]["overview.json"])["uid"] == "montest-overview"
    dep = admin.get(f"/apis/apps/v1/namespaces/{env}/deployments/{SOL}-operator")
    assert dep is not None
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [
        {"name": "metrics", "containerPort": METRICS["port"], "protocol": "TCP"}
    ]
    # The metrics Service selects this namespace's operator pod.
    endpoints = admin.items(
        f"/apis/discovery.k8s.io/v1/namespaces/{env}/endpointslices",
        f"kubernetes.io/service-name={SOL}-operator-metrics",
    )
    assert endpoints, "the metrics Service has no EndpointSlice"


# This test runs first in the module: the stand-in CRDs are not installed yet.
async def test_without_the_prometheus_operator_one_line_and_no_error(
    ctx: Context, kube: Kube, env_names: list[str], admin: Api, local_cluster: LocalCluster
) -> None:
    assert not prometheus_operator_installed(admin), "another test left monitoring CRDs behind"
    env = env_names[0]
    await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
    outcome = await envs.add_solution(
        ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", timeout=60), connection=kube
    )
    lines = [w for w in outcome.warnings if "Prometheus Operator" in w]
    assert len(lines) == 1 and "\n" not in lines[0], outcome.warnings
    assert "monitoring.coreos.com" in lines[0] and "skipped" in lines[0]
    # What needs no CRD is still deployed: the dashboard ConfigMap and the metrics Service.
    assert admin.get(f"/api/v1/namespaces/{env}/services/{SOL}-operator-metrics") is not None
    assert admin.get(f"/api/v1/namespaces/{env}/configmaps/{SOL}-dashboard-overview") is not None
    # The command line prints it once, and a converge with nothing to do writes nothing.
    before = kube.counter.mutating
    shown = cli(ctx.config_path, local_cluster.kubeconfig, "env", "converge", env)
    assert shown.returncode == 0, shown.stderr
    assert (shown.stdout + shown.stderr).count("Prometheus Operator CRDs") == 1
    again = await envs.converge_environments(ctx, envs.ConvergeOptions((env,)), connection=kube)
    assert again.steps == [] and kube.counter.mutating == before


async def test_monitoring_per_environment_and_removed_with_the_solution(
    ctx: Context, kube: Kube, env_names: list[str], prometheus_operator: Api
) -> None:
    admin = prometheus_operator
    first, second = env_names
    for env in env_names:
        await envs.create_environment(ctx, envs.CreateEnvOptions(env), connection=kube)
        outcome = await envs.add_solution(
            ctx, envs.AddSolutionOptions(env, SOL, "1.0.0", timeout=60), connection=kube
        )
        assert not [w for w in outcome.warnings if "monitoring" in w], outcome.warnings
        targets = [s.target for s in outcome.steps if s.action == "create"]
        # Applied in dependency order: metrics Service and ConfigMaps, Deployment, monitors.
        deployment = targets.index(f"Deployment {env}/{SOL}-operator")
        assert targets.index(f"Service {env}/{SOL}-operator-metrics") < deployment
        assert targets.index(f"ServiceMonitor {env}/{SOL}-server") > deployment
        assert targets.index(f"PrometheusRule {env}/{SOL}-alerts") > deployment
    for env in env_names:
        check_bound(admin, env)

    before = kube.counter.mutating
    again = await envs.converge_environments(
        ctx, envs.ConvergeOptions(tuple(env_names)), connection=kube
    )
    assert again.steps == [] and again.warnings == []
    assert kube.counter.mutating == before, "a converge with nothing to do must not write"

    removed = await envs.delete_solution(
        ctx, envs.DeleteSolutionOptions(first, SOL, timeout=60), connection=kube
    )
    deleted = [s.target for s in removed.steps if s.action == "delete"]
    assert deleted.index(f"ServiceMonitor {first}/{SOL}-server") < deleted.index(
        f"Deployment {first}/{SOL}-operator"
    )
    assert monitoring_objects(admin, first) == {}
    assert admin.get(f"/api/v1/namespaces/{first}/services/{SOL}-operator-metrics") is None
    assert admin.get(f"/api/v1/namespaces/{first}/configmaps/{SOL}-dashboard-overview") is None
    check_bound(admin, second)  # the other environment keeps its own


def test_the_example_solution_monitoring_per_environment(
    prometheus_operator: Api,
    example_archives: Any,
    local_cluster: LocalCluster,
    tmp_path: Path,
) -> None:
    """The example Solution 2.0.0 (real operator metrics, alerts, dashboard) in an environment."""
    admin = prometheus_operator
    config = tmp_path / "etc" / "solutions.yaml"
    env = f"exmon-{secrets.token_hex(3)}"
    sol = "example-solution"

    def ok(*args: str) -> str:
        result = cli(config, local_cluster.kubeconfig, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    iso = example_archives.isos["2.0.0"]
    ok("import", "--key", str(example_archives.public_key), str(iso))
    try:
        ok("activate", sol, "--version", "2.0.0")
        ok("env", "create", env)
        ok("env", "add-solution", env, sol, "2.0.0", "--timeout", "120")
        rule = admin.get(f"{MONITORING}/namespaces/{env}/prometheusrules/{sol}-operator")
        assert rule is not None
        assert rule["metadata"]["labels"][ENV_LABEL] == env
        monitors = admin.items(f"{MONITORING}/namespaces/{env}/servicemonitors")
        assert monitors, "the operator metrics ServiceMonitor"
        for monitor in monitors:
            assert monitor["spec"]["namespaceSelector"] == {"matchNames": [env]}
        dashboards = admin.items(f"/api/v1/namespaces/{env}/configmaps", "grafana_dashboard=1")
        assert len(dashboards) == 1
        assert '"uid": "example-solution"' in next(iter(dashboards[0]["data"].values()))
        dep = admin.get(f"/apis/apps/v1/namespaces/{env}/deployments/{sol}-operator")
        assert dep is not None
        ports = dep["spec"]["template"]["spec"]["containers"][0].get("ports") or []
        assert 8080 in {p["containerPort"] for p in ports}
        ok("env", "delete-solution", env, sol, "--timeout", "60")
        assert admin.get(f"{MONITORING}/namespaces/{env}/prometheusrules/{sol}-operator") is None
    finally:
        cli(config, local_cluster.kubeconfig, "env", "delete", env, "--timeout", "120")
        cli(config, local_cluster.kubeconfig, "deactivate", sol, "--force")
        cli(config, local_cluster.kubeconfig, "unimport", f"{sol}-2.0.0")
