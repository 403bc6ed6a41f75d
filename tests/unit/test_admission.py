"""The environment's admission policy of images (engine/admission.py), as objects.

What the API server does with it is tested on the real one in
``tests/integration/test_admission.py``.
"""

from __future__ import annotations

import re

import pytest

from metalk8s_solutions.api.manifest import ImageRef, SolutionManifest
from metalk8s_solutions.engine import admission
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import Settings, VersionContent, operator_config
from metalk8s_solutions.errors import InvalidInput

ENV_LABEL = "solutions.metalk8s.scality.com/environment"


def content(name: str, version: str, *digests: str) -> VersionContent:
    images = tuple(ImageRef(f"img{i}", version) for i in range(len(digests)))
    manifest = SolutionManifest(
        name=name,
        version=version,
        images=images,
        operator_image=images[0],
        display_name=name,
    )
    return VersionContent(
        manifest, digests={str(ref): d for ref, d in zip(images, digests, strict=True)}
    )


def digest(char: str) -> str:
    return "sha256:" + char * 64


def variables(policy: dict[str, object]) -> dict[str, str]:
    spec = policy["spec"]
    assert isinstance(spec, dict)
    return {v["name"]: v["expression"] for v in spec["variables"]}


def test_policy_allows_the_digests_the_operator_configs_offer_and_nothing_else() -> None:
    contents = {
        ("a", "1.0.0"): content("a", "1.0.0", digest("1"), digest("2")),
        ("a", "2.0.0"): content("a", "2.0.0", digest("3")),
        ("b", "1.0.0"): content("b", "1.0.0", digest("4")),
        ("c", "1.0.0"): content("c", "1.0.0", digest("5")),
    }
    objects = desired_environment(
        "prod",
        {"prod": {"a": "1.0.0"}, "prod-2": {"b": "1.0.0"}},
        contents,
        Settings(endpoint="reg:5000"),
    )
    policy, binding = (o for o in objects if o["kind"].startswith("ValidatingAdmission"))
    allowed = variables(policy)["digests"]
    # a 2.0.0 is imported: its operator config lists it, an operator may run its images
    assert allowed == "{" + ", ".join(f"'{digest(c)}': true" for c in "1234") + "}"
    assert digest("5") not in allowed  # c is imported, not deployed in this environment
    assert policy["metadata"]["name"] == binding["spec"]["policyName"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {"matchLabels": {ENV_LABEL: "prod"}}
    }
    for obj in (policy, binding):  # found and pruned with the environment
        assert obj["metadata"]["labels"][ENV_LABEL] == "prod"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "metalk8s-solutions"
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules[0]["operations"] == ["CREATE", "UPDATE"]
    assert rules[0]["resources"] == ["pods", "pods/ephemeralcontainers"]
    images = variables(policy)["images"]
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        assert f"object.spec.{kind}" in images
    assert policy["spec"]["failurePolicy"] == "Fail"


def test_no_policy_while_the_environment_runs_nothing() -> None:
    objects = desired_environment("prod", {"prod": {}}, {}, Settings(endpoint="reg:5000"))
    assert objects == []


def test_exceptions_are_written_as_given_and_must_be_image_references() -> None:
    deployed = [content("a", "1.0.0", digest("1"))]
    ref = "registry.example:5000/tools/debug:1.2"
    (policy, _) = admission.admission_objects("prod", deployed, [ref])
    assert variables(policy)["exceptions"] == f"{{'{ref}': true}}"
    for bad in ("x' || true || '", "UPPER/case:1", "a b", ""):
        with pytest.raises(InvalidInput, match="not an image reference"):
            admission.admission_objects("prod", deployed, [bad])


@pytest.mark.parametrize("env", ["prod", "Team_A.prod", "a.-b", "x" * 63])
def test_policy_names_are_dns_subdomains_and_distinct(env: str) -> None:
    name = admission.policy_name(env)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 253
    assert name != admission.policy_name(env.swapcase() if env != env.swapcase() else env + "x")


def test_operator_config_keeps_metalk8s_entries_and_the_policy_admits_them() -> None:
    """The OperatorConfig lists ``name:tag`` as MetalK8s writes it (the upstream example
    operator matches entries by their exact text); the policy admits exactly
    ``<endpoint>/<id>/<name:tag>`` of the offered versions, and no other tag."""
    known = content("a", "1.0.0", digest("1"))
    assert "- img0:1.0.0\n" in operator_config("reg:5000", [known])
    assert "@sha256" not in operator_config("reg:5000", [known])
    offered = admission.offered_references("reg:5000", [known])
    assert "reg:5000/a-1.0.0/img0:1.0.0" in offered
    policy = admission.admission_objects("prod", [known], (), "reg:5000")[0]
    exceptions = next(v for v in policy["spec"]["variables"] if v["name"] == "exceptions")
    assert "'reg:5000/a-1.0.0/img0:1.0.0': true" in exceptions["expression"]
    assert "img0:9.9.9" not in exceptions["expression"]
