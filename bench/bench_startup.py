"""Start-up of the ``solutions`` command: ``--help`` of verbs, and listings against kubectl.

Ours: wall time of whole ``solutions`` processes, as a user waits for them: ``--version``,
``--help`` and ``VERB --help`` of a few verbs (target: ≤ 0.15 s each), then ``solutions env list``
and ``solutions list`` against a local control plane.  Reference, measured in the same run and
interleaved with ours: ``kubectl --help`` and ``kubectl get namespaces`` (same kubeconfig; target:
each listing ≤ 2x kubectl).  Also timed, as floors: ``python -c pass`` and ``python -S -c pass``
(the interpreter's own start, with and without ``site``) and ``python -c "import
metalk8s_solutions.cli.main"`` (the ``solutions`` command's start, click included), which no
listing can go under.  Prints the median of N runs of each, and the ratios.

    .venv/bin/python bench/bench_startup.py [--runs 7]

Python's bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``), as it is for an installed
package: the first run of each command, which compiles, is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import record
from metalk8s_solutions.testing import binaries
from metalk8s_solutions.testing.controlplane import LocalControlPlane

SOLUTIONS = str(Path(sys.executable).parent / "solutions")
HELP_TARGET = 0.15
LIST_RATIO_TARGET = 2.0

HELPS: tuple[tuple[str, ...], ...] = (
    ("--version",),
    ("--help",),
    ("validate", "--help"),
    ("import", "--help"),
    ("status", "--help"),
    ("env", "--help"),
    ("env", "list", "--help"),
    ("instance", "create", "--help"),
    ("ui", "--help"),
    ("dev", "cluster", "up", "--help"),
)


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds until the process ``argv`` exits (it must succeed)."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr!r}")
    return elapsed


def medians(commands: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, float]:
    """Median time of each command; runs interleaved so that machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache and the .pyc files once
        timed(argv, env)
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(timed(argv, env))
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    kubectl = str(binaries.ensure(["kubectl"])["kubectl"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Bytecode cached as for an installed package, in a directory of its own (the work tree
        # stays clean, and PYTHONDONTWRITEBYTECODE in the caller's environment cannot make every
        # run compile every module).
        env = dict(
            os.environ,
            SOLUTIONS_CONFIG=str(root / "solutions.yaml"),
            PYTHONPYCACHEPREFIX=str(root / "pycache"),
        )
        env.pop("KUBECONFIG", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        helps = {"solutions " + " ".join(h): [SOLUTIONS, *h] for h in HELPS}
        helps["kubectl --help (reference)"] = [kubectl, "--help"]
        figures = medians(helps, env, args.runs)
        width = max(map(len, figures))
        print(f"--help, median of {args.runs} runs (target ≤ {HELP_TARGET:.2f} s):")
        for name, seconds in figures.items():
            mark = "" if "reference" in name else f"  {verdict(seconds <= HELP_TARGET)}"
            print(f"  {name:<{width}}  {seconds:6.3f} s{mark}")
        ours_helps = {n: s for n, s in figures.items() if "reference" not in n}
        slowest = max(ours_helps, key=ours_helps.__getitem__)
        record(
            "startup",
            f"slowest --help of {len(ours_helps)} ({slowest})",
            ours=ours_helps[slowest],
            unit="s",
            reference=figures["kubectl --help (reference)"],
            reference_name="kubectl --help",
            target=HELP_TARGET,
            runs=args.runs,
            note="target on the time itself",
        )

        plane = LocalControlPlane(root / "cluster", nodes=1, bind_to_parent=True)
        info = plane.up()
        try:
            env["KUBECONFIG"] = str(info.kubeconfig)
            listings = {
                "kubectl get namespaces": [kubectl, "get", "namespaces"],
                "python -c pass (floor)": [sys.executable, "-c", "pass"],
                "python -S -c pass (floor)": [sys.executable, "-S", "-c", "pass"],
                "import of the cli (floor)": [
                    sys.executable,
                    "-c",
                    "import metalk8s_solutions.cli.main",
                ],
                "solutions env list": [SOLUTIONS, "env", "list"],
                "solutions list": [SOLUTIONS, "list"],
            }
            figures = medians(listings, env, args.runs)
        finally:
            plane.down()
        reference = figures.pop("kubectl get namespaces")
        print(f"listings against a local control plane, median of {args.runs} runs:")
        print(f"  {'kubectl get namespaces (reference)':<{width}}  {reference:6.3f} s")
        width = max(width, *map(len, figures))
        for name, seconds in figures.items():
            ratio = seconds / reference
            target = (
                ""
                if name.endswith("(floor)")
                else f"  (target ≤ {LIST_RATIO_TARGET:g}x: {verdict(ratio <= LIST_RATIO_TARGET)})"
            )
            print(f"  {name:<{width}}  {seconds:6.3f} s  {ratio:.2f}x kubectl{target}")
            if not name.endswith("(floor)"):
                record(
                    "startup",
                    f"{name} against a local control plane",
                    ours=seconds,
                    unit="s",
                    reference=reference,
                    reference_name="kubectl get namespaces",
                    ratio=ratio,
                    target=LIST_RATIO_TARGET,
                    runs=args.runs,
                )


if __name__ == "__main__":
    main()
