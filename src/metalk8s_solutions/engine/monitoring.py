"""The monitoring objects of one Solution in one environment namespace: PURE, no I/O.

A Solution ships its ``ServiceMonitor``/``PodMonitor``/``PrometheusRule`` objects and Grafana
dashboards once, under ``monitoring/`` (checked by SOL090-SOL095); the environment engine asks
:func:`monitoring_objects` for what to apply in each namespace that gets the Solution.  Every
object is bound to that namespace:

- ``metadata.namespace`` is the environment's namespace and names get no suffix (namespaces
  already separate environments);
- selectors are narrowed with ``app.kubernetes.io/part-of`` and the environment label, and
  ``namespaceSelector.matchNames`` is exactly that namespace, so two environments never scrape
  each other;
- PrometheusRule series selectors are not rewritten (PromQL is the author's), but every rule gets
  ``namespace``/``environment`` labels, and the Prometheus Operator's own namespace enforcement
  applies when enabled;
- dashboards become ConfigMaps labelled ``grafana_dashboard: "1"`` (what Grafana's sidecar
  watches), one per dashboard file, named after the solution and the file;
- ``spec.operator.metrics`` adds a ``<solution>-operator-metrics`` Service (selecting the operator
  pods of this namespace) and a ServiceMonitor of it.  Over https, operators built with
  controller-runtime's ``WithAuthenticationAndAuthorization`` (kubebuilder's default, the
  upstream example's) answer only scrapes whose bearer token passes a TokenReview and a
  SubjectAccessReview for ``get /metrics``: :func:`metrics_auth_objects` makes both hold without
  handing Prometheus's own token to the Solution (a scraper ServiceAccount per namespace, whose
  token the ServiceMonitor reads from a Secret; see :func:`metrics_auth_objects`).

All objects carry the common labels, so the engine finds them (and prunes them) like the rest of
what it deploys.  When the Prometheus Operator's CRDs are absent, :func:`monitoring_support` says
so in one line and only the dashboards and the metrics Service are kept.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.api.manifest import OperatorMetrics
from metalk8s_solutions.api.monitoring import (
    API_VERSION,
    CRD_NAMES,
    PART_OF,
    Dashboard,
    safe_endpoint,
)
from metalk8s_solutions.engine.desired import ENV_LABEL, GROUP, labels_for, pod_selector

GRAFANA_LABEL = "grafana_dashboard"
GRAFANA_FOLDER = "grafana_folder"
METRICS_PORT = "metrics"
#: On the operator metrics Service, so that its ServiceMonitor selects it and nothing else.
METRICS_LABEL = f"{GROUP}/metrics"
#: What MetalK8s's Prometheus selects ServiceMonitors by (MetalK8s PR 4813).
METALK8S_MONITOR_LABEL = "metalk8s.scality.com/monitor"
Body = dict[str, Any]


@dataclass(frozen=True)
class MonitoringTarget:
    """Where the monitoring objects go: one namespace of one environment, one solution version."""

    namespace: str
    environment: str
    solution: str
    version: str

    @property
    def labels(self) -> dict[str, str]:
        """The labels of everything deployed for the solution (``engine/desired.py``), so the
        environment engine finds, diffs and prunes these objects with the rest."""
        return labels_for(self.environment, self.solution, self.version)


@dataclass(frozen=True)
class MonitoringSupport:
    """What the cluster can take: Prometheus Operator kinds present, and the line to print."""

    kinds: frozenset[str]
    message: str | None = None

    @property
    def prometheus_operator(self) -> bool:
        return bool(self.kinds)


@dataclass(frozen=True)
class MonitoringPlan:
    """The objects to apply in the namespace, in order, and what was skipped and why."""

    objects: tuple[Body, ...] = ()
    skipped: tuple[str, ...] = field(default=())


def monitoring_support(crd_names: Iterable[str]) -> MonitoringSupport:
    """Decide from the live CRD names; without the Prometheus Operator, say it in one line."""
    live = set(crd_names)
    kinds = frozenset(kind for kind, crd in CRD_NAMES.items() if crd in live)
    if not kinds:
        return MonitoringSupport(
            kinds,
            "monitoring: the Prometheus Operator CRDs (monitoring.coreos.com) are not installed; "
            "ServiceMonitors, PodMonitors and PrometheusRules are skipped",
        )
    missing = sorted(set(CRD_NAMES) - kinds)
    if missing:
        return MonitoringSupport(
            kinds, f"monitoring: {', '.join(missing)} not installed in the cluster; skipped"
        )
    return MonitoringSupport(kinds)


def _bound_selector(selector: object, target: MonitoringTarget) -> Body:
    bound: Body = copy.deepcopy(selector) if isinstance(selector, dict) else {}
    labels = dict(bound.get("matchLabels") or {})
    labels[PART_OF] = target.solution
    bound["matchLabels"] = labels
    return bound


def _metadata(doc: Mapping[str, Any], target: MonitoringTarget, name: str | None = None) -> Body:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(meta, dict)  # noqa: S101 - narrowed above
    labels = {**dict(meta.get("labels") or {}), **target.labels}
    out: Body = {"name": name or meta["name"], "namespace": target.namespace, "labels": labels}
    if meta.get("annotations"):
        out["annotations"] = dict(meta["annotations"])
    return out


def bind_object(doc: Mapping[str, Any], target: MonitoringTarget) -> Body:
    """One ServiceMonitor, PodMonitor or PrometheusRule of the archive, bound to ``target``."""
    kind = doc["kind"]
    spec: Body = copy.deepcopy(dict(doc.get("spec") or {}))
    if kind in ("ServiceMonitor", "PodMonitor"):
        spec["selector"] = _bound_selector(spec.get("selector"), target)
        spec["namespaceSelector"] = {"matchNames": [target.namespace]}
        # SOL095 refuses them at validation; strip them again here (archives imported before).
        field = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
        if isinstance(spec.get(field), list):
            spec[field] = [safe_endpoint(e) if isinstance(e, dict) else e for e in spec[field]]
    elif kind == "PrometheusRule":
        for group in spec.get("groups") or []:
            for rule in group.get("rules") or []:
                rule["labels"] = {
                    **dict(rule.get("labels") or {}),
                    "namespace": target.namespace,
                    "environment": target.environment,
                    "solution": target.solution,
                }
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": _metadata(doc, target),
        "spec": spec,
    }


_UNSAFE = re.compile(r"[^a-z0-9-]+")


def dashboard_name(solution: str, dashboard: Dashboard) -> str:
    """``<solution>-dashboard-<file stem>``: a DNS name, unique per file, at most 63 chars."""
    stem = _UNSAFE.sub("-", dashboard.key.rsplit(".", 1)[0].lower()).strip("-") or "dashboard"
    name = f"{solution}-dashboard-{stem}"
    if len(name) > 63:
        digest = hashlib.sha256(dashboard.key.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


def dashboard_configmap(dashboard: Dashboard, target: MonitoringTarget) -> Body:
    """A ConfigMap Grafana's sidecar picks up (label ``grafana_dashboard: "1"``)."""
    meta = _metadata({"metadata": {}}, target, dashboard_name(target.solution, dashboard))
    meta["labels"][GRAFANA_LABEL] = "1"
    meta["annotations"] = {GRAFANA_FOLDER: target.solution}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {dashboard.key: dashboard.text},
    }


