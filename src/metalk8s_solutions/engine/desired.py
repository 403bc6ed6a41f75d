"""What should run in an environment, as plain Kubernetes objects: a pure function of the state.

Given which version of which solution each namespace of an environment runs (its
``metalk8s-environment`` ConfigMaps), the contents of the imported archives and the registry
endpoint, this module makes the operator's objects, per the operator Deployment contract of the
brief; :func:`engine.deployment.desired_environment` adds the monitoring and Solution UI objects
and returns every object the product deploys.  No I/O happens here: the planner diffs that list
against the live objects and the applier sends the difference.

Naming, so that nothing collides between solutions, versions and environments:

- per namespace: ServiceAccount, Deployment and ConfigMap ``<sol>-operator[-config]``; each Role
  of ``role.yaml`` as ``<sol>-<role>`` (kept as is when already prefixed), bound by a RoleBinding
  of the same name;
- a ClusterRole of ``role.yaml`` becomes ``solutions:<env>:<sol>-<version>:<role>`` (unique per
  environment and solution version; cluster-scoped, labelled with the environment) and is bound,
  as MetalK8s binds it, only by RoleBindings ``<sol>-<version>-<role>`` in the namespaces, so it
  grants nothing outside them.  Rules a RoleBinding cannot grant (cluster-scoped resources,
  non-resource URLs) are kept there and warned about; when the administrator allowed cluster
  scope for that solution they go to ``...:<role>:cluster`` with a ClusterRoleBinding.
- monitoring (``monitoring/`` of the archive, ``spec.operator.metrics``): dashboards'
  ConfigMaps, the ``<sol>-operator-metrics`` Service and the Prometheus Operator objects, bound
  to each namespace by :mod:`engine.monitoring`;
- the Solution's own UI (``spec.ui``): ConfigMap ``<sol>-ui-config``, Deployment, Service and
  Ingress ``<sol>-ui``, made by :mod:`engine.solution_ui`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from metalk8s_solutions.api.crd import (
    cluster_scope_warning,
    cluster_scoped_crds,
    cluster_scoped_grants,
    legacy_privileged_grants,
    privileged_grants,
)
from metalk8s_solutions.api.manifest import ImageRef, OperatorMetrics, SolutionManifest
from metalk8s_solutions.api.monitoring import MonitoringContent
from metalk8s_solutions.api.versions import version_key
from metalk8s_solutions.engine import certificates as certs
from metalk8s_solutions.engine.certificates import KeyStore
from metalk8s_solutions.errors import InvalidInput, Refused, command

Obj = dict[str, Any]

GROUP = "solutions.metalk8s.scality.com"
OPERATOR_CONFIG_API = f"{GROUP}/v1alpha1"
ENV_LABEL = f"{GROUP}/environment"
APPLIED_HASH = f"{GROUP}/applied-hash"
MANAGED_BY = "metalk8s-solutions"
CONFIG_MOUNT = "/etc/config"
RBAC_API = "rbac.authorization.k8s.io/v1"
_DNS_LABEL = re.compile(r"^(?!-)[0-9a-z-]{1,63}(?<!-)$")
#: A label value (what MetalK8s accepts as an environment name when namespaces are given).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
#: Namespaces of Kubernetes itself and of this tool's records: never part of an environment.
SYSTEM_NAMESPACES = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", "metalk8s-solutions"}
)


def check_dns_label(value: str, what: str) -> str:
    """``value`` if it is a DNS label (a Namespace or environment name), else InvalidInput."""
    if not _DNS_LABEL.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid name",
            hint="use 1 to 63 lowercase letters, digits and '-', starting and ending with a "
            "letter or digit (e.g. 'prod' or 'team-a-test')",
        )
    return value


def check_not_system_namespace(namespace: str) -> str:
    """``namespace`` unless it is a system namespace (Kubernetes' own, ``kube-*``, or ours)."""
    if namespace in SYSTEM_NAMESPACES or namespace.startswith("kube-"):
        raise Refused(
            f"namespace {namespace} is a system namespace and cannot be part of an environment",
            hint="choose another namespace: an environment named otherwise (e.g. "
            f"'{command('env', 'create', 'prod')}'), or -N NAMESPACE",
        )
    return namespace


def check_env_name(value: str, *, namespaced: bool = True) -> str:
    """``value`` if it can name an environment, else InvalidInput.

    As in MetalK8s: any label value (``Team_A.prod``) when the environment's namespaces are
    named (``namespaced``), else a DNS label, since the namespace is then named like it.
    """
    if not namespaced:
        if _DNS_LABEL.match(value):
            return value
        if _LABEL_VALUE.match(value):
            raise InvalidInput(
                f"environment name {value!r} is not a valid name for its namespace",
                hint="name its namespace with --namespace/-N (e.g. -N "
                f"{re.sub(r'[^a-z0-9-]', '-', value.lower()).strip('-')[:63] or 'prod'})",
            )
    if not _LABEL_VALUE.match(value):
        raise InvalidInput(
            f"environment name {value!r} is not a valid name",
            hint="use 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a "
            "letter or digit (e.g. 'prod' or 'Team_A.test')",
        )
    return value


@dataclass(frozen=True)
class VersionContent:
    """What the desired objects need from one imported version's archive."""

    manifest: SolutionManifest
    roles: tuple[Mapping[str, Any], ...] = ()  # documents of operator/deploy/role.yaml
    crds: tuple[Mapping[str, Any], ...] = ()  # documents of operator/deploy/crds/*.yaml
    digests: Mapping[str, str] = field(default_factory=dict)  # "image:tag" -> "sha256:..."
    monitoring: MonitoringContent = field(default_factory=MonitoringContent)  # monitoring/

    @property
    def declares_monitoring(self) -> bool:
        """True when the version ships Prometheus Operator objects or operator metrics."""
        metrics = self.manifest.operator_metrics
        return bool(self.monitoring.documents) or (metrics is not None and metrics.enabled)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


@dataclass(frozen=True)
class IngressTarget:
    """How Ingresses of Solution UIs are made: the IngressClass and the host (None: any);
    chosen by :func:`engine.solution_ui.choose_ingress`."""

    class_name: str
    host: str | None = None
    tls_secret: str | None = None


@dataclass(frozen=True)
class Settings:
    """What the environment's administrator chose once and that must survive every converge."""

    endpoint: str
    #: solutions allowed to hold cluster-scoped rules (persisted on metalk8s-environment)
    cluster_scope: frozenset[str] = frozenset()
    #: approvals of privileged role rules (escalate, bind, impersonate, exec, tokens, writing
    #: namespaces: see api.crd.privileged_grants), as ``<solution>@<digest>``
    privileged: frozenset[str] = frozenset()
    #: how Solution UIs get an Ingress (None: they are reached through ``solutions ui`` only)
    ingress: IngressTarget | None = None
    #: (namespace, solution) whose operator gets the webhook Secret ``<sol>-cert`` at ``/cert``
    #: (``add-solution --webhook``, persisted on the Namespace)
    webhook: frozenset[tuple[str, str]] = frozenset()
    #: the live certificates and whether cert-manager is installed (None: none live, no
    #: cert-manager; new certificates are generated)
    keys: KeyStore | None = None
    #: image references pods of the environment may use besides the imported ones
    #: (``--allow-image``, persisted on the Namespace; see engine/admission.py)
    allowed_images: frozenset[str] = frozenset()


def operator_name(solution: str) -> str:
    return f"{solution}-operator"


def config_name(solution: str) -> str:
    return f"{solution}-operator-config"


def labels_for(
    env: str, solution: str, version: str, component: str = "operator"
) -> dict[str, str]:
    """The labels of everything deployed for ``solution`` (the brief's contract) in ``env``.

    ``component`` is ``operator`` (the contract's) or ``ui`` (the Solution's own UI); name and
    instance are ``<solution>-<component>``.
    """
    name = f"{solution}-{component}"
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": solution,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        ENV_LABEL: env,
    }


