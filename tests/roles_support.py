"""A role.yaml shaped as the upstream example Solution's (kubebuilder's layout, 1.1.x): a manager
ClusterRole on the Solution's own group, a leader-election Role, the metrics ClusterRoles
(tokenreviews/subjectaccessreviews, ``/metrics``) and admin/editor/viewer ClusterRoles per kind,
the admin ones with ``*`` verbs.  Written here (not read from any archive) for ``group``."""

from __future__ import annotations

import json
from typing import Any

RBAC = "rbac.authorization.k8s.io/v1"
ALL_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _fresh(value: Any) -> Any:
    """``value`` with no list or mapping shared (YAML would write shared ones as aliases)."""
    return json.loads(json.dumps(value))


def _doc(kind: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    doc = {"apiVersion": RBAC, "kind": kind, "metadata": {"name": name}, "rules": rules}
    return _fresh(doc)


def metalk8s_example_roles(group: str, kinds: tuple[str, ...] = ("gadgets",)) -> list[Any]:
    """The documents of role.yaml, for custom resources ``kinds`` (plurals) of ``group``."""
    docs = [
        _doc(
            "ClusterRole",
            "manager-role",
            [
                {"apiGroups": [""], "resources": ["services"], "verbs": ALL_VERBS},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ALL_VERBS},
                {"apiGroups": [group], "resources": list(kinds), "verbs": ALL_VERBS},
                {
                    "apiGroups": [group],
                    "resources": [f"{k}/finalizers" for k in kinds],
                    "verbs": ["update"],
                },
                {
                    "apiGroups": [group],
                    "resources": [f"{k}/status" for k in kinds],
                    "verbs": ["get", "patch", "update"],
                },
            ],
        ),
        _doc(
            "Role",
            "leader-election-role",
            [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ALL_VERBS},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ALL_VERBS},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ],
        ),
        _doc(
            "ClusterRole",
            "metrics-auth-role",
            [
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["tokenreviews"],
                    "verbs": ["create"],
                },
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["subjectaccessreviews"],
                    "verbs": ["create"],
                },
            ],
        ),
        _doc(
            "ClusterRole", "metrics-reader", [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
        ),
    ]
    for plural in kinds:
        singular = plural.removesuffix("s")
        status = {"apiGroups": [group], "resources": [f"{plural}/status"], "verbs": ["get"]}
        docs += [
            _doc(
                "ClusterRole",
                f"{singular}-admin-role",
                [{"apiGroups": [group], "resources": [plural], "verbs": ["*"]}, status],
            ),
            _doc(
                "ClusterRole",
                f"{singular}-editor-role",
                [{"apiGroups": [group], "resources": [plural], "verbs": ALL_VERBS}, status],
            ),
            _doc(
                "ClusterRole",
                f"{singular}-viewer-role",
                [
                    {
                        "apiGroups": [group],
                        "resources": [plural],
                        "verbs": ["get", "list", "watch"],
                    },
                    status,
                ],
            ),
        ]
    return _fresh(docs)


def metalk8s_legacy_role(solution: str, group: str) -> dict[str, Any]:
    """A role.yaml Role shaped as the example's 1.0.x one (operator-sdk 0.x): ``*`` verbs on the
    core resources it manages, secrets included, and ``*`` on every resource of its own group."""
    return _doc(
        "Role",
        f"{solution}-operator",
        [
            {
                "apiGroups": [""],
                "resources": ["pods", "services", "endpoints", "events", "configmaps", "secrets"],
                "verbs": ["*"],
            },
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["*"]},
            {
                "apiGroups": ["apps"],
                "resourceNames": [f"{solution}-operator"],
                "resources": ["deployments/finalizers"],
                "verbs": ["update"],
            },
            {"apiGroups": [group], "resources": ["*"], "verbs": ["*"]},
        ],
    )
