"""Peak resident memory (ru_maxrss of the child) of build and validate on ~1 GB (target <= 150 MB).

The reference figure is the same measure for ``openssl dgst -sha256`` of the archive, and for
the bare interpreter startup of ``solutions --version``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

from _results import record
from _synthetic import SOLUTIONS, make_tree, peak_rss_mb

RUNS = 3


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        source = make_tree(work / "src")
        iso = work / "bench.iso"
        build = statistics.median(
            peak_rss_mb([SOLUTIONS, "build", "-q", str(source), "-o", str(iso)])
            for _ in range(RUNS)
        )
        validate = statistics.median(
            peak_rss_mb([SOLUTIONS, "validate", "-q", str(iso)]) for _ in range(RUNS)
        )
        startup = statistics.median(peak_rss_mb([SOLUTIONS, "--version"]) for _ in range(RUNS))
        openssl = statistics.median(
            peak_rss_mb(["openssl", "dgst", "-sha256", str(iso)]) for _ in range(RUNS)
        )
        gigabytes = iso.stat().st_size / 1e9
        print(f"archive: {gigabytes:.2f} GB, {os.cpu_count()} cores, median of {RUNS} runs")
        print(f"peak RSS solutions build:    {build:.1f} MiB (target <= 150 MB)")
        print(f"peak RSS solutions validate: {validate:.1f} MiB (target <= 150 MB)")
        print(f"reference: solutions --version {startup:.1f} MiB, openssl dgst {openssl:.1f} MiB")
        print(f"ratio build/target: {build / 150:.2f}, validate/target: {validate / 150:.2f}")
        for verb, peak in (("build", build), ("validate", validate)):
            record(
                "memory",
                f"peak RSS of solutions {verb} ({gigabytes:.2f} GB)",
                ours=peak,
                unit="MiB",
                reference=openssl,
                reference_name="openssl dgst -sha256",
                target=150,
                runs=RUNS,
                note="target on the figure itself (MB), not a ratio",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
