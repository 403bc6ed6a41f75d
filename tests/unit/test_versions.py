"""The one order of Solution versions, and which versions are safe in the cluster."""

from __future__ import annotations

import itertools
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.manifest import check_manifest
from metalk8s_solutions.api.versions import (
    compare_versions,
    is_valid_version,
    latest,
    sort_versions,
    version_problem,
)
from metalk8s_solutions.errors import InvalidInput

# (lower, higher): compare_versions(lower, higher) == -1, and the reverse is 1.
PAIRS = [
    # both semantic versions: SemVer precedence
    ("1.0.0-alpha", "1.0.0"),
    ("1.0.0-1", "1.0.0-alpha"),  # numeric identifiers rank below alphanumeric ones
    ("1.0.0-rc.9", "1.0.0-rc.10"),
    ("1.9.0", "1.10.0"),
    ("1.1.2-dev", "1.1.2"),  # pkg.version_cmp calls these equal; a release ranks above
    # one side is not a semantic version: MetalK8s's order (RPM-style segments)
    ("1.1.2", "1.1.2.1"),
    ("1.10", "2.0"),
    ("1.9", "1.10"),  # Salt's LooseVersion-as-strings fallback says the opposite
    ("1.0.3", "1.1.2-dev"),
    ("1.1.2-dev", "1.1.2.1"),
    ("1.1.2.1-dev", "1.1.2.1"),  # same version, one with a release: the release is lower
    ("2.0", "2.0.0"),  # segments left over win
    ("1.0", "1.0a"),
    ("1.0.a", "1.0.1"),  # digits rank above letters
    ("1.0-2", "1.0-10"),  # releases compare by segments too
    ("1.0-alpha", "1.0-beta"),
    ("1.0.01", "1.0.1"),  # equal for rpm: the plain texts decide, so the order stays total
    # tilde ranks below everything, even the end of the text
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0~~", "1.0~"),
    ("2~", "2"),
]


@pytest.mark.parametrize(("lower", "higher"), PAIRS)
def test_pairs_are_ordered(lower: str, higher: str) -> None:
    assert compare_versions(lower, higher) == -1
    assert compare_versions(higher, lower) == 1
    assert compare_versions(lower, lower) == compare_versions(higher, higher) == 0


def test_latest_and_sort_use_the_one_order() -> None:
    assert latest(["1.0.3", "1.1.2-dev", "1.0.1"]) == "1.1.2-dev"
    assert latest(["1.1.2", "1.1.2.1", "1.1.2-dev"]) == "1.1.2.1"
    assert latest(["1.9.0", "1.10.0", "1.2.3-rc.1"]) == "1.10.0"
    assert sort_versions(["2.0", "1.10", "1.9", "1.10.1"]) == ["1.9", "1.10", "1.10.1", "2.0"]
    assert sort_versions(["1.0.0", "1.0.0-rc.1"], reverse=True) == ["1.0.0", "1.0.0-rc.1"]
    with pytest.raises(InvalidInput):
        latest([])


NON_SEMVER_CHAIN = ["1.0", "1.0.1", "1.0.3", "1.1", "1.1.2-dev", "1.1.2.1", "2.0", "10.0"]


def test_the_order_does_not_depend_on_the_input_order() -> None:
    rng = random.Random(17)  # noqa: S311 - a fixed shuffle, not a secret
    for _ in range(50):
        shuffled = NON_SEMVER_CHAIN[:]
        rng.shuffle(shuffled)
        assert sort_versions(shuffled) == NON_SEMVER_CHAIN
        assert latest(shuffled) == "10.0"


CORPUS = sorted(
    {v for pair in PAIRS for v in pair}
    | set(NON_SEMVER_CHAIN)
    | {"1", "1.0.0", "1.0.0-rc.1", "1.0_1", "1-0", "1.0-~", "a", "1a", "1.a", "0.9~b", "1.0-1.0"}
)


def test_the_order_is_antisymmetric_transitive_and_total_on_a_corpus() -> None:
    for a, b in itertools.product(CORPUS, repeat=2):
        assert compare_versions(a, b) == -compare_versions(b, a)
        assert (compare_versions(a, b) == 0) == (a == b)
    ordered = sort_versions(CORPUS)
    for i, low in enumerate(ordered):
        for high in ordered[i + 1 :]:
            assert compare_versions(low, high) == -1, (low, high)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.from_regex(r"[0-9a-c~]{1,3}([.\-][0-9a-c~]{1,3}){0,3}", fullmatch=True), max_size=5)
)
def test_the_order_is_antisymmetric_and_total(texts: list[str]) -> None:
    for a, b in itertools.product(texts, repeat=2):
        assert compare_versions(a, b) == -compare_versions(b, a)
        assert (compare_versions(a, b) == 0) == (a == b)


@pytest.mark.parametrize("text", ["1.1.2.1", "2.0", "1.0.3", "1.1.2-dev", "1.0.0-rc.1", "v2"])
def test_safe_versions(text: str) -> None:
    assert version_problem(text) is None and is_valid_version(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (2.0, "quote it"),
        (None, "not a string"),
        ("1.0.0-RC1", "lowercase"),  # not an OCI repository name
        ("1.0.0+build.5", "lowercase"),  # '+' is neither in a label value nor a repository
        ("1.0~rc1", "lowercase"),
        ("1..0", "lowercase"),
        ("-1.0", "lowercase"),
        ("1.0-", "lowercase"),
        ("1" + ".1" * 40, "longer than 63"),
    ],
)
def test_unsafe_versions_say_why(text: object, says: str) -> None:
    problem = version_problem(text)
    assert problem is not None and says in problem
    assert not is_valid_version(text)


MANIFEST = """\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: example-solution
  annotations: {solutions.metalk8s.scality.com/display-name: Example}
spec:
  version: VERSION
  images: [example-solution-operator:1.0.0]
  operator: {image: {name: example-solution-operator, tag: 1.0.0}}
"""


@pytest.mark.parametrize("version", ["1.1.2.1", "'2.0'", "1.0.3-x.01"])
def test_a_version_that_is_not_semver_is_a_warning(version: str) -> None:
    manifest, findings = check_manifest(yaml.safe_load(MANIFEST.replace("VERSION", version)))
    assert manifest is not None and manifest.version == version.strip("'")
    [finding] = [f for f in findings if f.rule == "SOL013"]
    assert finding.level is Severity.WARNING
    assert "not a semantic version" in finding.message and "MetalK8s" in finding.message


@pytest.mark.parametrize(("version", "says"), [("2.0", "quote it"), ("1.0.0-RC1", "lowercase")])
def test_an_unsafe_version_is_an_error(version: str, says: str) -> None:
    manifest, findings = check_manifest(yaml.safe_load(MANIFEST.replace("VERSION", version)))
    assert manifest is None
    [finding] = [f for f in findings if f.rule == "SOL013"]
    assert finding.level is Severity.ERROR and says in finding.message


def test_configuration_versions_are_solution_versions() -> None:
    from metalk8s_solutions.api.config import parse_config  # noqa: PLC0415

    config = parse_config(b"active: {a: '1.1.2.1', b: 1.1.2-dev, c: '2', d: latest}\n", "c.yaml")
    assert dict(config.active) == {"a": "1.1.2.1", "b": "1.1.2-dev", "c": "2", "d": "latest"}
    with pytest.raises(InvalidInput, match=r"2\.1 is a number, not a string: quote it"):
        parse_config(b"active: {a: 2.10}\n", "c.yaml")  # YAML reads 2.10 as 2.1
