"""Semantic version parsing and ordering: the one order used everywhere."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metalk8s_solutions.api.semver import parse_version
from metalk8s_solutions.api.versions import compare_versions, latest
from metalk8s_solutions.errors import InvalidInput

ORDERED = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.9.0",
    "1.10.0",
    "2.0.0",
]


def test_semver_precedence_of_the_specification() -> None:
    parsed = [parse_version(v) for v in ORDERED]
    assert sorted(reversed(parsed)) == parsed
    assert [str(v) for v in parsed] == ORDERED


def test_numeric_not_string_order() -> None:
    assert compare_versions("1.10.0", "1.9.0") == 1
    assert compare_versions("1.0.0", "1.0.0") == 0
    assert latest(["1.9.0", "1.10.0", "1.2.3-rc.1"]) == "1.10.0"


@pytest.mark.parametrize("text", ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0+", "", None, 1])
def test_invalid_versions_are_refused(text: object) -> None:
    with pytest.raises(InvalidInput):
        parse_version(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parser_never_crashes(text: str) -> None:
    try:
        version = parse_version(text)
    except InvalidInput:
        return
    assert str(version) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(*(st.integers(0, 30),) * 3), min_size=1, max_size=8))
def test_order_matches_numeric_tuples(triples: list[tuple[int, int, int]]) -> None:
    texts = [f"{a}.{b}.{c}" for a, b, c in triples]
    assert sorted(texts, key=parse_version) == sorted(
        texts, key=lambda t: tuple(int(x) for x in t.split("."))
    )
