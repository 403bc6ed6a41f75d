"""Only imported images run: the environment's ValidatingAdmissionPolicy and its binding.

The API server's own CEL admission (``admissionregistration.k8s.io/v1``, no webhook to run)
refuses a Pod, in any namespace of the environment, whose containers, init containers or
ephemeral containers use an image that is not

- a reference by digest (``...@sha256:<hex>``) whose digest is one of the images of the
  verified archives offered to the environment: every imported version of each Solution
  deployed there, as its OperatorConfig lists them (one operator serves instances of every
  imported version, so an instance left on 1.0.0 after the operator's upgrade keeps its pods),
  or
- a reference the administrator allowed explicitly (``--allow-image``, exact text).

- exactly ``<endpoint>/<name>-<version>/<image>:<tag>`` for an image the OperatorConfig offers:
  MetalK8s's operator contract gives operators ``name:tag`` entries to pull as
  ``<endpoint>/<entry>`` (the upstream example operator matches the entry's text exactly, so
  entries stay as MetalK8s wrote them).  From the built-in registry such a tag is served only
  out of the pinned, verified ISO, so it cannot be re-pointed; in push mode the tag lives in the
  administrator's registry, where whoever may push there could re-point it (the residual risk;
  an operator that pulls by digest avoids it).

Any other reference by tag is refused: the API server cannot know which digest a tag will
resolve to when the node pulls it.  The product deploys operators and Solution UIs by digest.
The digest decides: whatever the registry host or repository in the reference, a node that pulls
by digest gets exactly the imported bytes.

The allowed digests are written into the policy itself (a map literal, so that each check
costs the same for 10 digests or 1000), regenerated on every converge: the images of a
Solution removed from the environment, or of a version unimported, are no longer allowed.
A Pod UPDATE is refused only for an image the Pod did not already use, so that a running Pod
of an image no longer allowed can still be labelled, finalized and deleted.  The policy and its
binding exist while the environment runs at least one Solution; they are named after the
environment and pruned with it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from metalk8s_solutions.engine.desired import ENV_LABEL, MANAGED_BY, Obj, VersionContent
from metalk8s_solutions.errors import InvalidInput, command

API_VERSION = "admissionregistration.k8s.io/v1"
POLICY = "ValidatingAdmissionPolicy"
BINDING = "ValidatingAdmissionPolicyBinding"
#: The label value ``app.kubernetes.io/component`` of the policy and its binding.
COMPONENT = "admission"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: What an image reference may hold (the distribution reference grammar's characters): no
#: quote can reach the CEL text of the policy.
_REFERENCE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
_DIGEST_SUFFIX = len("sha256:") + 64


def policy_name(env: str) -> str:
    """``metalk8s-solutions-images-<env>``: a DNS subdomain for any environment name (an
    environment named otherwise, e.g. ``Team_A.prod``, gets a hash suffix to stay unique)."""
    safe = re.sub(r"[^a-z0-9-]", "-", env.lower())
    if safe != env:
        safe = f"{safe}-{hashlib.sha256(env.encode()).hexdigest()[:8]}"
    return f"metalk8s-solutions-images-{safe}"


def check_image_reference(ref: str) -> str:
    """``ref`` if it is an image reference an administrator may allow, else InvalidInput."""
    if not _REFERENCE.match(ref) or len(ref) > 512:
        raise InvalidInput(
            f"{ref!r} is not an image reference",
            hint="write it as the Pod spec does, e.g. registry.example:5000/tools/debug:1.2 or "
            "registry.example:5000/tools/debug@sha256:<hex>",
        )
    return ref


def allowed_digests(contents: Iterable[VersionContent]) -> list[str]:
    """The digests of every image of ``contents`` (the versions offered to an environment)."""
    return sorted({d for content in contents for d in content.digests.values() if _DIGEST.match(d)})


def _literal(values: Iterable[str]) -> str:
    """A CEL map literal ``{'a': true, ...}`` (membership in a map costs O(1))."""
    return "{" + ", ".join(f"'{v}': true" for v in sorted(set(values))) + "}"


def _images(root: str) -> str:
    kinds = ("containers", "initContainers", "ephemeralContainers")
    parts = [f"{root}.spec.containers.map(c, c.image)"] + [
        f"(has({root}.spec.{k}) ? {root}.spec.{k}.map(c, c.image) : [])" for k in kinds[1:]
    ]
    return " + ".join(parts)


def offered_references(endpoint: str, contents: Iterable[VersionContent]) -> list[str]:
    """``<endpoint>/<name>-<version>/<image>:<tag>`` of every image the OperatorConfig offers:
    what an operator pulls when it follows MetalK8s's contract (``<endpoint>/<image>``, the
    entry as written, e.g. the upstream example operator)."""
    base = endpoint.rstrip("/")
    found = {
        f"{base}/{content.manifest.id}/{image}"
        for content in contents
        for image in content.manifest.images
    }
    # Only what the reference grammar allows reaches the policy's CEL text (an empty image
    # name, as a MetalK8s archive may list, makes none).
    return sorted(ref for ref in found if _REFERENCE.match(ref) and len(ref) <= 512)


def admission_objects(
    env: str,
    contents: Iterable[VersionContent],
    exceptions: Iterable[str] = (),
    endpoint: str | None = None,
) -> list[Obj]:
    """The policy and its binding for ``env``, whose operators are offered ``contents`` (from
    the registry ``endpoint``), allowing also the image references ``exceptions`` (as
    written)."""
    name = policy_name(env)
    contents = list(contents)
    digests = allowed_digests(contents)
    references = offered_references(endpoint, contents) if endpoint else []
    allowed = [check_image_reference(ref) for ref in exceptions]
    labels = {
        "app.kubernetes.io/name": "metalk8s-solutions-images",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        ENV_LABEL: env,
    }
    hint = command(
        "env", "add-solution", env, "<solution>", "<version>", "--allow-image", "<image>"
    )
    message = (
        "'image ' + variables.refused.join(', ') + ' is not an image of a Solution deployed in "
        f"environment {env} (policy {name}: pods in the namespaces of an environment run only "
        "the images of the imported versions of the Solutions deployed there, by digest or as "
        "their OperatorConfig offers them); "
        f"to allow it: {hint}'"
    )
    policy: Obj = {
        "apiVersion": API_VERSION,
        "kind": POLICY,
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods", "pods/ephemeralcontainers"],
                    }
                ]
            },
            "variables": [
                {"name": "digests", "expression": _literal(digests)},
                {"name": "exceptions", "expression": _literal([*allowed, *references])},
                {"name": "images", "expression": _images("object")},
                {
                    "name": "before",
                    "expression": (
                        f"request.operation == 'UPDATE' ? ({_images('oldObject')}) : []"
                    ),
                },
                {
                    "name": "refused",
                    "expression": (
                        "variables.images.filter(i, !(i in variables.exceptions)"
                        " && !(i in variables.before)"
                        f" && !(i.matches('@sha256:[0-9a-f]{{64}}$')"
                        f" && i.substring(size(i) - {_DIGEST_SUFFIX}) in variables.digests))"
                    ),
                },
            ],
            "validations": [
                {
                    "expression": "size(variables.refused) == 0",
                    "messageExpression": message,
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding: Obj = {
        "apiVersion": API_VERSION,
        "kind": BINDING,
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {ENV_LABEL: env}}},
        },
    }
    return [policy, binding]
