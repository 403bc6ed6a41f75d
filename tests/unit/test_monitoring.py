"""Monitoring declared in an archive: its checks, and its binding to each environment (pure)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import make_source
from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.manifest import OperatorMetrics, parse_manifest
from metalk8s_solutions.api.monitoring import (
    check_monitoring_object,
    check_promql,
    load_monitoring,
    parse_dashboard,
)
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.monitoring import (
    GRAFANA_LABEL,
    MonitoringTarget,
    dashboard_name,
    metrics_auth_names,
    metrics_auth_objects,
    metrics_port,
    monitoring_objects,
    monitoring_support,
)
from metalk8s_solutions.engine.validate import ValidateOptions, validate
from metalk8s_solutions.images.registry_index import RegistryMetrics
from metalk8s_solutions.web.metrics import UiMetrics

SOLUTION = "example-solution"
DOCS = yaml.safe_load_all("""\
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: base-server, labels: {team: storage}}
spec:
  selector: {matchLabels: {app.kubernetes.io/part-of: example-solution, app: base-server}}
  endpoints: [{port: metrics, interval: 30s}]
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: workers}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: example-solution}}
  podMetricsEndpoints: [{port: metrics}]
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: example-solution-alerts}
spec:
  groups:
    - name: example-solution
      rules:
        - alert: VersionServerDown
          expr: 'sum by (instance) (up{job="base-server"}) == 0'
          for: 5m
          labels: {severity: critical}
          annotations: {summary: "a version server is down: check its pods"}
        - record: example:requests:rate5m
          expr: sum(rate(http_requests_total[5m]))
