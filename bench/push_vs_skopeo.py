"""Push of a ~1 GB multi-image archive vs ``skopeo copy --preserve-digests`` (target >= 2x faster).

Both copy the same 4 images (one 300 MB base layer shared by all, 175 MB of their own each) into
a fresh local docker-registry on loopback: ours with ``solutions push`` straight from the ISO file,
skopeo image after image from the OCI layouts the archive was built from (``oci:DIR:tag``), as
``skopeo copy --preserve-digests`` would be used to fill a registry.  Each run starts a new
registry with empty storage; the figures are medians of 3 runs.  The CPU time that the registry
and the client each spend is printed too: on 2 cores, docker-registry's own work (reading the
upload, SHA-256 over every byte, writing it) bounds what any client can reach.

Usage: ``push_vs_skopeo.py [--storage DIR] [CONCURRENCY...]`` (registry storage under DIR,
default a temporary directory on the same disk as the archive).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _results import record
from _synthetic import IMAGES, SOLUTIONS, make_tree
from metalk8s_solutions.testing.registry import LocalRegistry

RUNS = 3


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    seconds: float
    registry_cpu: float
    client_cpu: float


def with_fresh_registry(storage: Path, action: Callable[[LocalRegistry], None]) -> Run:
    root = storage / "registry"
    shutil.rmtree(root, ignore_errors=True)
    registry = LocalRegistry(root).start()
    assert registry.record is not None
    try:
        subprocess.run(["sync"], check=True)
        registry_before, client_before = process_cpu(registry.record.pid), children_cpu()
        started = time.perf_counter()
        action(registry)
        seconds = time.perf_counter() - started
        return Run(
            seconds,
            process_cpu(registry.record.pid) - registry_before,
            children_cpu() - client_before,
        )
    finally:
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


def median_run(runs: int, action: Callable[[], Run]) -> Run:
    results = sorted((action() for _ in range(runs)), key=lambda r: r.seconds)
    return results[len(results) // 2]


def ours(iso: Path, concurrency: int) -> Callable[[LocalRegistry], None]:
    def run(registry: LocalRegistry) -> None:
        subprocess.run(
            [
                SOLUTIONS,
                "--config",
                "/nonexistent/solutions.yaml",
                "push",
                "-q",
                str(iso),
                "--registry",
                registry.url,
                "--concurrency",
                str(concurrency),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    return run


def skopeo(source: Path) -> Callable[[LocalRegistry], None]:
    def run(registry: LocalRegistry) -> None:
        for image in IMAGES:
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "-q",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                    f"oci:{source / 'images' / image / '1.0.0'}:1.0.0",
                    f"docker://{registry.address}/bench-solution-1.0.0/{image}:1.0.0",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    return run


def main() -> None:
    args = sys.argv[1:]
    storage_base = None
    if args[:1] == ["--storage"]:
        storage_base, args = Path(args[1]), args[2:]
    concurrencies = [int(c) for c in args] or [4]
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    storage = Path(tempfile.mkdtemp(prefix="bench-push-registry-", dir=storage_base))
    try:
        source = make_tree(work / "src")
        iso = work / "bench.iso"
        subprocess.run([SOLUTIONS, "build", "-q", str(source), "-o", str(iso)], check=True)
        # Page cache: read both sources once so neither pays for the first disk read.
        for path in [iso, *source.rglob("*")]:
            if path.is_file():
                with path.open("rb") as stream:
                    while stream.read(8 * 1024 * 1024):
                        pass
        gigabytes = iso.stat().st_size / 1e9
        print(f"archive: {gigabytes:.2f} GB, {os.cpu_count()} cores, median of {RUNS} runs")
        print(f"registry storage: {storage} ({'tmpfs' if is_tmpfs(storage) else 'disk'})")
        results = {
            c: median_run(RUNS, lambda c=c: with_fresh_registry(storage, ours(iso, c)))
            for c in concurrencies
        }
        reference = median_run(RUNS, lambda: with_fresh_registry(storage, skopeo(source)))

        def show(name: str, run: Run) -> None:
            print(
                f"{name}: {run.seconds:.2f} s, {gigabytes / run.seconds * 1000:.0f} MB/s "
                f"(CPU: client {run.client_cpu:.2f} s, registry {run.registry_cpu:.2f} s)"
            )

        for concurrency, run in results.items():
            show(f"solutions push (concurrency {concurrency})", run)
        show("skopeo copy --preserve-digests, image after image", reference)
        best = min(r.seconds for r in results.values())
        print(f"ratio: {reference.seconds / best:.2f}x faster (target >= 2x)")
        fastest = min(results.values(), key=lambda r: r.seconds)
        cores = os.cpu_count() or 1
        # No client can push faster than the registry can take the bytes: its own CPU time
        # (reading the upload, SHA-256 over every byte, writing) spread over every core.
        bound = fastest.registry_cpu / cores
        print(
            f"physical bound: registry CPU {fastest.registry_cpu:.2f} s / {cores} cores = "
            f"{bound:.2f} s; solutions push {best:.2f} s = {best / bound:.2f}x it "
            "(target <= 1.1x)"
        )
        record(
            "push",
            f"solutions push of {gigabytes:.2f} GB into docker-registry (best concurrency)",
            ours=best,
            unit="s",
            reference=reference.seconds,
            reference_name="skopeo copy --preserve-digests",
            ratio=reference.seconds / best,
            target=2.0,
            better="higher",
            runs=RUNS,
            note=f"registry CPU {fastest.registry_cpu:.2f} s (the bound on 2 cores)",
        )
        record(
            "push",
            "solutions push vs the physical bound (registry CPU / cores)",
            ours=best,
            unit="s",
            reference=bound,
            reference_name="docker-registry's CPU time / cores",
            ratio=best / bound,
            target=1.1,
            runs=RUNS,
        )
        record(
            "push",
            "client CPU of solutions push vs skopeo",
            ours=fastest.client_cpu,
            unit="CPU s",
            reference=reference.client_cpu,
            reference_name="skopeo copy --preserve-digests",
            ratio=fastest.client_cpu / reference.client_cpu,
            target=0.25,
            runs=RUNS,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(storage, ignore_errors=True)


def is_tmpfs(path: Path) -> bool:
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    best = max((m for m in mounts if str(path.resolve()).startswith(m[1])), key=lambda m: len(m[1]))
    return best[2] == "tmpfs"


if __name__ == "__main__":
    main()
