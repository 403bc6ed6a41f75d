"""Every object of an environment: the operator's (``engine/desired.py``), its monitoring
(``engine/monitoring.py``), its Solution UI (``engine/solution_ui.py``) and the admission
policy of its images (``engine/admission.py``), put together.

A pure function of the state, as :mod:`engine.desired`: :func:`desired_environment` returns
every object the product deploys for an environment, which the planner diffs against the live
objects.  It sits above the three modules whose objects it gathers, so none of them imports
another one back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from metalk8s_solutions.api.monitoring import CRD_NAMES as MONITORING_CRDS
from metalk8s_solutions.engine import admission, solution_ui
from metalk8s_solutions.engine import certificates as certs
from metalk8s_solutions.engine import monitoring as mon
from metalk8s_solutions.engine.certificates import KeyStore
from metalk8s_solutions.engine.desired import (
    RBAC_API,
    Obj,
    Settings,
    VersionContent,
    _deployment,
    _meta,
    _role_name,
    _rule_needs_cluster,
    check_roles,
    cluster_crds_of,
    cluster_role_name,
    config_name,
    is_approved,
    labels_for,
    operator_config,
    operator_image,
    operator_name,
    with_hash,
)
from metalk8s_solutions.engine.monitoring import MonitoringSupport
from metalk8s_solutions.errors import Refused


def certificate_objects(
    namespace: str, content: VersionContent, labels: Mapping[str, str], settings: Settings
) -> list[Obj]:
    """The operator's certificates in ``namespace``: for https metrics (cert-manager's Issuer
    and Certificate, or a generated Secret) and for webhooks (Secret ``<sol>-cert``)."""

    sol = content.name
    keys = settings.keys if settings.keys is not None else KeyStore()
    objects: list[Obj] = []
    metrics = content.manifest.operator_metrics
    if metrics is not None and metrics.enabled and metrics.scheme == "https":
        service = mon.metrics_service_name(sol)
        objects += certs.metrics_certificate_objects(sol, namespace, labels, service, keys)
    if (namespace, sol) in settings.webhook:
        objects.append(certs.webhook_secret(sol, namespace, labels, operator_name(sol), keys))
    return objects


def _split_rules(
    rules: Sequence[Mapping[str, Any]], cluster_crds: set[tuple[str, str]]
) -> tuple[list[Any], list[Any]]:
    local: list[Any] = []
    cluster: list[Any] = []
    for rule in rules:
        (cluster if _rule_needs_cluster(rule, cluster_crds) else local).append(dict(rule))
    return local, cluster


def solution_objects(
    env: str,
    namespace: str,
    content: VersionContent,
    all_versions: Iterable[VersionContent],
    settings: Settings,
    *,
    monitoring: MonitoringSupport | None = None,
) -> tuple[list[Obj], list[Obj]]:
    """(namespaced objects, cluster-scoped objects) for one solution version in one namespace.

    ``monitoring`` says which Prometheus Operator kinds the cluster serves (None: all of
    them); the version's ``monitoring/`` objects, dashboards and operator metrics Service are
    bound to this namespace (``engine/monitoring.py``).  Raises Refused when role.yaml asks for
    more than is allowed.
    """

    sol = content.name
    problems = check_roles(content, privileged_allowed=is_approved(content, settings.privileged))
    if problems:
        raise Refused(
            f"cannot deploy {content.manifest.id}: " + "; ".join(problems),
            hint="nothing was changed",
        )
    labels = labels_for(env, sol, content.version)
    sa = operator_name(sol)
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
    namespaced: list[Obj] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, labels, namespace)}
    ]
    cluster: list[Obj] = []
    cluster_crds = cluster_crds_of(content)
    # As MetalK8s: every rule is bound by RoleBindings in the namespaces (what they cannot grant
    # is not granted); with cluster scope allowed, those rules get a ClusterRoleBinding instead.
    cluster_scope = sol in settings.cluster_scope
    for doc in content.roles:
        name = str((doc.get("metadata") or {}).get("name", "operator"))
        rules = list(doc.get("rules") or [])
        if doc.get("kind") == "Role":
            role = _role_name(sol, name)
            namespaced += [
                {
                    "apiVersion": RBAC_API,
                    "kind": "Role",
                    "metadata": _meta(role, labels, namespace),
                    "rules": rules,
                },
                {
                    "apiVersion": RBAC_API,
                    "kind": "RoleBinding",
                    "metadata": _meta(role, labels, namespace),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": role,
                    },
                    "subjects": subject,
                },
            ]
            continue
        local, wide = _split_rules(rules, cluster_crds) if cluster_scope else (rules, [])
        if local:
            cr = cluster_role_name(env, content, name)
            cluster.append(
                {
                    "apiVersion": RBAC_API,
                    "kind": "ClusterRole",
                    "metadata": _meta(cr, labels),
                    "rules": local,
                }
            )
            # roleRef is immutable: the binding's name carries the version, so an upgrade
            # creates a new binding and prunes the old one.
            namespaced.append(
                {
                    "apiVersion": RBAC_API,
                    "kind": "RoleBinding",
                    "metadata": _meta(f"{content.manifest.id}-{name}"[:253], labels, namespace),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cr,
                    },
                    "subjects": subject,
                }
            )
        if wide:
            cr = cluster_role_name(env, content, name) + ":cluster"
            cluster += [
                {
                    "apiVersion": RBAC_API,
                    "kind": "ClusterRole",
                    "metadata": _meta(cr, labels),
                    "rules": wide,
                },
                {
                    "apiVersion": RBAC_API,
                    "kind": "ClusterRoleBinding",
                    "metadata": _meta(cr, labels),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cr,
                    },
                    "subjects": subject,
                },
            ]
    namespaced.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(config_name(sol), labels, namespace),
            "data": {"operator.yaml": operator_config(settings.endpoint, all_versions)},
        }
    )
    metrics = content.manifest.operator_metrics
    namespaced += certificate_objects(namespace, content, labels, settings)
    namespaced.append(
        _deployment(
            namespace,
            labels,
            operator_image(settings.endpoint, content),
            sol,
            mon.metrics_port(metrics),
            metrics=metrics,
            webhook=(namespace, sol) in settings.webhook,
        )
    )
    target = mon.MonitoringTarget(namespace, env, sol, content.version)
    bound = mon.monitoring_objects(
        content.monitoring.documents,
        content.monitoring.dashboards,
        target,
        metrics=metrics,
        support=monitoring,
    )
    namespaced += bound.objects
    served = monitoring.kinds if monitoring is not None else frozenset(MONITORING_CRDS)
    cluster += mon.metrics_auth_objects(metrics, target, sa, scraper="ServiceMonitor" in served)
    namespaced += solution_ui.ui_objects(
        env, namespace, content, settings.endpoint, settings.ingress
    )
    return namespaced, cluster


def desired_environment(
    env: str,
    namespaces: Mapping[str, Mapping[str, str]],
    contents: Mapping[tuple[str, str], VersionContent],
    settings: Settings,
    *,
    monitoring: MonitoringSupport | None = None,
) -> list[Obj]:
    """Every object ``env`` should hold, given ``namespaces`` (ns -> {solution: version}).

    ``contents`` has every imported version: (solution, version) -> VersionContent.  A version
    that is not imported raises Refused (the caller checks first; this is the last guard).
    ``monitoring`` is what :func:`engine.monitoring.monitoring_support` found in the cluster
    (None: every Prometheus Operator kind is served).
    """
    by_solution: dict[str, list[VersionContent]] = {}
    for (sol, _), each in contents.items():
        by_solution.setdefault(sol, []).append(each)
    result: list[Obj] = []
    cluster: dict[str, Obj] = {}
    for namespace in sorted(namespaces):
        for sol, version in sorted(namespaces[namespace].items()):
            found = contents.get((sol, version))
            if found is None:
                raise Refused(
                    f"environment {env}, namespace {namespace}: {sol} {version} is not imported",
                    hint=f"import {sol}-{version} or change the version of {sol} in this "
                    "environment",
                )
            local, wide = solution_objects(
                env, namespace, found, by_solution[sol], settings, monitoring=monitoring
            )
            result += local
            for obj in wide:
                key = f"{obj['kind']}/{obj['metadata']['name']}"
                if obj["kind"] == "ClusterRoleBinding" and key in cluster:
                    # one binding, every namespace (a new list: bindings share their subjects)
                    cluster[key]["subjects"] = [*cluster[key]["subjects"], *obj["subjects"]]
                else:
                    cluster.setdefault(key, obj)
    result += cluster.values()
    # Only imported images run (engine/admission.py): those of every version the OperatorConfig
    # offers to the operators deployed here (an operator serves instances of each of them).
    deployed = {sol for config in namespaces.values() for sol in config}
    if deployed:
        offered = [each for sol in sorted(deployed) for each in by_solution[sol]]
        result += admission.admission_objects(
            env, offered, settings.allowed_images, settings.endpoint
        )
    return [with_hash(obj) for obj in result]
