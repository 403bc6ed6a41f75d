"""Environments as read from the cluster: labelled Namespaces and their ``metalk8s-environment``.

Pure: built from the API's JSON (a Namespace LIST and each namespace's ConfigMap), so that both
the async engine (:mod:`metalk8s_solutions.cluster.resources`) and the listings' lean client
(:mod:`metalk8s_solutions.cluster.lean`) read environments the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.cluster.state import ENV_DESCRIPTION, ENV_LABEL

CLUSTER_SCOPE_ANNOTATION = "solutions.metalk8s.scality.com/allow-cluster-scope"
PRIVILEGED_ANNOTATION = "solutions.metalk8s.scality.com/allow-privileged-role"
#: Solutions whose operator gets the webhook Secret at /cert (``add-solution --webhook``).
WEBHOOK_ANNOTATION = "solutions.metalk8s.scality.com/webhook"
#: Image references the administrator allowed besides the imported ones, as
#: ``<solution>=<reference>`` (``add-solution --allow-image``; they go with the solution).
ALLOWED_IMAGES_ANNOTATION = "solutions.metalk8s.scality.com/allow-image"
#: Pod Security admission levels, from the strictest; environments default to the first.
POD_SECURITY_LEVELS = ("restricted", "baseline", "privileged")
POD_SECURITY_LABEL = "pod-security.kubernetes.io"


@dataclass
class NamespaceState:
    """One namespace of an environment: what runs there and what was allowed there."""

    name: str
    config: dict[str, str] = field(default_factory=dict)  # solution -> version
    cluster_scope: set[str] = field(default_factory=set)  # solutions allowed cluster scope
    privileged: set[str] = field(default_factory=set)  # approvals: <solution>@<rules digest>
    webhook: set[str] = field(default_factory=set)  # solutions deployed with --webhook
    allowed_images: set[str] = field(default_factory=set)  # <solution>=<image reference>
    pod_security: str | None = None  # the Pod Security level the namespace enforces
    config_exists: bool = False
    resource_version: str | None = None
    terminating: bool = False


@dataclass
class EnvironmentState:
    name: str
    description: str = ""
    namespaces: dict[str, NamespaceState] = field(default_factory=dict)

    def configs(self) -> dict[str, dict[str, str]]:
        return {ns: dict(s.config) for ns, s in self.namespaces.items()}

    def cluster_scope(self) -> frozenset[str]:
        return frozenset(sol for s in self.namespaces.values() for sol in s.cluster_scope)

    def privileged(self) -> frozenset[str]:
        return frozenset(sol for s in self.namespaces.values() for sol in s.privileged)

    def webhook(self) -> frozenset[tuple[str, str]]:
        """(namespace, solution) of the operators that get the webhook Secret at /cert."""
        return frozenset((ns, sol) for ns, s in self.namespaces.items() for sol in s.webhook)

    def allowed_images(self) -> frozenset[str]:
        """The image references allowed in the environment besides the imported ones."""
        return frozenset(
            entry.split("=", 1)[1]
            for s in self.namespaces.values()
            for entry in s.allowed_images
            if "=" in entry
        )

    def pod_security(self) -> str | None:
        """The strictest Pod Security level among the namespaces (None: none enforced)."""
        levels = [s.pod_security for s in self.namespaces.values() if s.pod_security]
        return min(levels, key=POD_SECURITY_LEVELS.index, default=None)

    def to_json(self) -> dict[str, Any]:
        """The whole-state view's form: ``{name, description, namespaces: {ns: {config}}}``."""
        return {
            "name": self.name,
            "description": self.description,
            "namespaces": {
                ns: {"config": dict(sorted(s.config.items()))}
                for ns, s in sorted(self.namespaces.items())
            },
        }


def _listed(value: object) -> set[str]:
    return {s for s in str(value or "").split(",") if s}


def environment_states(namespaces: Iterable[Mapping[str, Any]]) -> dict[str, EnvironmentState]:
    """Environments from the items of a Namespace LIST (labelled ``ENV_LABEL``), without their
    configuration (see :func:`set_config`)."""
    envs: dict[str, EnvironmentState] = {}
    for item in namespaces:
        meta = item.get("metadata") or {}
        name = str((meta.get("labels") or {}).get(ENV_LABEL, ""))
        state = envs.setdefault(name, EnvironmentState(name))
        description = (meta.get("annotations") or {}).get(ENV_DESCRIPTION)
        if description:
            state.description = description
        level = (meta.get("labels") or {}).get(f"{POD_SECURITY_LABEL}/enforce")
        # The administrator's approvals live on the Namespace, which a namespaced role cannot
        # grant writing (an operator may well update ConfigMaps, metalk8s-environment included).
        approvals = meta.get("annotations") or {}
        ns = NamespaceState(
            str(meta.get("name")),
            terminating=(item.get("status") or {}).get("phase") == "Terminating",
            pod_security=level if level in POD_SECURITY_LEVELS else None,
            cluster_scope=_listed(approvals.get(CLUSTER_SCOPE_ANNOTATION)),
            privileged=_listed(approvals.get(PRIVILEGED_ANNOTATION)),
            webhook=_listed(approvals.get(WEBHOOK_ANNOTATION)),
            allowed_images=_listed(approvals.get(ALLOWED_IMAGES_ANNOTATION)),
        )
        state.namespaces[ns.name] = ns
    return envs


def set_config(ns: NamespaceState, configmap: Mapping[str, Any] | None) -> None:
    """``ns``'s solutions from its ``metalk8s-environment`` ConfigMap (None: there is none)."""
    if configmap is None:
        return
    meta = configmap.get("metadata") or {}
    ns.config = {str(k): str(v) for k, v in (configmap.get("data") or {}).items()}
    ns.config_exists = True
    ns.resource_version = meta.get("resourceVersion")