#: The components we deploy: per solution its operator and its UI (``engine/solution_ui.py``);
#: per environment the admission policy of its images (``engine/admission.py``).
COMPONENTS = ("operator", "ui", "admission")


def selector_for(env: str, solution: str | None = None) -> dict[str, str | tuple[str, ...]]:
    """The label selector that finds what we deployed in ``env`` (for one solution or all)."""
    selector: dict[str, str | tuple[str, ...]] = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": COMPONENTS,
        ENV_LABEL: env,
    }
    if solution is not None:
        selector["app.kubernetes.io/part-of"] = solution
    return selector


def with_hash(obj: Obj) -> Obj:
    """``obj`` with an annotation hashing its content: any change of ours changes the hash.

    Comparing our fields with the live object tells "someone changed it"; the hash also tells
    "we stopped setting a field" (which a subset comparison cannot see).
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("annotations", {})[APPLIED_HASH] = digest
    return out


# -- OperatorConfig -------------------------------------------------------------------------


def operator_config(endpoint: str, versions: Iterable[VersionContent]) -> str:
    """The ``operator.yaml`` listing every imported version of one solution."""
    repositories: dict[str, list[dict[str, Any]]] = {}
    for content in sorted(versions, key=lambda c: version_key(c.version)):
        repositories[content.version] = [
            {
                "endpoint": f"{endpoint.rstrip('/')}/{content.manifest.id}",
                "images": [str(image) for image in content.manifest.images],
            }
        ]
    doc = {
        "apiVersion": OPERATOR_CONFIG_API,
        "kind": "OperatorConfig",
        "repositories": repositories,
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def operator_image(endpoint: str, content: VersionContent) -> str:
    """``<endpoint>/<id>/<image>@sha256:...`` of the operator (see :func:`image_reference`)."""
    return image_reference(endpoint, content, content.manifest.operator_image)


def image_reference(endpoint: str, content: VersionContent, ref: ImageRef) -> str:
    """``<endpoint>/<id>/<image>@sha256:...`` (by tag only when the digest is unknown)."""
    base = f"{endpoint.rstrip('/')}/{content.manifest.id}/{ref.name}"
    digest = content.digests.get(str(ref))
    return f"{base}@{digest}" if digest else f"{base}:{ref.tag}"


# -- RBAC -----------------------------------------------------------------------------------


def cluster_crds_of(content: VersionContent) -> set[tuple[str, str]]:
    """(group, plural) of the version's cluster-scoped CRDs."""
    return cluster_scoped_crds(content.crds)


