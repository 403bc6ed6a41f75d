"""Environments MetalK8s deployed: which objects its Salt formulas made, so that we take them over.

MetalK8s (``solutions.sh add-solution`` and the ``prepare-environment`` orchestrate) deploys
solution ``S`` in an environment namespace as plain objects that carry none of our labels:
ServiceAccount ``S-operator``, ConfigMap ``S-operator-config``, Deployment ``S-operator`` selecting
its pods by ``app: S-operator``, each Role of the archive's ``role.yaml`` under its own name with
a RoleBinding ``S-operator-<kind>-<role>`` (older MetalK8s: Role and RoleBinding ``S-operator``),
and each ClusterRole of ``role.yaml`` cluster-wide under its own name, shared by every namespace
and environment that runs ``S``.

Adoption is explicit, never a guess on names alone: only in a namespace of the environment, only
for a solution that the namespace's ``metalk8s-environment`` names (before or after the change),
only objects without our ``managed-by`` label, and only these shapes:

- Deployment ``S-operator`` whose selector is exactly ``app: S-operator``;
- ServiceAccount ``S-operator``, ConfigMap ``S-operator-config`` and (operator metrics, MetalK8s
  129) Service ``S-operator-metrics``, ServiceMonitor ``S-operator``, cert-manager's Issuer
  ``S-operator-metrics-issuer`` and Certificate ``S-operator-metrics-cert``, beside that
  Deployment or labelled ``app: S-operator`` (what MetalK8s labels them with); and the Secret
  cert-manager wrote for that Certificate (annotated with its name), unless a Certificate of
  ours keeps it;
- ConfigMap, Deployment, Service and Ingress ``S-ui`` labelled ``app: S-ui`` (the admin UI that
  MetalK8s 2.x deployed in each environment namespace);
- ClusterRoleBinding ``S-operator-metrics-auth`` labelled ``app: S-operator`` whose only subject
  is the ServiceAccount of that namespace, and its ClusterRole once nothing else grants it;
- RoleBindings named ``S-operator`` or ``S-operator-role-*`` / ``S-operator-clusterrole-*`` whose
  only subject is ServiceAccount ``S-operator``;
- the Roles those bindings grant, when ``role.yaml`` of an imported version of ``S`` names them
  (or ``S-operator``, the older formula's);
- the ClusterRoles those bindings grant, when ``role.yaml`` of an imported version of ``S`` names
  them and no other binding in the cluster grants them any more.

The caller turns what this finds into changes: an object we deploy under the same name is
*replaced* (deleted, then created: a Deployment's selector is immutable, and a take-over by
server-side apply would keep MetalK8s's fields, e.g. a second container); any other is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.cluster.apply import (
    KINDS,
    Action,
    Change,
    ObjectKey,
    get_object,
    key_of,
    list_objects,
    order,
    request,
)
from metalk8s_solutions.cluster.kube import Kube
from metalk8s_solutions.engine import certificates as certs
from metalk8s_solutions.engine.desired import MANAGED_BY, VersionContent, operator_name

Obj = dict[str, Any]
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
#: The label MetalK8s's templates select and mark the operator's objects with.
SALT_APP = "app"
REASON = "made by MetalK8s"
RBAC_API = "rbac.authorization.k8s.io/v1"
#: Objects MetalK8s names after the operator (``S-operator`` + suffix), beside its Deployment or
#: labelled ``app: S-operator``: its ServiceAccount, OperatorConfig, and (MetalK8s 129, operator
#: metrics) the metrics Service and the ServiceMonitor.
NAMED = (
    ("ServiceAccount", ""),
    ("ConfigMap", "-config"),
    ("Service", "-metrics"),
    ("ServiceMonitor", ""),
    # https metrics with cert-manager installed: a self-signed Issuer and the Certificate
    ("Issuer", "-metrics-issuer"),
    ("Certificate", "-metrics-cert"),
)

#: MetalK8s 2.x deployed an admin UI per environment namespace: ConfigMap, Deployment, Service
#: and Ingress ``S-ui``, labelled ``app: S-ui``.
UI_KINDS = ("ConfigMap", "Deployment", "Service", "Ingress")
#: MetalK8s's ClusterRole and ClusterRoleBinding ``S-operator-metrics-auth`` (token and access
#: reviews, for the metrics endpoint's authentication).
METRICS_AUTH = "-metrics-auth"


def is_ours(obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


@dataclass(frozen=True)
class RoleNames:
    """The Role and ClusterRole names of ``role.yaml``, over every imported version."""

    roles: frozenset[str] = frozenset()
    cluster_roles: frozenset[str] = frozenset()


def role_names(contents: Iterable[VersionContent]) -> dict[str, RoleNames]:
    """Solution -> the names its ``role.yaml`` documents use, in any imported version."""
    roles: dict[str, set[str]] = {}
    cluster: dict[str, set[str]] = {}
    for content in contents:
        for doc in content.roles:
            name = str((doc.get("metadata") or {}).get("name") or "")
            if not name:
                continue
            target = cluster if doc.get("kind") == "ClusterRole" else roles
            target.setdefault(content.name, set()).add(name)
    names = set(roles) | set(cluster)
    return {s: RoleNames(frozenset(roles.get(s, ())), frozenset(cluster.get(s, ()))) for s in names}


@dataclass
class SaltObjects:
    """What MetalK8s deployed: namespaced objects, and the ClusterRoles only they still grant."""

    objects: list[Obj] = field(default_factory=list)
    cluster_roles: list[Obj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.objects or self.cluster_roles)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def is_salt_deployment(obj: Mapping[str, Any], solution: str) -> bool:
    """The operator Deployment MetalK8s made for ``solution``: selector ``app: S-operator``."""
    sa = operator_name(solution)
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels")
    return _name(obj) == sa and not is_ours(obj) and selector == {SALT_APP: sa}


def deployed_by(obj: Mapping[str, Any] | None, solution: str) -> str | None:
    """Who deployed the operator Deployment ``obj``: "Solutions", "MetalK8s", or None (unknown
    or absent)."""
    if obj is None:
        return None
    if is_ours(obj):
        return "Solutions"
    return "MetalK8s" if is_salt_deployment(obj, solution) else None


def _salt_binding(obj: Mapping[str, Any], solution: str) -> bool:
    sa = operator_name(solution)
    name = _name(obj)
    named = name == sa or name.startswith((f"{sa}-role-", f"{sa}-clusterrole-"))
    subjects = obj.get("subjects") or []
    only_sa = len(subjects) == 1 and (
        subjects[0].get("kind") == "ServiceAccount" and subjects[0].get("name") == sa
    )
    return named and only_sa and not is_ours(obj)


def _by_name(objs: Iterable[Obj]) -> dict[str, Obj]:
    return {_name(o): o for o in objs}


async def _in_namespace(
    kube: Kube, namespace: str, solutions: Collection[str], names: Mapping[str, RoleNames]
) -> tuple[list[Obj], set[str]]:
    """MetalK8s's objects of ``solutions`` in ``namespace``; and the ClusterRoles they bind."""
    kinds = tuple(
        dict.fromkeys(("Deployment", "RoleBinding", "Role", *(k for k, _ in NAMED), *UI_KINDS))
    )
    listed = await asyncio.gather(*(list_objects(kube, KINDS[k], {}, namespace) for k in kinds))
    by_kind = {k: _by_name(items) for k, items in zip(kinds, listed, strict=True)}
    deployments, bindings, roles = by_kind["Deployment"], by_kind["RoleBinding"], by_kind["Role"]
    found: list[Obj] = []
    cluster_roles: set[str] = set()
    for solution in sorted(solutions):
        sa = operator_name(solution)
        known = names.get(solution, RoleNames())
        deployment = deployments.get(sa)
        salt_deployment = deployment is not None and is_salt_deployment(deployment, solution)
        if salt_deployment and deployment is not None:
            found.append(deployment)
        found += await _named(kube, namespace, by_kind, sa, salt_deployment=salt_deployment)
        ui = f"{solution}-ui"
        for kind in UI_KINDS:
            obj = by_kind[kind].get(ui)
            if obj is not None and not is_ours(obj) and _labels(obj).get(SALT_APP) == ui:
                found.append(obj)
        for binding in bindings.values():
            if not _salt_binding(binding, solution):
                continue
            found.append(binding)
            ref = binding.get("roleRef") or {}
            ref_name = str(ref.get("name") or "")
            if ref.get("kind") == "ClusterRole" and ref_name in known.cluster_roles:
                cluster_roles.add(ref_name)
            role = roles.get(ref_name) if ref.get("kind") == "Role" else None
            if (
                role is not None
                and not is_ours(role)
                and (ref_name in known.roles or ref_name == sa)
                and role not in found
            ):
                found.append(role)
        metrics_auth = await _metrics_auth_binding(kube, namespace, sa)
        if metrics_auth is not None:
            found.append(metrics_auth)
            cluster_roles.add(f"{sa}{METRICS_AUTH}")
    return found, cluster_roles


