"""Import of a ~1 GB multi-image archive (built-in registry mode) vs ``openssl dgst -sha256`` of
the same file (target <= 1.3x: importing costs little more than one verification pass).

Each run imports into a fresh SolutionsConfiguration against a real local control plane (started
once), then unimports; the reference hashes the same ISO with openssl in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _results import record
from _synthetic import SOLUTIONS, interleaved, make_tree, timed
from metalk8s_solutions.testing.controlplane import LocalControlPlane

RUNS = 3


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    plane = LocalControlPlane(work / "cluster", nodes=0, bind_to_parent=True)
    try:
        info = plane.up()
        source = make_tree(work / "src")
        iso = work / "bench.iso"
        subprocess.run([SOLUTIONS, "keygen", str(work / "k")], check=True, capture_output=True)
        subprocess.run(
            [SOLUTIONS, "build", "-q", str(source), "-o", str(iso), "--key", str(work / "k.key")],
            check=True,
        )
        shutil.rmtree(source)
        config = work / "solutions.yaml"
        base = [SOLUTIONS, "--config", str(config), "--kubeconfig", str(info.kubeconfig)]

        def one_import() -> float:
            config.unlink(missing_ok=True)
            seconds = timed([*base, "import", str(iso), "--key", str(work / "k.pub")])
            subprocess.run([*base, "unimport", str(iso)], check=True, capture_output=True)
            return seconds

        ours, reference = interleaved(
            RUNS, one_import, lambda: timed(["openssl", "dgst", "-sha256", str(iso)])
        )
        print(
            f"archive: {iso.stat().st_size / 1e9:.2f} GB, {os.cpu_count()} cores, "
            f"median of {RUNS} runs"
        )
        print(f"solutions import (validate, verify, configure, record): {ours:.2f} s")
        print(f"openssl dgst -sha256 of the same file:                  {reference:.2f} s")
        print(f"ratio: {ours / reference:.2f}x (target <= 1.3x)")
        record(
            "import",
            f"solutions import of a {iso.stat().st_size / 1e9:.2f} GB signed archive",
            ours=ours,
            unit="s",
            reference=reference,
            reference_name="openssl dgst -sha256",
            ratio=ours / reference,
            target=1.3,
            runs=RUNS,
        )
    finally:
        plane.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