def _rule_needs_cluster(rule: Mapping[str, Any], cluster_crds: set[tuple[str, str]]) -> bool:
    return bool(cluster_scoped_grants(rule, cluster_crds))


def _is_admin_rule(rule: Mapping[str, Any]) -> bool:
    def star(key: str) -> bool:
        return "*" in (rule.get(key) or [])

    return star("verbs") and star("resources") and star("apiGroups")


def privileged_rules(content: VersionContent, *, legacy: bool = False) -> list[str]:
    """Each privileged rule of ``role.yaml`` (see :func:`api.crd.privileged_grants`), described:
    what an administrator approves with ``--allow-privileged-role`` (``legacy``: as the releases
    before issue 17 described them, see :func:`api.crd.legacy_privileged_grants`)."""
    grants = legacy_privileged_grants if legacy else privileged_grants
    found: list[str] = []
    for doc in content.roles:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        for rule in doc.get("rules") or []:
            reasons = grants(rule)
            if reasons and not _is_admin_rule(rule):
                found.append(f"{kind} {name} rule {_describe_rule(rule)} ({', '.join(reasons)})")
    return found


def privileged_approval(content: VersionContent, *, legacy: bool = False) -> str:
    """What ``--allow-privileged-role`` records for ``content``: ``<solution>@<digest>`` of its
    privileged rules, so that an approval covers exactly these rules and a version that asks for
    other privileged rights needs a new approval."""
    rules = "\n".join(sorted(privileged_rules(content, legacy=legacy)))
    return f"{content.name}@{hashlib.sha256(rules.encode()).hexdigest()[:16]}"


