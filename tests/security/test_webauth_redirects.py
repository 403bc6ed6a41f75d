"""Finding 15: a Solution UI's redirects may only lead to paths of this site.

Browsers read ``\\`` as ``/`` and drop tabs and newlines in URLs, so ``/\\evil.example`` and
``/\\t/evil.example`` are other sites, not paths.
"""

from __future__ import annotations

import pytest

from metalk8s_solutions.web.solution_ui import local_location


@pytest.mark.parametrize(
    "location",
    [
        "/\\evil.example/phish",
        "\\\\evil.example/phish",
        "\\/evil.example",
        "//evil.example/phish",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        " //evil.example",
        "http://evil.example/",
        "https:evil.example",
        "javascript:alert(1)",
        "evil.example/phish",
        "",
    ],
)
def test_redirects_off_the_site_are_dropped(location: str) -> None:
    assert local_location(location) is False


@pytest.mark.parametrize(
    "location",
    ["/", "/env/prod/ns/sol/", "/env/prod/ns/sol/page?next=//x#frag", "/a/%5Cb"],
)
def test_paths_of_this_site_are_kept(location: str) -> None:
    assert local_location(location) is True