""")
DOCUMENTS: list[dict[str, Any]] = list(DOCS)
BOARD = json.dumps({"title": "Example Solution", "uid": "example-solution", "panels": []})


def test_valid_objects_have_no_finding() -> None:
    for doc in DOCUMENTS:
        assert check_monitoring_object(doc, "monitoring/x.yaml", SOLUTION) == []
    board, findings = parse_dashboard(BOARD.encode(), "monitoring/overview.json")
    assert findings == [] and board is not None and board.uid == "example-solution"


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda d: d.update(apiVersion="monitoring.coreos.com/v1alpha1"), "SOL090"),
        (lambda d: d["metadata"].update(namespace="prod"), "SOL090"),
        (lambda d: d["spec"].pop("endpoints"), "SOL090"),
        (lambda d: d["spec"].update(endpoints=[{"path": "/metrics"}]), "SOL090"),
        (lambda d: d["spec"].pop("selector"), "SOL090"),
        (lambda d: d["spec"]["selector"]["matchLabels"].pop("app.kubernetes.io/part-of"), "SOL091"),
        (lambda d: d["spec"].update(namespaceSelector={"any": True}), "SOL091"),
    ],
)
def test_service_monitor_breaches(change: Any, rule: str) -> None:
    doc = json.loads(json.dumps(DOCUMENTS[0]))
    change(doc)
    assert rule in {f.rule for f in check_monitoring_object(doc, "monitoring/x.yaml", SOLUTION)}


def test_rule_breaches() -> None:
    doc = json.loads(json.dumps(DOCUMENTS[2]))
    rules = doc["spec"]["groups"][0]["rules"]
    rules[0]["expr"] = "sum(rate(x[5m])"
    rules[1]["alert"] = "Both"
    rules.append({"alert": "Quiet", "expr": "up == 0"})
    found = check_monitoring_object(doc, "monitoring/x.yaml", SOLUTION)
    assert {f.rule for f in found} == {"SOL090", "SOL092", "SOL094"}
    assert "unclosed left parenthesis" in str(found)


def test_promql() -> None:
    assert check_promql('histogram_quantile(0.9, sum by (le) (rate(x_bucket{a="b"}[5m])))') is None
    assert check_promql("") == "expr is empty"
    assert check_promql("rate(x[5m]") is not None
    assert check_promql("1") is None


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"[1]",
        b'{"title": "t"}',
        b'{"uid": "u"}',
        json.dumps({"title": "t", "uid": "u" * 41}).encode(),
    ],
)
def test_dashboard_breaches(data: bytes) -> None:
    board, findings = parse_dashboard(data, "monitoring/d.json")
    assert board is None and {f.rule for f in findings} == {"SOL093"}


def test_operator_metrics_in_the_manifest() -> None:
    base = (
        "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: Solution\n"
        "metadata: {name: s, annotations: {solutions.metalk8s.scality.com/display-name: S}}\n"
        "spec:\n  version: 1.0.0\n  images: [op:1]\n  operator:\n    image: {name: op, tag: '1'}\n"
    )
    manifest = parse_manifest((base + "    metrics: {enabled: true, port: 9090}\n").encode())
    assert manifest.operator_metrics == OperatorMetrics(True, "https", 9090, "/metrics")
    # MetalK8s's defaults (PR 4813): disabled; https on 8443, or http on 8080.
    parsed = {
        raw: parse_manifest((base + f"    metrics: {raw}\n").encode()).operator_metrics
        for raw in ("{}", "{enabled: true}", "{enabled: true, scheme: http}")
    }
    assert parsed == {
        "{}": OperatorMetrics(False, "https", 8443, "/metrics"),
        "{enabled: true}": OperatorMetrics(True, "https", 8443, "/metrics"),
        "{enabled: true, scheme: http}": OperatorMetrics(True, "http", 8080, "/metrics"),
    }
    assert manifest.to_dict()["spec"]["operator"]["metrics"]["port"] == 9090
    assert parse_manifest(base.encode()).operator_metrics is None
    with pytest.raises(Exception, match="SOL018"):
        parse_manifest((base + "    metrics: {scheme: ftp}\n").encode())


def _board() -> Any:
    board, _ = parse_dashboard(BOARD.encode(), "monitoring/overview.json")
    assert board is not None
    return board


def test_objects_are_bound_to_their_namespace() -> None:
    prod = MonitoringTarget("prod-ns", "prod", SOLUTION, "1.0.0")
    test = MonitoringTarget("test-ns", "test", SOLUTION, "1.1.0")
    metrics = OperatorMetrics(True, "https", 8443, "/metrics")
    plans = {
        t.namespace: monitoring_objects(DOCUMENTS, [_board()], t, metrics=metrics)
        for t in (prod, test)
    }
    plan = plans["prod-ns"]
    assert plan.skipped == ()
    kinds = [(o["kind"], o["metadata"]["name"]) for o in plan.objects]
    assert kinds == [
        ("ConfigMap", "example-solution-dashboard-overview"),
        ("Service", "example-solution-operator-metrics"),
        ("ServiceMonitor", "example-solution-operator-metrics"),
        ("ServiceAccount", "example-solution-metrics-scraper"),
        ("Secret", "example-solution-metrics-scraper-token"),
        ("ServiceMonitor", "base-server"),
        ("PodMonitor", "workers"),
        ("PrometheusRule", "example-solution-alerts"),
    ]
    for obj in plan.objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "prod-ns"
        assert meta["labels"]["solutions.metalk8s.scality.com/environment"] == "prod"
        assert meta["labels"]["app.kubernetes.io/part-of"] == SOLUTION
        assert meta["labels"]["app.kubernetes.io/version"] == "1.0.0"
        if obj["kind"] in ("ServiceMonitor", "PodMonitor"):
            assert obj["spec"]["namespaceSelector"] == {"matchNames": ["prod-ns"]}
            assert obj["spec"]["selector"]["matchLabels"]["app.kubernetes.io/part-of"] == SOLUTION
    board = plan.objects[0]
    assert board["metadata"]["labels"][GRAFANA_LABEL] == "1"
    assert json.loads(board["data"]["overview.json"])["uid"] == "example-solution"
    service, monitor = plan.objects[1], plan.objects[2]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "example-solution-operator",
        "app.kubernetes.io/instance": "example-solution-operator",
    }
    assert service["spec"]["ports"][0] == {
        "name": "metrics",
        "port": 8443,
        "targetPort": "metrics",
        "protocol": "TCP",
    }
    labels = monitor["spec"]["selector"]["matchLabels"]
    assert all(service["metadata"]["labels"][k] == v for k, v in labels.items())
    # https: the certificate is self-signed, so not verified; Prometheus's own token is never
    # sent to the Solution's code (no bearerTokenFile): the scraper's, from its token Secret.
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "metrics",
            "scheme": "https",
            "path": "/metrics",
            "tlsConfig": {"insecureSkipVerify": True},
            "authorization": {
                "type": "Bearer",
                "credentials": {"name": "example-solution-metrics-scraper-token", "key": "token"},
            },
        }
    ]
    # MetalK8s's Prometheus selects the ServiceMonitors labelled so.
    assert monitor["metadata"]["labels"]["metalk8s.scality.com/monitor"] == ""
    # The user's own labels survive; the rule carries its environment.
    assert plan.objects[5]["metadata"]["labels"]["team"] == "storage"
    rule = plan.objects[7]["spec"]["groups"][0]["rules"][0]
    assert rule["labels"] == {
        "severity": "critical",
        "namespace": "prod-ns",
        "environment": "prod",
        "solution": SOLUTION,
    }
    # Two environments never share a selector, and the input is not modified.
    other = plans["test-ns"].objects[5]["spec"]
    assert other["namespaceSelector"] == {"matchNames": ["test-ns"]}
    assert "namespaceSelector" not in DOCUMENTS[0]["spec"]
    assert "namespace" not in DOCUMENTS[2]["spec"]["groups"][0]["rules"][0]["labels"]


def test_without_the_prometheus_operator() -> None:
    support = monitoring_support(["examples.example.com", "widgets.other.io"])
    assert not support.prometheus_operator
    assert support.message is not None and "not installed" in support.message
    assert "\n" not in support.message
    target = MonitoringTarget("ns", "env", SOLUTION, "1.0.0")
    metrics = OperatorMetrics(enabled=True)
    plan = monitoring_objects(DOCUMENTS, [_board()], target, metrics=metrics, support=support)
    assert [o["kind"] for o in plan.objects] == ["ConfigMap", "Service"]
    assert plan.skipped == (
        "ServiceMonitor/base-server",
        "PodMonitor/workers",
        "PrometheusRule/example-solution-alerts",
        "ServiceMonitor/example-solution-operator-metrics",
    )
    full = monitoring_support(
        [
            "servicemonitors.monitoring.coreos.com",
            "podmonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ]
    )
    assert full.prometheus_operator and full.message is None
    partial = monitoring_support(["servicemonitors.monitoring.coreos.com"])
    assert partial.message is not None and "PodMonitor, PrometheusRule" in partial.message


def test_metrics_port_and_disabled_metrics() -> None:
    assert metrics_port(None) is None
    assert metrics_port(OperatorMetrics(enabled=False)) is None
    assert metrics_port(OperatorMetrics()) is None  # disabled unless the manifest says so
    assert metrics_port(OperatorMetrics(enabled=True, port=9000)) == {
        "name": "metrics",
        "containerPort": 9000,
        "protocol": "TCP",
    }
    target = MonitoringTarget("ns", "env", SOLUTION, "1.0.0")
    plan = monitoring_objects([], [], target, metrics=OperatorMetrics(enabled=False))
    assert plan.objects == ()


def test_dashboard_names_are_dns_labels() -> None:
    board = _board()
    long = type(board)("monitoring/" + "A_very" * 20 + ".json", "t", "u", "{}")
    name = dashboard_name("example-solution", long)
    assert len(name) <= 63 and name == name.lower() and "_" not in name


def test_the_products_own_dashboard_and_alerts_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
    rules = yaml.safe_load((root / "solutions-alerts.yaml").read_text())
    findings = check_monitoring_object(rules, "solutions-alerts.yaml", None)
    # The product's own rules live in the monitoring namespace (not a Solution's archive).
    assert [f.rule for f in findings] == ["SOL090"] and "namespace" in findings[0].message
    exprs = [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    assert len(exprs) >= 6
    board, problems = parse_dashboard((root / "solutions-dashboard.json").read_bytes(), "d.json")
    assert board is not None and problems == []
    targets = [t["expr"] for p in json.loads(board.text)["panels"] for t in p["targets"]]
    assert targets and all(check_promql(e) is None for e in targets)
    # Every metric named in the alerts and the dashboard is one the product exposes.
    names = set(re.findall(r"solutions_[a-z_]+", " ".join(exprs + targets)))
    exposed = UiMetrics().render(0) + RegistryMetrics().render()
    for name in names:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"# TYPE {base} " in exposed, name


def test_an_archive_with_monitoring_builds_validates_and_loads(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    (src / "monitoring").mkdir()
    (src / "monitoring" / "monitors.yaml").write_text(yaml.safe_dump_all(DOCUMENTS))
    (src / "monitoring" / "overview.json").write_text(BOARD)
    iso = tmp_path / "example-solution-1.0.0.iso"
    build(BuildOptions(src, iso, epoch=1_700_000_000))
    result = validate(ValidateOptions(iso, policy=Policy.DISABLED))
    assert result.valid and result.findings == [], result.findings
    with IsoReader(iso) as reader:
        content = load_monitoring(reader)
    assert [d["kind"] for d in content.documents] == [
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
    ]
    assert [b.uid for b in content.dashboards] == ["example-solution"]
    target = MonitoringTarget("ns", "env", SOLUTION, "1.0.0")
    plan = monitoring_objects(content.documents, content.dashboards, target)
    assert len(plan.objects) == 4


def test_metrics_auth_grants_the_operator_reviews_and_the_scraper_only_the_metrics_path() -> None:
    target = MonitoringTarget("prod-ns", "prod", SOLUTION, "1.0.0")
    https = OperatorMetrics(True, "https", 8443, "/custom-metrics")
    found = {o["metadata"]["name"]: o for o in metrics_auth_objects(https, target, "op")}
    auth, reader = metrics_auth_names("prod", SOLUTION)
    assert found[auth]["roleRef"]["name"] == "system:auth-delegator"
    assert found[auth]["subjects"] == [
        {"kind": "ServiceAccount", "name": "op", "namespace": "prod-ns"}
    ]
    role = next(o for o in metrics_auth_objects(https, target, "op") if o["kind"] == "ClusterRole")
    assert role["rules"] == [{"nonResourceURLs": ["/custom-metrics"], "verbs": ["get"]}]
    assert found[reader]["subjects"][0]["name"] == f"{SOLUTION}-metrics-scraper"
    # http carries no token; without ServiceMonitors there is no scraper of ours.
    http = OperatorMetrics(True, "http", 8080, "/metrics")
    assert metrics_auth_objects(http, target, "op") == []
    alone = metrics_auth_objects(https, target, "op", scraper=False)
    assert [o["metadata"]["name"] for o in alone] == [auth]
