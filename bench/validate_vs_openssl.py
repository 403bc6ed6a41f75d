"""Validate of a ~1 GB signed archive vs ``openssl dgst -sha256`` of the same file (target <= 1.2x).

``validate`` hashes every file once (two threads), each hash serving both the SHA256SUMS check
and the blob digest check, then checks the signature.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _results import record
from _synthetic import SOLUTIONS, interleaved, make_tree, timed

RUNS = 3
TARGET = 1.2
ENGINE = """
import sys, time
from pathlib import Path
from metalk8s_solutions.engine.validate import ValidateOptions, validate
started = time.perf_counter()
result = validate(ValidateOptions(Path(sys.argv[1]), keys=(Path(sys.argv[2]),)))
assert result.valid
print(time.perf_counter() - started)
"""


def engine_seconds(iso: Path, key: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", ENGINE, str(iso), str(key)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    try:
        source = make_tree(work / "src")
        iso = work / "bench.iso"
        subprocess.run([SOLUTIONS, "keygen", str(work / "k")], check=True, capture_output=True)
        subprocess.run(
            [SOLUTIONS, "build", "-q", str(source), "-o", str(iso), "--key", str(work / "k.key")],
            check=True,
        )
        ours, engine, reference = interleaved(
            RUNS,
            lambda: timed([SOLUTIONS, "validate", "-q", str(iso), "--key", str(work / "k.pub")]),
            lambda: engine_seconds(iso, work / "k.pub"),
            lambda: timed(["openssl", "dgst", "-sha256", str(iso)]),
        )
        gigabytes = iso.stat().st_size / 1e9
        print(f"archive: {gigabytes:.2f} GB, {os.cpu_count()} cores, median of {RUNS} runs")
        print(f"solutions validate --key: {ours:.2f} s")
        print(f"engine validate() alone:  {engine:.2f} s (without interpreter and CLI start)")
        print(f"openssl dgst -sha256:     {reference:.2f} s")
        command, core = ours / reference, engine / reference
        print(f"ratio: {command:.2f}x command, {core:.2f}x engine (target <= {TARGET}x)")
        for measure, seconds, ratio in (
            (f"solutions validate --key of {gigabytes:.2f} GB (whole command)", ours, command),
            ("the same, engine validate() alone (no interpreter start)", engine, core),
        ):
            record(
                "validate",
                measure,
                ours=seconds,
                unit="s",
                reference=reference,
                reference_name="openssl dgst -sha256",
                ratio=ratio,
                target=TARGET,
                runs=RUNS,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