async def _named(
    kube: Kube,
    namespace: str,
    by_kind: Mapping[str, Mapping[str, Obj]],
    sa: str,
    *,
    salt_deployment: bool,
) -> list[Obj]:
    """MetalK8s's objects of :data:`NAMED` for the operator ``sa``, and the Secret cert-manager
    wrote for its metrics Certificate."""
    found = [
        obj
        for kind, suffix in NAMED
        if (obj := by_kind[kind].get(f"{sa}{suffix}")) is not None
        and not is_ours(obj)
        and (salt_deployment or _labels(obj).get(SALT_APP) == sa)
    ]
    certificate = by_kind["Certificate"].get(f"{sa}-metrics-cert")
    if certificate is not None and certificate in found:
        issued = await certs.issued_secret(kube, namespace, certificate)
        if issued is not None and not is_ours(issued):
            found.append(issued)
    return found


async def _metrics_auth_binding(kube: Kube, namespace: str, sa: str) -> Obj | None:
    """MetalK8s's ClusterRoleBinding ``S-operator-metrics-auth`` (one per solution, cluster-wide),
    when it grants the ServiceAccount of ``namespace``."""
    name = f"{sa}{METRICS_AUTH}"
    binding = await get_object(kube, ObjectKey("ClusterRoleBinding", "", name))
    if binding is None or is_ours(binding) or _labels(binding).get(SALT_APP) != sa:
        return None
    subjects = binding.get("subjects") or []
    ref = binding.get("roleRef") or {}
    if ref.get("kind") != "ClusterRole" or ref.get("name") != name:
        return None
    if [(s.get("kind"), s.get("name"), s.get("namespace")) for s in subjects] != [
        ("ServiceAccount", sa, namespace)
    ]:
        return None
    binding["apiVersion"], binding["kind"] = RBAC_API, "ClusterRoleBinding"
    return binding


