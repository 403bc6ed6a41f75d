"""A ~10 GB archive whose one layer is over 4 GiB (ISO 9660 multi-extent file).

Build vs ``xorriso -as mkisofs -iso-level 3 -R -J``; validate and import (built-in registry mode,
against a real local control plane, as bench/import_vs_openssl.py) vs ``openssl dgst -sha256``;
and the peak RSS of the three (target <= 150 MB).

The layer is a sparse file (holes, with a few random marks): it costs no disk to make, and both
sides read the same holes, so what is compared is hashing and writing the archive.  Every byte of
the archive is written, so the run needs twice the archive's size free on disk (ours and
xorriso's).  ``--gb`` sets the layer's size (a smaller one to try it out), ``--runs`` the rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _results import record
from _synthetic import CRD, MANIFEST, ROLE, SOLUTIONS, flat_tree, write_image_index
from metalk8s_solutions.testing.controlplane import LocalControlPlane

BUILD_TARGET = 1.3
VALIDATE_TARGET = 1.2
IMPORT_TARGET = 1.3
RSS_TARGET = 150
GNU_TIME = "/usr/bin/time"


def sparse_layer(blobs: Path, size: int) -> str:
    """A sparse layer of ``size`` bytes in ``blobs``, named by its digest; returns the hex."""
    path = blobs / "layer"
    with path.open("wb") as out:
        out.truncate(size)
        for offset in (0, 2**32 - 2048 - 4096, size - 4096):
            out.seek(offset)
            out.write(os.urandom(8192)[: size - offset])
    # openssl reads the holes as zeros; it costs what one hash pass costs.
    hexdigest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", str(path)], check=True, capture_output=True, text=True
    ).stdout.split()[0]
    path.rename(blobs / hexdigest)
    return hexdigest


def make_large_tree(root: Path, size: int) -> Path:
    (root / "operator/deploy/crds").mkdir(parents=True)
    images = ["example-solution-operator"]
    (root / "manifest.yaml").write_text(MANIFEST % ", ".join(f"{i}:1.0.0" for i in images))
    (root / "operator/deploy/crds/crd.yaml").write_text(CRD)
    (root / "operator/deploy/role.yaml").write_text(ROLE)
    layout = root / "images" / images[0] / "1.0.0"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    write_image_index(layout, [sparse_layer(blobs, size)])
    return root


def warm(path: Path) -> None:
    """Read ``path`` once (untimed), so that the readers compared all find it in the cache."""
    with path.open("rb", buffering=0) as stream:
        while stream.read(16 << 20):
            pass


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process.

    The RSS comes from GNU time, not from ``wait4`` here: a child started from this interpreter
    inherits its high-water RSS through vfork and exec, so ``ru_maxrss`` would be at least this
    process's size (openssl would show ~45 MiB instead of ~6).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        done = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", rss.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            error = done.stderr.decode(errors="replace")
            raise SystemExit(f"{command[:3]} failed: {error[-2000:]}")
        return seconds, int(rss.read().split()[-1]) / 1024


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=10.0, help="size of the layer, in GB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = int(args.gb * 1e9)
    if not Path(GNU_TIME).exists():
        raise SystemExit(f"{GNU_TIME}: GNU time is needed for the peak RSS (apt-get install time)")
    if size <= 2**32:
        raise SystemExit("--gb: the layer must be over 4 GiB (4.3 GB) to be multi-extent")
    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    plane = LocalControlPlane(work / "cluster", nodes=0, bind_to_parent=True)
    try:
        free = shutil.disk_usage(work).free
        if free < 2.2 * size:
            raise SystemExit(
                f"{work}: {free / 1e9:.1f} GB free, the run needs {2.2 * size / 1e9:.1f} GB"
            )
        kubeconfig = plane.up().kubeconfig
        source = make_large_tree(work / "src", size)
        flat = flat_tree(source, work / "flat")
        subprocess.run([SOLUTIONS, "keygen", str(work / "k")], check=True, capture_output=True)
        iso, ref = work / "ours.iso", work / "ref.iso"
        ours_build = [
            *("env", "SOURCE_DATE_EPOCH=1700000000", SOLUTIONS, "build", "-q", str(source)),
            *("-o", str(iso), "--key", str(work / "k.key")),
        ]
        xorriso = ["xorriso", "-as", "mkisofs", "-quiet", "-iso-level", "3", "-R", "-J"]
        xorriso += ["-o", str(ref), str(flat)]
        validate = [SOLUTIONS, "validate", "-q", str(iso), "--key", str(work / "k.pub")]
        config = work / "solutions.yaml"
        base = [SOLUTIONS, "--config", str(config), "--kubeconfig", str(kubeconfig)]

        def one_import() -> tuple[float, float]:
            config.unlink(missing_ok=True)
            figures = run([*base, "import", str(iso), "--key", str(work / "k.pub")])
            subprocess.run([*base, "unimport", str(iso)], check=True, capture_output=True)
            return figures

        figures: dict[str, list[tuple[float, float]]] = {
            "build": [],
            "xorriso": [],
            "validate": [],
            "import": [],
            "openssl": [],
        }
        for round_ in range(args.runs):  # interleaved: A B, B A, ...
            pair = [("build", ours_build), ("xorriso", xorriso)]
            for name, command in pair if round_ % 2 == 0 else pair[::-1]:
                figures[name].append(run(command))
            ref.unlink()  # room for the next round; the reference's output is not needed
            # The builds leave gigabytes of dirty pages and evict part of the archive from the
            # page cache: write them back and read the archive once, untimed, or whichever
            # reader runs first pays for the writeback and the disk reads of all three.
            os.sync()
            warm(iso)
            reads = [
                ("validate", lambda: run(validate)),
                ("import", one_import),
                ("openssl", lambda: run(["openssl", "dgst", "-sha256", str(iso)])),
            ]
            for name, action in reads if round_ % 2 == 0 else reads[::-1]:
                figures[name].append(action())
        seconds = {name: median([s for s, _ in runs]) for name, runs in figures.items()}
        rss = {name: max(r for _, r in runs) for name, runs in figures.items()}
        gigabytes = iso.stat().st_size / 1e9
        print(
            f"archive: {gigabytes:.2f} GB, one layer of {size / 2**30:.2f} GiB "
            f"({-(-size // (2**32 - 2048))} extents), {os.cpu_count()} cores, "
            f"median of {args.runs} runs"
        )
        print(f"solutions build:      {seconds['build']:.2f} s, peak RSS {rss['build']:.1f} MiB")
        print(f"xorriso -iso-level 3: {seconds['xorriso']:.2f} s")
        print(
            f"solutions validate:   {seconds['validate']:.2f} s, peak RSS {rss['validate']:.1f} MiB"
        )
        print(f"solutions import:     {seconds['import']:.2f} s, peak RSS {rss['import']:.1f} MiB")
        print(f"openssl dgst -sha256: {seconds['openssl']:.2f} s")
        build_ratio = seconds["build"] / seconds["xorriso"]
        validate_ratio = seconds["validate"] / seconds["openssl"]
        import_ratio = seconds["import"] / seconds["openssl"]
        print(f"ratio build: {build_ratio:.2f}x (target <= {BUILD_TARGET}x)")
        print(f"ratio validate: {validate_ratio:.2f}x (target <= {VALIDATE_TARGET}x)")
        print(f"ratio import: {import_ratio:.2f}x (target <= {IMPORT_TARGET}x)")
        label = f"{gigabytes:.1f} GB archive, a {size / 2**30:.1f} GiB layer"
        record(
            "large",
            f"solutions build, {label}, vs xorriso -iso-level 3",
            ours=seconds["build"],
            unit="s",
            reference=seconds["xorriso"],
            reference_name="xorriso -as mkisofs -iso-level 3 -R -J",
            ratio=build_ratio,
            target=BUILD_TARGET,
            runs=args.runs,
        )
        record(
            "large",
            f"solutions validate --key, {label}, vs openssl",
            ours=seconds["validate"],
            unit="s",
            reference=seconds["openssl"],
            reference_name="openssl dgst -sha256",
            ratio=validate_ratio,
            target=VALIDATE_TARGET,
            runs=args.runs,
        )
        record(
            "large",
            f"solutions import, {label}, vs openssl",
            ours=seconds["import"],
            unit="s",
            reference=seconds["openssl"],
            reference_name="openssl dgst -sha256",
            ratio=import_ratio,
            target=IMPORT_TARGET,
            runs=args.runs,
        )
        for verb in ("build", "validate", "import"):
            record(
                "large",
                f"peak RSS of solutions {verb}, {label}",
                ours=rss[verb],
                unit="MiB",
                reference=rss["openssl"],
                reference_name="openssl dgst -sha256",
                target=RSS_TARGET,
                runs=args.runs,
                note="target on the figure itself (MB), not a ratio; the largest of the runs",
            )
    finally:
        plane.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
