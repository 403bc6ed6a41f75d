"""``make bench``'s results become the docs' table; every benchmark script is run by it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs" / "hooks"))
sys.path.insert(0, str(REPO / "bench"))

import docgen  # noqa: E402

import run_all  # noqa: E402


def test_every_benchmark_script_is_run_by_make_bench() -> None:
    scripts = {p.name for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_")}
    scripts.discard("run_all.py")
    assert scripts == {script for script, _ in run_all.BENCHMARKS.values()}


def test_every_benchmark_records_its_figures() -> None:
    for script, _ in run_all.BENCHMARKS.values():
        text = (REPO / "bench" / script).read_text()
        assert "record(" in text, f"{script} prints figures but records none"


def record_line(tmp_path: Path, **overrides: object) -> dict[str, object]:
    """One record written through bench/_results.record, as a benchmark script does."""
    out = tmp_path / "lines.jsonl"
    args = {
        "ours": 1.3,
        "unit": "s",
        "reference": 1.0,
        "reference_name": "openssl dgst -sha256",
        "ratio": 1.3,
        "target": 1.2,
    } | overrides
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); from _results import record; "
        "record('validate', 'm', **json.loads(sys.argv[2]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(REPO / "bench"), json.dumps(args)],
        env={"BENCH_RESULTS": str(out), "PATH": ""},
        check=True,
    )
    line: dict[str, object] = json.loads(out.read_text())
    return line


@pytest.mark.parametrize(
    ("overrides", "met"),
    [
        ({}, False),
        ({"ratio": 1.1}, True),
        ({"ratio": 2.1, "target": 2.0, "better": "higher"}, True),
        ({"ratio": 1.9, "target": 2.0, "better": "higher"}, False),
        ({"ratio": None, "reference": None, "ours": 64.5, "target": 150}, True),
    ],
)
def test_a_record_says_whether_its_target_is_met(
    tmp_path: Path, overrides: dict[str, object], met: bool
) -> None:
    assert record_line(tmp_path, **overrides)["met"] is met


def test_the_table_is_generated_from_results_json(tmp_path: Path) -> None:
    missed = record_line(tmp_path)
    context = {"date": "2026-12-03T12:00:00Z", "commit": "abc", "load_before": 1.0}
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "machine": {"cores": 2, "cpu": "X", "memory_gib": 24, "kernel": "6", "python": "3"},
                "results": [
                    {**missed, **context, "load_after": 2.0},
                    {"benchmark": "push", "measure": "p.py", "error": "exit 1", **context},
                ],
            }
        )
    )
    table = docgen.benchmark_table(results)
    x = docgen.TIMES
    row = f"| validate | m | 1.3 s | 1 s (openssl dgst -sha256) | **1.30{x}** | ≤ 1.2{x} | **no** |"
    assert row in table
    assert "| push | p.py | failed: exit 1 |" in table
    assert "No results yet" in docgen.benchmark_table(tmp_path / "absent.json")


def test_the_docs_page_has_the_generated_table_and_no_typed_ratio() -> None:
    page = (REPO / "docs" / "developer" / "benchmarks.md").read_text()
    assert docgen.BENCH_MARKER in page
    assert f"{docgen.TIMES}**" not in page and " s |" not in page
