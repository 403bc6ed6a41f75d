"""What each benchmark reports, in one shape, for ``make bench`` (``bench/run_all.py``).

A benchmark script prints its figures for a reader and calls :func:`record` for each headline
figure.  When ``bench/run_all.py`` runs it, ``BENCH_RESULTS`` names a JSON-lines file the
records are appended to; run alone, a script only prints.  Ratios are always "how many times
the reference": ``ours / reference`` for times and memory (lower is better, target ``<=``),
``reference / ours`` for throughput-like comparisons where the target is ``>=`` (then the record
says so with ``better="higher"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

ENV = "BENCH_RESULTS"


def record(
    benchmark: str,
    measure: str,
    *,
    ours: float,
    unit: str,
    target: float,
    ratio: float | None = None,
    reference: float | None = None,
    reference_name: str = "",
    better: Literal["lower", "higher"] = "lower",
    runs: int = 1,
    note: str = "",
) -> None:
    """One headline figure: ``ratio`` (or ``ours`` when there is no reference) vs ``target``."""
    value = ours if ratio is None else ratio
    met = value <= target if better == "lower" else value >= target
    line = {
        "benchmark": benchmark,
        "measure": measure,
        "ours": round(ours, 4),
        "unit": unit,
        "reference": None if reference is None else round(reference, 4),
        "reference_name": reference_name,
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "better": better,
        "met": met,
        "runs": runs,
        "note": note,
    }
    path = os.environ.get(ENV)
    if path:
        with Path(path).open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(line) + "\n")