def is_approved(content: VersionContent, approvals: Iterable[str]) -> bool:
    """True when ``approvals`` hold the approval of ``content``'s privileged rules: the one
    :func:`privileged_approval` records, or the one a release before issue 17 recorded for the
    same version (its digest covered wildcards and every secret too), so that no environment
    approved then is refused now."""
    recorded = set(approvals)
    return privileged_approval(content) in recorded or (
        privileged_approval(content, legacy=True) in recorded
    )


def approved_solution(approval: str) -> str:
    """The solution an approval recorded by :func:`privileged_approval` is for."""
    return approval.split("@", 1)[0]


def check_roles(content: VersionContent, *, privileged_allowed: bool = False) -> list[str]:
    """Reasons to refuse ``role.yaml`` of this version (empty when acceptable).

    Only what reaches beyond the environment's namespaces is refused: other kinds,
    ``aggregationRule``, cluster-admin, and privileged rules (:func:`api.crd.privileged_grants`)
    unless approved.  Rules a RoleBinding cannot grant are not refused (MetalK8s binds every
    role with RoleBindings): :func:`role_warnings` says what they would need.
    """
    problems: list[str] = []
    for doc in content.roles:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        where = f"{content.manifest.id} role.yaml {kind} {name}"
        if kind not in ("Role", "ClusterRole"):
            problems.append(f"{where}: only Role and ClusterRole documents are allowed")
            continue
        if doc.get("aggregationRule"):
            problems.append(f"{where}: aggregationRule is not allowed (it can grow without bound)")
        for rule in doc.get("rules") or []:
            if _is_admin_rule(rule):
                problems.append(
                    f"{where}: a rule grants every verb on every resource (cluster-admin); "
                    "operators never get that"
                )
                continue
            reasons = privileged_grants(rule)
            if reasons and not privileged_allowed:
                problems.append(
                    f"{where}: rule {_describe_rule(rule)} is privileged ({', '.join(reasons)}); "
                    "pass --allow-privileged-role if you approve these rights for this operator"
                )
    return problems


#: What an operator's metrics authentication needs (granted with https metrics, as
#: ``system:auth-delegator``), as :func:`cluster_scoped_grants` names it.
METRICS_AUTH_GRANTS = {
    "authentication.k8s.io/tokenreviews",
    "authorization.k8s.io/subjectaccessreviews",
}


def role_warnings(content: VersionContent, *, cluster_scope_allowed: bool) -> list[str]:
    """One line per rule of ``role.yaml`` that the RoleBindings in the environment's namespaces
    cannot grant (cluster-scoped resources, non-resource URLs), saying what it would need; none
    when the administrator allowed cluster scope (those rules then get a ClusterRoleBinding)."""
    if cluster_scope_allowed:
        return []
    cluster_crds = cluster_crds_of(content)
    metrics = content.manifest.operator_metrics
    # https metrics: the operator is bound to system:auth-delegator (engine/monitoring.py)
    delegated = (
        METRICS_AUTH_GRANTS if metrics and metrics.enabled and metrics.scheme == "https" else set()
    )
    found: list[str] = []
    for doc in content.roles:
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        for rule in doc.get("rules") or []:
            wide = cluster_scoped_grants(rule, cluster_crds)
            if wide and set(wide) <= delegated:
                continue
            if wide and not _is_admin_rule(rule):
                found.append(
                    f"{content.manifest.id} role.yaml {kind} {name}: rule "
                    f"{_describe_rule(rule)} {cluster_scope_warning(wide)}"
                )
    return found


def _describe_rule(rule: Mapping[str, Any]) -> str:
    if rule.get("nonResourceURLs"):
        return f"nonResourceURLs={','.join(rule['nonResourceURLs'])}"
    groups = ",".join(g or '""' for g in rule.get("apiGroups") or [])
    return f"{groups}/{','.join(rule.get('resources') or [])}"


