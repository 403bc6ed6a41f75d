"""The Solution manifest schema: every rule, and a fuzzed parser that never crashes."""

from __future__ import annotations

import contextlib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MANIFEST
from metalk8s_solutions.api.manifest import load_manifest, parse_manifest
from metalk8s_solutions.errors import ManifestError


def rules_of(text: str) -> set[str]:
    _, findings = load_manifest(text.encode())
    return {f.rule for f in findings}


def test_valid_manifest() -> None:
    manifest = parse_manifest(MANIFEST.encode())
    assert manifest.id == "example-solution-1.0.0"
    assert manifest.display_name == "Example Solution"
    assert [str(i) for i in manifest.images] == [
        "base-server:1.0.0",
        "example-solution-operator:1.0.0",
    ]
    assert yaml.safe_load(MANIFEST) == manifest.to_dict()


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("kind: Solution", "kind: Nope", "SOL011"),
        ("solutions.metalk8s.scality.com/v1alpha1", "v1", "SOL011"),
        ("name: example-solution", "name: Example_Solution", "SOL012"),
        ("name: example-solution", "name: -bad", "SOL012"),
        ("version: 1.0.0", "version: 1.0", "SOL013"),
        (
            "    solutions.metalk8s.scality.com/display-name: Example Solution\n",
            "    x: y\n",
            "SOL014",
        ),
        ("images: [base-server:1.0.0,", "images: [base-server,", "SOL015"),
        ("images: [base-server:1.0.0,", "images: [base-server:1.0.0, base-server:1.0.0,", "SOL015"),
        ("{name: example-solution-operator, tag: 1.0.0}", "{name: other, tag: 1.0.0}", "SOL016"),
        ("  version: 1.0.0", "  version: 1.0.0\n  extra: 1", "SOL017"),
    ],
)
def test_each_manifest_rule(old: str, new: str, rule: str) -> None:
    text = MANIFEST.replace(old, new)
    assert text != MANIFEST
    assert rule in rules_of(text)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"a: [",
        b"a: &x [1]\nb: *x\n",
        b"[" * 100_000,
        b"x" * (300 * 1024),
        b"- 1\n- 2\n",
        b"",
    ],
)
def test_malformed_manifest_is_one_clear_error(data: bytes) -> None:
    with pytest.raises(ManifestError, match="SOL010"):
        parse_manifest(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_structures(value: object) -> None:
    base = yaml.safe_load(MANIFEST)
    for doc in (value, {**base, "spec": value}, {**base, "metadata": value}):
        with contextlib.suppress(ManifestError):
            parse_manifest(yaml.safe_dump(doc).encode())