async def _still_granted(
    kube: Kube, names: set[str], gone: set[ObjectKey], doomed_namespaces: Collection[str]
) -> set[str]:
    """The ClusterRoles of ``names`` that a binding other than ``gone`` (and those of the
    ``doomed_namespaces``) still grants."""
    if not names:
        return set()
    rb, crb = await asyncio.gather(
        list_objects_all(kube, "RoleBinding"), list_objects_all(kube, "ClusterRoleBinding")
    )
    granted: set[str] = set()
    for binding in [*rb, *crb]:
        ref = binding.get("roleRef") or {}
        if ref.get("kind") != "ClusterRole" or ref.get("name") not in names:
            continue
        key = key_of(binding)
        if key in gone or (key.namespace and key.namespace in doomed_namespaces):
            continue
        granted.add(str(ref.get("name")))
    return granted


async def list_objects_all(kube: Kube, kind: str) -> list[Obj]:
    """Every object of ``kind`` in the cluster (all namespaces)."""
    info = KINDS[kind]
    group = "/api/" if "/" not in info.api_version else "/apis/"
    data = await request(
        kube,
        "GET",
        f"{group}{info.api_version}/{info.plural}",
        action=f"listing {info.plural}",
    )
    items: list[Obj] = list((data or {}).get("items") or [])
    for item in items:
        item["apiVersion"], item["kind"] = info.api_version, info.kind
    return items


async def find_salt_objects(
    kube: Kube,
    solutions: Mapping[str, Collection[str]],
    names: Mapping[str, RoleNames],
    *,
    doomed_namespaces: Collection[str] = (),
) -> SaltObjects:
    """MetalK8s's objects for ``solutions`` (namespace -> solution names).

    A ClusterRole is returned only when no binding but MetalK8s's ones found here (and any in
    ``doomed_namespaces``, which are being deleted) grants it.
    """
    jobs = [_in_namespace(kube, ns, sols, names) for ns, sols in sorted(solutions.items()) if sols]
    result = SaltObjects()
    candidates: set[str] = set()
    for objs, cluster in await asyncio.gather(*jobs):
        result.objects += objs
        candidates |= cluster
    if candidates:
        gone = {key_of(o) for o in result.objects}
        kept = await _still_granted(kube, candidates, gone, doomed_namespaces)
        for name in sorted(candidates - kept):
            live = await list_cluster_role(kube, name)
            if live is not None and not is_ours(live):
                result.cluster_roles.append(live)
    return result


async def list_cluster_role(kube: Kube, name: str) -> Obj | None:
    obj = await get_object(kube, ObjectKey("ClusterRole", "", name))
    if obj is not None:
        obj["apiVersion"], obj["kind"] = KINDS["ClusterRole"].api_version, "ClusterRole"
    return obj


def adopt(changes: Iterable[Change], found: SaltObjects) -> list[Change]:
    """``changes`` with MetalK8s's objects taken over: a create of the same object becomes a
    replace; every other one of them is deleted."""
    out = list(changes)
    creates = {c.key: i for i, c in enumerate(out) if c.action is Action.CREATE}
    # A Certificate of ours writing the same Secret: cert-manager keeps it (no reissue).
    issued = {
        ObjectKey("Secret", c.key.namespace, str((c.desired.get("spec") or {}).get("secretName")))
        for c in out
        if c.key.kind == "Certificate" and c.desired is not None
    }
    for obj in [*found.objects, *found.cluster_roles]:
        key = key_of(obj)
        if key in issued:
            continue
        index = creates.get(key)
        if index is not None:
            desired = out[index].desired
            note = REASON
            if key.kind == "Deployment":
                selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
                note += f", selector {shown} (immutable)"
            out[index] = Change(Action.REPLACE, key, desired, obj, note=note)
        elif not any(c.key == key for c in out):
            out.append(Change(Action.DELETE, key, live=obj, note=REASON))
    return order(out)
