"""The migration guide's table: each solutions.sh line is a real ``solutions metalk8s`` line with
``solutions.sh`` replaced and nothing else, and both forms parse with the real commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_parsing import parse
from metalk8s_solutions.cli.metalk8s import VERBS

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations" / "migrating-from-metalk8s.md"
CODE = re.compile(r"`([^`]+)`")


def rows() -> list[tuple[str, str, str]]:
    """(solutions.sh, solutions metalk8s, native) of each row whose first cell is a line."""
    found = []
    for line in GUIDE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 3 or not cells[0].startswith("`solutions.sh"):
            continue
        first = [CODE.search(cell) for cell in cells]
        assert all(first), line
        found.append(tuple(m.group(1) for m in first if m))  # type: ignore[misc]
    return found  # type: ignore[return-value]


ROWS = rows()


def test_the_guide_maps_every_verb_of_solutions_sh() -> None:
    verbs = {parse(metalk8s.removeprefix("solutions ")).info_name for _, metalk8s, _ in ROWS}
    assert verbs == set(VERBS)
    assert len(ROWS) >= len(VERBS)


@pytest.mark.parametrize(("sh", "metalk8s", "native"), ROWS)
def test_each_row_is_the_same_line_and_both_forms_parse(
    sh: str, metalk8s: str, native: str
) -> None:
    assert metalk8s == sh.replace("solutions.sh", "solutions metalk8s", 1)
    ours = parse(metalk8s.removeprefix("solutions "))
    theirs = parse(native.removeprefix("solutions "))
    assert ours.info_name in VERBS
    # the same environment, solution, version, namespace and archives in both forms
    given = {
        str(v)
        for key in ("name", "solution", "version", "namespace", "description", "archive")
        for v in (ours.params[key] if key == "archive" else (ours.params[key],))
        if v
    }
    values = {str(v) for p in theirs.params.values() for v in (p if isinstance(p, tuple) else (p,))}
    assert given <= values, (given - values, native)