def _role_name(solution: str, name: str) -> str:
    return name if name.startswith(solution) else f"{solution}-{name}"


def cluster_role_name(env: str, content: VersionContent, name: str) -> str:
    return f"solutions:{env}:{content.manifest.id}:{name}"


# -- the objects ----------------------------------------------------------------------------


def _meta(name: str, labels: Mapping[str, str], namespace: str | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def pod_selector(labels: Mapping[str, str]) -> dict[str, str]:
    """What selects the pods of a component: its name and instance labels, which never change
    across versions (a Deployment's selector is immutable)."""
    return {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}


#: The user our pods run as when the image does not say (``nobody``): a numeric uid, so that the
#: kubelet can check ``runAsNonRoot`` whatever the image's ``User``.
POD_UID = 65534
TMP_VOLUME = "tmp"
TMP_MOUNT = "/tmp"  # noqa: S108 - a private emptyDir of the pod, not the host's /tmp


def restricted(pod_spec: Obj) -> Obj:
    """``pod_spec`` made to pass the Pod Security ``restricted`` level, and more.

    Non-root numeric user, seccomp ``RuntimeDefault``; in each container no privilege
    escalation, every capability dropped and a read-only root file system, with a writable
    ``emptyDir`` at ``/tmp`` for what needs scratch space.
    """
    spec = copy.deepcopy(pod_spec)
    spec["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": POD_UID,
        "runAsGroup": POD_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in spec["containers"]:
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        container.setdefault("volumeMounts", []).append(
            {"name": TMP_VOLUME, "mountPath": TMP_MOUNT}
        )
    spec.setdefault("volumes", []).append({"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
    return spec


def deployment_object(name: str, namespace: str, labels: Mapping[str, str], pod_spec: Obj) -> Obj:
    """A one-replica Deployment ``name`` whose pods carry ``labels`` and run ``pod_spec``, made
    :func:`restricted`."""
    pod_spec = restricted(pod_spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, labels, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": pod_selector(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def _deployment(
    namespace: str,
    labels: Mapping[str, str],
    image: str,
    solution: str,
    port: Mapping[str, Any] | None = None,
    *,
    metrics: OperatorMetrics | None = None,
    webhook: bool = False,
) -> Obj:
    name = operator_name(solution)
    command = [name, f"--config={CONFIG_MOUNT}/operator.yaml"]
    mounts: list[Obj] = [{"name": "operator-config", "mountPath": CONFIG_MOUNT, "readOnly": True}]
    volumes: list[Obj] = [{"name": "operator-config", "configMap": {"name": config_name(solution)}}]
    if metrics is not None and metrics.enabled:  # as MetalK8s (PR 4813) passes them
        command.append(f"--metrics-bind-address=:{metrics.port}")
        if metrics.scheme == "https":
            command.append(f"--metrics-cert-path={certs.METRICS_CERT_MOUNT}")
            volume, mount = certs.secret_volume(
                certs.METRICS_CERT_VOLUME,
                certs.metrics_secret_name(solution),
                certs.METRICS_CERT_MOUNT,
            )
            volumes.append(volume)
            mounts.append(mount)
    if webhook:  # add-solution --webhook: Secret <sol>-cert at /cert, as MetalK8s mounts it
        volume, mount = certs.secret_volume(
            certs.WEBHOOK_CERT_VOLUME, certs.webhook_secret_name(solution), certs.WEBHOOK_CERT_MOUNT
        )
        volumes.append(volume)
        mounts.append(mount)
    container: Obj = {
        "name": "operator",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": [
            {
                "name": "WATCH_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "OPERATOR_NAME", "value": name},
        ],
        "volumeMounts": mounts,
    }
    if port is not None:  # spec.operator.metrics: the named port the metrics Service targets
        container["ports"] = [dict(port)]
    pod_spec = {"serviceAccountName": name, "containers": [container], "volumes": volumes}
    return deployment_object(name, namespace, labels, pod_spec)