def operator_metrics_objects(
    metrics: OperatorMetrics, target: MonitoringTarget, *, service_monitor: bool = True
) -> list[Body]:
    """The metrics Service of the operator and its ServiceMonitor (MetalK8s's operator metrics).

    The Deployment must declare a container port named ``metrics`` (:func:`metrics_port`).
    """
    if not metrics.enabled:
        return []
    name = metrics_service_name(target.solution)
    # The operator Deployment's own selector (engine/desired.py): its pods in this namespace.
    operator_labels = pod_selector(target.labels)
    service: Body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata({"metadata": {}}, target, name),
        "spec": {
            "selector": operator_labels,
            "ports": [
                {
                    "name": METRICS_PORT,
                    "port": metrics.port,
                    "targetPort": METRICS_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }
    service["metadata"]["labels"][METRICS_LABEL] = "operator"
    objects = [service]
    if service_monitor:
        monitor: Body = {
            "apiVersion": API_VERSION,
            "kind": "ServiceMonitor",
            "metadata": _metadata({"metadata": {}}, target, name),
            "spec": {
                "selector": {
                    "matchLabels": {
                        PART_OF: target.solution,
                        METRICS_LABEL: "operator",
                        ENV_LABEL: target.environment,
                    }
                },
                "namespaceSelector": {"matchNames": [target.namespace]},
                "endpoints": [metrics_endpoint(metrics, target.solution)],
            },
        }
        monitor["metadata"]["labels"][METALK8S_MONITOR_LABEL] = ""
        objects.append(monitor)
    if service_monitor and metrics.scheme == "https":
        objects += _scraper_objects(target)
    return objects


def metrics_scraper_name(solution: str) -> str:
    """``<solution>-metrics-scraper``: the ServiceAccount whose token Prometheus presents."""
    return f"{solution}-metrics-scraper"


def metrics_token_name(solution: str) -> str:
    """The Secret holding the scraper's token (filled by the API server's token controller)."""
    return f"{metrics_scraper_name(solution)}-token"


def _scraper_objects(target: MonitoringTarget) -> list[Body]:
    scraper = metrics_scraper_name(target.solution)
    token = _metadata({"metadata": {}}, target, metrics_token_name(target.solution))
    token["annotations"] = {"kubernetes.io/service-account.name": scraper}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata({"metadata": {}}, target, scraper),
            # Nothing runs as it: no token is mounted anywhere.
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": token,
            "type": "kubernetes.io/service-account-token",
        },
    ]


#: The built-in ClusterRole that may create TokenReviews and SubjectAccessReviews, and nothing
#: else: what an operator needs to check who scrapes it (kube-rbac-proxy and controller-runtime
#: ask for exactly this).
AUTH_DELEGATOR = "system:auth-delegator"


