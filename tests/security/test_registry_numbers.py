"""Numbers in requests (Range, ``n``) and in listen addresses are ASCII digits or refused.

``str.isdigit()`` accepts '²', Arabic-Indic or full-width digits, which ``int()`` then rejects (or
reads as another number); a digit string longer than 4300 characters makes ``int()`` raise.  Either
used to reach the client as a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.images.registry_index import (
    UNSATISFIABLE,
    RegistryProblem,
    paginate,
    parse_range,
)
from metalk8s_solutions.images.registry_server import parse_listen
from metalk8s_solutions.web.server import parse_listen as parse_ui_listen
from security.registry_support import serving, write_config

NOT_ASCII_DIGITS = ["²", "\u0661", "\uff11", "1²", "\u0663\u0664"]
HUGE = "1" * 5000


@pytest.mark.parametrize("digit", NOT_ASCII_DIGITS)
def test_range_with_non_ascii_digits_is_ignored(digit: str) -> None:
    for header in (f"bytes={digit}-", f"bytes=0-{digit}", f"bytes=-{digit}"):
        assert parse_range(header, 10) is None, header


def test_range_with_huge_numbers() -> None:
    assert parse_range(f"bytes={HUGE}-", 10) == UNSATISFIABLE
    assert parse_range(f"bytes=2-{HUGE}", 10) == (2, 9)
    assert parse_range(f"bytes=-{HUGE}", 10) == (0, 9)
    assert parse_range("bytes=0002-0004", 10) == (2, 4)


@pytest.mark.parametrize("n", [*NOT_ASCII_DIGITS, "+1", " 1", "1_0", "0x1"])
def test_page_size_with_non_ascii_digits_is_400(n: str) -> None:
    problem = paginate(["a", "b"], n, None)
    assert isinstance(problem, RegistryProblem), n
    assert problem.status == 400 and problem.code == "PAGINATION_NUMBER_INVALID"


def test_huge_page_size_is_capped() -> None:
    assert paginate(["a", "b"], HUGE, None) == (["a", "b"], None)


@pytest.mark.parametrize("port", ["²", "\uff15\uff10\uff10\uff10", "1" * 5000])
def test_listen_ports_are_ascii(port: str) -> None:
    with pytest.raises(InvalidInput):
        parse_listen(f"127.0.0.1:{port}")
    with pytest.raises(InvalidInput):
        parse_ui_listen(f"127.0.0.1:{port}")


@settings(max_examples=300, deadline=None)
@given(header=st.text(max_size=40), size=st.integers(min_value=0, max_value=2**40))
def test_parse_range_never_fails(header: str, size: int) -> None:
    result = parse_range(header, size)
    assert result is None or result == UNSATISFIABLE or isinstance(result, tuple)
    if isinstance(result, tuple):
        start, end = result
        assert 0 <= start <= end < size


@settings(max_examples=300, deadline=None)
@given(
    header=st.builds(
        lambda a, b: f"bytes={a}-{b}",
        st.text(alphabet=st.characters(categories=["Nd", "No"]), max_size=6),
        st.text(alphabet=st.characters(categories=["Nd", "No"]), max_size=6),
    )
)
def test_parse_range_with_unicode_digits_never_fails(header: str) -> None:
    result = parse_range(header, 100)
    if header.isascii():
        return
    assert result is None


@settings(max_examples=300, deadline=None)
@given(n=st.text(max_size=12))
def test_paginate_never_fails(n: str) -> None:
    result = paginate(["a", "b", "c"], n, None)
    if isinstance(result, RegistryProblem):
        assert result.status == 400
    else:
        page, _ = result
        assert page == ["a", "b", "c"][: len(page)]


def test_the_server_answers_bad_numbers_without_500(
    built_archive: Callable[[], Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "solutions.yaml", [built_archive()])
    with serving(config) as registry, httpx.Client(base_url=registry.url) as http:
        repo = http.get("/v2/_catalog").json()["repositories"][0]
        manifest = http.get(f"/v2/{repo}/manifests/1.0.0").json()
        layer = manifest["layers"][-1]
        blob = f"/v2/{repo}/blobs/{layer['digest']}"
        full = http.get(blob)
        assert full.status_code == 200
        for value in ("bytes=²-", "bytes=0-²", "bytes=-²", f"bytes={HUGE}-"):
            answer = http.get(blob, headers={"Range": value.encode()})
            assert answer.status_code in (200, 416), (value, answer.status_code, answer.text)
            if answer.status_code == 200:
                assert answer.content == full.content
        for path in ("/v2/_catalog", f"/v2/{repo}/tags/list"):
            for n in ("²", "\uff11"):
                answer = http.get(path, params={"n": n})
                assert answer.status_code == 400, (path, n, answer.text)
                codes = [e["code"] for e in answer.json()["errors"]]
                assert codes == ["PAGINATION_NUMBER_INVALID"]
            assert http.get(path, params={"n": HUGE}).status_code == 200
        assert registry.metrics.errors == 0
