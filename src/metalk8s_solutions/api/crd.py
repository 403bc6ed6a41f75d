"""What a Solution may ship as CRDs and roles, and what ``inspect`` shows of them.

CRDs are applied cluster-wide and serve every environment, so a broken one hurts everyone: only
``apiextensions.k8s.io/v1`` with structural schemas and exactly one storage version pass.  The
structural check is the subset of Kubernetes' rules that catches real mistakes (a node without
``type``, ``$ref``, types inside ``allOf``/``anyOf``/``oneOf``/``not``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from metalk8s_solutions.api.findings import Finding

CRD_API = "apiextensions.k8s.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"
MAX_SCHEMA_DEPTH = 64
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTOR = ("type", "additionalProperties", "default", "nullable", "description")


def _schema_problems(node: Any, where: str, depth: int, in_junctor: bool) -> Iterator[str]:
    if depth > MAX_SCHEMA_DEPTH:
        yield f"{where}: schema nested deeper than {MAX_SCHEMA_DEPTH} levels"
        return
    if not isinstance(node, dict):
        yield f"{where}: a schema must be a mapping"
        return
    if "$ref" in node:
        yield f"{where}: $ref is not allowed"
    if in_junctor:
        for key in _FORBIDDEN_IN_JUNCTOR:
            if key in node:
                yield f"{where}: {key} is not allowed inside allOf/anyOf/oneOf/not"
    elif not node.get("type") and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        yield f"{where}: type is missing"
    if "properties" in node and isinstance(node.get("additionalProperties"), dict):
        yield f"{where}: properties and additionalProperties are mutually exclusive"
    if not isinstance(node.get("properties", {}), dict):
        yield f"{where}.properties: must be a mapping"
    for child, child_where, junctor in _children(node, where):
        yield from _schema_problems(child, child_where, depth + 1, in_junctor or junctor)


def _children(node: dict[str, Any], where: str) -> Iterator[tuple[Any, str, bool]]:
    props = node.get("properties", {})
    if isinstance(props, dict):
        for name, child in props.items():
            yield child, f"{where}.properties.{name}", False
    if "items" in node:
        yield node["items"], f"{where}.items", False
    if isinstance(node.get("additionalProperties"), dict):
        yield node["additionalProperties"], f"{where}.additionalProperties", False
    for junctor in _JUNCTORS:
        if junctor in node:
            value = node[junctor]
            branches = value if isinstance(value, list) else [value]
            for i, branch in enumerate(branches):
                yield branch, f"{where}.{junctor}[{i}]", True


def check_crd(doc: Any, path: str) -> list[Finding]:
    """Problems of one CRD document (rules SOL040-SOL042)."""
    if not isinstance(doc, dict):
        return [Finding("SOL040", "a CRD document must be a mapping", path)]
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind != "CustomResourceDefinition" or api != CRD_API:
        return [
            Finding(
                "SOL040",
                f"expected {CRD_API} CustomResourceDefinition, found {api} {kind}",
                path,
            )
        ]
    spec = doc.get("spec")
    versions = spec.get("versions") if isinstance(spec, dict) else None
    name = doc.get("metadata", {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    label = f"CRD {name}" if name else "CRD"
    if not isinstance(versions, list) or not versions:
        return [Finding("SOL040", f"{label}: spec.versions must be a non-empty list", path)]
    findings: list[Finding] = []
    storage = []
    for version in versions:
        if not isinstance(version, dict):
            findings.append(Finding("SOL040", f"{label}: a version must be a mapping", path))
            continue
        vname = version.get("name")
        if version.get("storage") is True:
            storage.append(vname)
        schema = version.get("schema")
        root = schema.get("openAPIV3Schema") if isinstance(schema, dict) else None
        if root is None:
            findings.append(
                Finding(
                    "SOL041", f"{label} version {vname}: schema.openAPIV3Schema is missing", path
                )
            )
            continue
        problems = list(_schema_problems(root, "openAPIV3Schema", 0, False))
        if isinstance(root, dict) and root.get("type") not in (None, "object"):
            problems.append("openAPIV3Schema: the root type must be object")
        findings.extend(
            Finding("SOL041", f"{label} version {vname}: {p} (not a structural schema)", path)
            for p in problems[:5]
        )
    if len(storage) != 1:
        findings.append(
            Finding(
                "SOL042",
                f"{label} has {len(storage)} storage versions {storage}; exactly one is required",
                path,
            )
        )
    return findings


def summarize_crd(doc: Any) -> dict[str, Any]:
    """Group, kind, versions and storage version of a (checked) CRD, for ``inspect``."""
    spec = doc.get("spec", {}) if isinstance(doc, dict) else {}
    spec = spec if isinstance(spec, dict) else {}
    names = spec.get("names", {}) if isinstance(spec.get("names"), dict) else {}
    versions = [v for v in spec.get("versions", []) or [] if isinstance(v, dict)]
    storage = [v.get("name") for v in versions if v.get("storage") is True]
    return {
        "name": (doc.get("metadata") or {}).get("name") if isinstance(doc, dict) else None,
        "group": spec.get("group"),
        "kind": names.get("kind"),
        "scope": spec.get("scope"),
        "versions": [v.get("name") for v in versions if v.get("served", True)],
        "storageVersion": storage[0] if len(storage) == 1 else None,
    }


#: Verbs that let a subject step outside RBAC: grant what it does not hold, bind any role, act
#: as another user or service account.
PRIVILEGED_VERBS = ("escalate", "bind", "impersonate")
#: The only verb on secrets that needs no ``resourceNames`` to stay least-privilege (a created
#: secret is the operator's own; ``create`` cannot be limited by name anyway).
_SECRET_VERBS_WITHOUT_NAMES = frozenset({"create"})

#: Resources that exist outside namespaces (core Kubernetes): a RoleBinding cannot grant them
#: (except ``namespaces`` on the binding's own Namespace), only a ClusterRoleBinding can.
CLUSTER_SCOPED = frozenset(
    {
        ("", "nodes"),
        ("", "namespaces"),
        ("", "persistentvolumes"),
        ("", "componentstatuses"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("apiregistration.k8s.io", "apiservices"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "volumeattachments"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        ("networking.k8s.io", "ingressclasses"),
        ("certificates.k8s.io", "certificatesigningrequests"),
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("flowcontrol.apiserver.k8s.io", "flowschemas"),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"),
    }
)


def _strings(rule: Mapping[str, Any], key: str) -> list[str]:
    values = rule.get(key)
    return [str(v) for v in values] if isinstance(values, list) else []


def _matches(rule: Mapping[str, Any], group: str, resource: str) -> bool:
    groups, resources = _strings(rule, "apiGroups"), _strings(rule, "resources")
    sub = resource.partition("/")[2]
    return (group in groups or "*" in groups) and (
        resource in resources or "*" in resources or (bool(sub) and f"*/{sub}" in resources)
    )


def reaches(rule: Mapping[str, Any], group: str, resource: str, verbs: Iterable[str]) -> bool:
    """True when ``rule`` grants one of ``verbs`` on ``group``/``resource``, wildcards included
    (``*`` in a list, and ``*/<subresource>`` for a sub-resource), as the API server matches."""
    granted = _strings(rule, "verbs")
    return _matches(rule, group, resource) and ("*" in granted or any(v in granted for v in verbs))


def cluster_scoped_grants(
    rule: Mapping[str, Any], cluster_crds: Iterable[tuple[str, str]] = ()
) -> list[str]:
    """What of ``rule`` a namespaced RoleBinding cannot grant: non-resource URLs and
    cluster-scoped resources (core ones and ``cluster_crds``, (group, plural) of the Solution's
    cluster-scoped CRDs), wildcards expanded.  Empty when a RoleBinding grants all of it."""
    urls = _strings(rule, "nonResourceURLs")
    found = [f"nonResourceURLs {','.join(urls)}"] if urls else []
    found += [
        f"{group or 'core'}/{resource}"
        for group, resource in sorted({*CLUSTER_SCOPED, *cluster_crds})
        if _matches(rule, group, resource)
    ]
    return found


#: Sub-resources as good as reading every secret or running as another identity; through them
#: an operator reaches the rights of other identities, which may hold more than the namespace.
PRIVILEGED_SUBRESOURCES = {
    "pods/exec": "runs commands in any pod of the namespace (and reads what it mounts)",
    "pods/attach": "attaches to any pod of the namespace",
    "serviceaccounts/token": "mints tokens of any ServiceAccount of the namespace",
}
#: Where the privileged verbs act: a ``*`` verb on these resources holds them.
_ESCALATION_TARGETS = (
    ("rbac.authorization.k8s.io", "roles", ("escalate", "bind")),
    ("rbac.authorization.k8s.io", "clusterroles", ("escalate", "bind")),
    ("", "users", ("impersonate",)),
    ("", "groups", ("impersonate",)),
    ("", "serviceaccounts", ("impersonate",)),
    ("authentication.k8s.io", "userextras", ("impersonate",)),
    ("authentication.k8s.io", "uids", ("impersonate",)),
)


def privileged_grants(rule: Mapping[str, Any]) -> list[str]:
    """What makes one RBAC rule privileged: rights that reach beyond the environment's
    namespaces even through a namespaced RoleBinding (empty when there is none).

    The verbs ``escalate``, ``bind``, ``impersonate`` (named, or held through a ``*`` verb on
    roles, cluster roles, users, groups or service accounts); the sub-resources ``pods/exec``,
    ``pods/attach`` and ``serviceaccounts/token`` (named or through a wildcard); writing
    ``namespaces`` (a RoleBinding grants it on its own Namespace, where approvals are kept).
    Wildcards and every secret alone are broad but bounded to the namespace: see
    :func:`broad_grants`.  The check is on the rule, whatever the kind of role that holds it.
    """
    verbs = _strings(rule, "verbs")
    reasons = [f"verb {verb}" for verb in PRIVILEGED_VERBS if verb in verbs]
    if "*" in verbs:
        held = {
            verb
            for group, resource, escalations in _ESCALATION_TARGETS
            if reaches(rule, group, resource, ["*"])
            for verb in escalations
        }
        reasons += [f"verb {verb} (through '*')" for verb in PRIVILEGED_VERBS if verb in held]
    if reaches(rule, "", "namespaces", ("update", "patch", "delete")):
        reasons.append(NAMESPACES_REASON)
    reasons += [
        f"{resource}: {why}"
        for resource, why in PRIVILEGED_SUBRESOURCES.items()
        # exec and attach are create (and get, websockets)
        if reaches(rule, "", resource, ("create", "get"))
    ]
    return reasons


def cluster_scope_warning(grants: list[str]) -> str:
    """The warning for a rule whose :func:`cluster_scoped_grants` are ``grants``: what it would
    need."""
    shown = ", ".join(grants[:4]) + (f" and {len(grants) - 4} more" if len(grants) > 4 else "")
    return (
        f"grants {shown}, which a RoleBinding in the environment's namespaces cannot grant "
        "(the operator does not get it, as with MetalK8s); it needs a ClusterRoleBinding: the "
        "administrator's --allow-cluster-scope when adding the Solution"
    )


ALL_SECRETS_REASON = "every secret: secrets without resourceNames"
NAMESPACES_REASON = "namespaces: may rewrite its Namespace (Pod Security, approvals)"


def legacy_privileged_grants(rule: Mapping[str, Any]) -> list[str]:
    """The reasons the releases before issue 17 found in ``rule`` (wildcards and every secret
    were privileged then): the approvals they recorded are digests of these, and stay valid."""
    groups, resources, verbs = (_strings(rule, k) for k in ("apiGroups", "resources", "verbs"))
    reasons = [
        f"'*' in {key}"
        for key, values in zip(
            ("apiGroups", "resources", "verbs"), (groups, resources, verbs), strict=True
        )
        if "*" in values
    ]
    reasons += [f"verb {verb}" for verb in PRIVILEGED_VERBS if verb in verbs]
    if (
        "secrets" in [r.split("/")[0] for r in resources]
        and ("" in groups or "*" in groups)
        and not _strings(rule, "resourceNames")
        and not set(verbs) <= _SECRET_VERBS_WITHOUT_NAMES
    ):
        reasons.append(ALL_SECRETS_REASON)
    if "" in groups and "namespaces" in resources and set(verbs) & {"update", "patch", "delete"}:
        reasons.append(NAMESPACES_REASON)
    if "" in groups and set(verbs) & {"create", "get", "*"}:
        reasons += [f"{r}: {why}" for r, why in PRIVILEGED_SUBRESOURCES.items() if r in resources]
    return reasons


def broad_grants(rule: Mapping[str, Any]) -> list[str]:
    """What makes one rule broader than least privilege while staying within the namespaces it
    is bound in: wildcards, and every secret.  ``validate`` warns; deployment accepts them, as
    MetalK8s does (its example Solution's roles use both)."""
    reasons = [
        f"'*' in {key}" for key in ("apiGroups", "resources", "verbs") if "*" in _strings(rule, key)
    ]
    if grants_every_secret(rule):
        reasons.append(ALL_SECRETS_REASON)
    return reasons


def grants_every_secret(rule: Mapping[str, Any]) -> bool:
    """True when ``rule`` reaches every secret of a namespace (any verb but ``create``)."""
    groups = _strings(rule, "apiGroups")
    resources = [r.split("/")[0] for r in _strings(rule, "resources")]
    return (
        ("secrets" in resources or "*" in resources)
        and ("" in groups or "*" in groups)
        and not _strings(rule, "resourceNames")
        and not set(_strings(rule, "verbs")) <= _SECRET_VERBS_WITHOUT_NAMES
    )


def cluster_scoped_crds(docs: Iterable[Any]) -> set[tuple[str, str]]:
    """(group, plural) of the cluster-scoped CRDs among ``docs`` (archive content, any shape):
    a namespaced RoleBinding cannot grant them."""
    found: set[tuple[str, str]] = set()
    for doc in docs:
        spec = doc.get("spec") if isinstance(doc, dict) else None
        if isinstance(spec, dict) and spec.get("scope") == "Cluster":
            names = spec.get("names")
            plural = names.get("plural") if isinstance(names, dict) else None
            found.add((str(spec.get("group", "")), str(plural or "")))
    return found


def check_role(doc: Any, path: str, cluster_crds: Iterable[tuple[str, str]] = ()) -> list[Finding]:
    """Problems of one document of role.yaml (rules SOL051-SOL055).

    ``cluster_crds``: (group, plural) of the archive's cluster-scoped CRDs, which a namespaced
    RoleBinding cannot grant either (SOL053).
    """
    if not isinstance(doc, dict):
        return [Finding("SOL051", "a role document must be a mapping", path)]
    kind = doc.get("kind")
    if kind not in ("Role", "ClusterRole") or doc.get("apiVersion") != RBAC_API:
        return [
            Finding(
                "SOL051",
                f"only {RBAC_API} Role and ClusterRole are allowed, found "
                f"{doc.get('apiVersion')} {kind}",
                path,
            )
        ]
    name = (
        (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    )
    findings: list[Finding] = []
    rules = doc.get("rules") or []
    if not isinstance(rules, list):
        return [*findings, Finding("SOL051", f"{kind} {name}: rules must be a list", path)]
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            findings.append(Finding("SOL051", f"{kind} {name}: rules[{i}] must be a mapping", path))
            continue
        for key in ("apiGroups", "resources", "verbs", "nonResourceURLs"):
            values = rule.get(key) or []
            if isinstance(values, list) and "*" in values:
                findings.append(
                    Finding("SOL052", f"{kind} {name}: rules[{i}].{key} contains '*'", path)
                )
        wide = cluster_scoped_grants(rule, cluster_crds)
        if wide:
            findings.append(
                Finding("SOL053", f"{kind} {name}: rules[{i}] {cluster_scope_warning(wide)}", path)
            )
        verbs = [r.split(":")[0].removeprefix("verb ") for r in privileged_grants(rule)]
        if verbs:
            findings.append(
                Finding("SOL054", f"{kind} {name}: rules[{i}] grants {', '.join(verbs)}", path)
            )
        if grants_every_secret(rule):
            findings.append(
                Finding(
                    "SOL055",
                    f"{kind} {name}: rules[{i}] grants every secret (no resourceNames)",
                    path,
                )
            )
    return findings


def summarize_role(doc: Any) -> dict[str, Any]:
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    rules = doc.get("rules") if isinstance(doc, dict) else None
    return {
        "kind": doc.get("kind") if isinstance(doc, dict) else None,
        "name": metadata.get("name") if isinstance(metadata, dict) else None,
        "rules": len(rules) if isinstance(rules, list) else 0,
    }


def image_references(doc: Any, depth: int = 0) -> Iterator[str]:
    """Every string under an ``image`` key of a YAML document (bounded depth)."""
    if depth > 100:
        return
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from image_references(value, depth + 1)
    elif isinstance(doc, list):
        for item in doc:
            yield from image_references(item, depth + 1)