def metrics_auth_names(environment: str, solution: str) -> tuple[str, str]:
    """(the operator's auth ClusterRoleBinding, the scraper's ClusterRole and binding)."""
    base = f"solutions:{environment}:{solution}"
    return f"{base}:metrics-auth", f"{base}:metrics-reader"


def metrics_auth_objects(
    metrics: OperatorMetrics | None,
    target: MonitoringTarget,
    operator_account: str,
    *,
    scraper: bool = True,
) -> list[Body]:
    """The cluster-scoped grants that let the operator authenticate its scrapers (https only).

    - the operator's ServiceAccount is bound to ``system:auth-delegator`` (TokenReview and
      SubjectAccessReview; a RoleBinding cannot grant them, both are cluster-scoped), so it can
      ask the API server who presents a token and whether they may ``get /metrics``;
    - the scraper ServiceAccount of the namespace gets ``get`` on the non-resource URL
      the metrics path (only a ClusterRoleBinding can grant a non-resource URL).

    ``scraper`` is false when the cluster serves no ServiceMonitor (no scraper of ours then:
    only the operator's binding, for the administrator's own scrapers).  One binding of each
    per environment and Solution; the environment engine merges the
    subjects of every namespace (``engine/desired.py``).  The scraper's token can read
    ``/metrics`` of any component that delegates its authorization (the API server's included)
    and nothing else; the operator sees it on every scrape, which is why it is not
    Prometheus's own.
    """
    if metrics is None or not metrics.enabled or metrics.scheme != "https":
        return []
    auth, reader = metrics_auth_names(target.environment, target.solution)
    labels = target.labels
    rbac = "rbac.authorization.k8s.io"
    grants: list[Body] = [
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": auth, "labels": dict(labels)},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": AUTH_DELEGATOR},
            "subjects": [
                {"kind": "ServiceAccount", "name": operator_account, "namespace": target.namespace}
            ],
        }
    ]
    if not scraper:
        return grants
    return [
        *grants,
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": reader, "labels": dict(labels)},
            # controller-runtime asks whether the scraper may get the request's path
            "rules": [{"nonResourceURLs": [metrics.path], "verbs": ["get"]}],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": reader, "labels": dict(labels)},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": reader},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": metrics_scraper_name(target.solution),
                    "namespace": target.namespace,
                }
            ],
        },
    ]


def metrics_service_name(solution: str) -> str:
    """``<solution>-operator-metrics``, the operator metrics Service (as MetalK8s names it)."""
    return f"{solution}-operator-metrics"


def metrics_endpoint(metrics: OperatorMetrics, solution: str) -> Body:
    """The ServiceMonitor endpoint.  For https the certificate is self-signed (or from a
    self-signed Issuer), so it is not verified, as MetalK8s does, and the scrape carries the
    token of the namespace's scraper ServiceAccount (:func:`metrics_auth_objects`).  Unlike
    MetalK8s, never ``bearerTokenFile``: that would hand Prometheus's own token to the
    Solution's code (the reason SOL095 refuses it in archives)."""
    endpoint: Body = {"port": METRICS_PORT, "scheme": metrics.scheme, "path": metrics.path}
    if metrics.scheme == "https":
        endpoint["tlsConfig"] = {"insecureSkipVerify": True}
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": metrics_token_name(solution), "key": "token"},
        }
    return endpoint


def metrics_port(metrics: OperatorMetrics | None) -> dict[str, Any] | None:
    """The container port the operator Deployment needs for its metrics, or None."""
    if metrics is None or not metrics.enabled:
        return None
    return {"name": METRICS_PORT, "containerPort": metrics.port, "protocol": "TCP"}


def monitoring_objects(
    documents: Sequence[Mapping[str, Any]],
    dashboards: Sequence[Dashboard],
    target: MonitoringTarget,
    *,
    metrics: OperatorMetrics | None = None,
    support: MonitoringSupport | None = None,
) -> MonitoringPlan:
    """Everything to apply in ``target.namespace`` for the Solution's monitoring.

    ``documents`` are the decoded YAML documents of ``monitoring/*.yaml`` (valid per SOL090),
    ``dashboards`` the parsed ``monitoring/*.json``; ``support`` comes from
    :func:`monitoring_support` on the live CRD names (None: assume every kind is installed).
    Order: ConfigMaps, Service, then the Prometheus Operator objects.
    """
    kinds = support.kinds if support is not None else frozenset(CRD_NAMES)
    skipped: list[str] = []
    objects: list[Body] = [dashboard_configmap(d, target) for d in dashboards]
    if metrics is not None:
        objects.extend(
            operator_metrics_objects(metrics, target, service_monitor="ServiceMonitor" in kinds)
        )
    for doc in documents:
        kind = str(doc.get("kind"))
        if kind not in kinds:
            name = (doc.get("metadata") or {}).get("name")
            skipped.append(f"{kind}/{name}")
            continue
        objects.append(bind_object(doc, target))
    if metrics is not None and metrics.enabled and "ServiceMonitor" not in kinds:
        skipped.append(f"ServiceMonitor/{metrics_service_name(target.solution)}")
    return MonitoringPlan(tuple(objects), tuple(skipped))


#: The Prometheus Operator kinds, with their API path segment, for listing and pruning.
RESOURCES = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}
