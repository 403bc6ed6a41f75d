"""Build of a ~1 GB Solution vs ``xorriso -as mkisofs -R -J`` on the same file set (target <= 1.3x).

Our build reads every file twice (one hashing pass, whose hashes also verify the blob digests
and make SHA256SUMS, then the ISO write); xorriso reads once and writes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from _results import record
from _synthetic import SOLUTIONS, flat_tree, interleaved, make_tree, timed

RUNS = 3
TARGET = 1.3


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        source = make_tree(work / "src")
        flat = flat_tree(source, work / "flat")
        size = sum(p.stat().st_size for p in flat.rglob("*") if p.is_file())
        env_epoch = ["env", "SOURCE_DATE_EPOCH=1700000000"]
        ours, reference = interleaved(
            RUNS,
            lambda: timed(
                [*env_epoch, SOLUTIONS, "build", "-q", str(source), "-o", str(work / "ours.iso")]
            ),
            lambda: timed(
                [
                    "xorriso",
                    "-as",
                    "mkisofs",
                    "-quiet",
                    "-R",
                    "-J",
                    "-o",
                    str(work / "ref.iso"),
                    str(flat),
                ]
            ),
        )
        print(
            f"archive content: {size / 1e9:.2f} GB, {os.cpu_count()} cores, median of {RUNS} runs"
        )
        print(f"solutions build:          {ours:.2f} s")
        print(f"xorriso -as mkisofs -R -J: {reference:.2f} s")
        print(f"ratio: {ours / reference:.2f}x (target <= {TARGET}x)")
        record(
            "build",
            f"solutions build of {size / 1e9:.2f} GB vs xorriso -as mkisofs -R -J",
            ours=ours,
            unit="s",
            reference=reference,
            reference_name="xorriso -as mkisofs -R -J",
            ratio=ours / reference,
            target=TARGET,
            runs=RUNS,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
