"""Synthetic Solution sources for the benchmarks: ~1 GB of random image layers, shared across
images the way real base layers are (one 300 MB base layer in 4 images, plus 4 x 175 MB own layers).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Measure commands as an installed package runs them, with their bytecode cached: a caller's
# PYTHONDONTWRITEBYTECODE would make every child compile its ~350 modules again (~0.8 s).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
SOLUTIONS = str(Path(sys.executable).parent / "solutions")
MIB = 1024 * 1024
IMAGES = ["base-server", "web", "worker", "example-solution-operator"]
MANIFEST = """\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: bench-solution
  annotations: {solutions.metalk8s.scality.com/display-name: Bench}
spec:
  version: 1.0.0
  images: [%s]
  operator:
    image: {name: example-solution-operator, tag: 1.0.0}
"""
CRD = (ROOT / "tests" / "conftest.py").read_text().split('CRD = """\\\n')[1].split('"""')[0]
ROLE = (ROOT / "tests" / "conftest.py").read_text().split('ROLE = """\\\n')[1].split('"""')[0]


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as stream:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MIB))
            digest.update(chunk)
            stream.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def write_image_index(layout: Path, layer_hexes: list[str]) -> None:
    """Config, manifest and index.json of a one-image OCI layout whose layer blobs are in place."""
    blobs = layout / "blobs" / "sha256"
    config = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    (blobs / config_hex).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_hex}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{h}",
                    "size": (blobs / h).stat().st_size,
                }
                for h in layer_hexes
            ],
        }
    ).encode()
    manifest_hex = hashlib.sha256(manifest).hexdigest()
    (blobs / manifest_hex).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": f"sha256:{manifest_hex}",
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "1.0.0"},
                    }
                ],
            }
        )
    )


def make_tree(root: Path, base_mb: int = 300, own_mb: int = 175) -> Path:
    """A source tree; the shared layer is hard-linked into each image layout (disk stays ~1 GB)."""
    if root.exists():
        shutil.rmtree(root)
    (root / "operator/deploy/crds").mkdir(parents=True)
    (root / "manifest.yaml").write_text(MANIFEST % ", ".join(f"{i}:1.0.0" for i in IMAGES))
    (root / "operator/deploy/crds/crd.yaml").write_text(CRD)
    (root / "operator/deploy/role.yaml").write_text(ROLE)
    store = root.parent / "layers"
    store.mkdir(exist_ok=True)
    base = store / "base"
    base_hex = random_file(base, base_mb * MIB)
    for name in IMAGES:
        layout = root / "images" / name / "1.0.0"
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        os.link(base, blobs / base_hex)
        own_hex = random_file(blobs / "own", own_mb * MIB)
        (blobs / "own").rename(blobs / own_hex)
        write_image_index(layout, [base_hex, own_hex])
    return root


def flat_tree(source: Path, target: Path) -> Path:
    """The archive's file set as a plain directory (blobs hard-linked), for the reference tools."""
    if target.exists():
        shutil.rmtree(target)
    blobs = target / "images" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if relative.parts[0] == "images":
            is_blob = len(relative.parts) >= 5 and relative.parts[3] == "blobs"
            if is_blob and path.is_file() and not (blobs / path.name).exists():
                os.link(path, blobs / path.name)
            continue
        if path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / relative)
    (target / "images" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (target / "images" / "index.json").write_text("{}")
    (target / "SHA256SUMS").write_text("")
    return target


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_of(runs: int, action: Callable[[], float]) -> float:
    return statistics.median(action() for _ in range(runs))


def interleaved(runs: int, *actions: Callable[[], float]) -> list[float]:
    """The median of each action over ``runs`` rounds, run in turn (A B, B A, A B...).

    On this machine the first large write after other work pays for memory reclaim (seconds of
    system time for 1 GB), so running all of one side first would bias the ratio.
    """
    times: list[list[float]] = [[] for _ in actions]
    for round_ in range(runs):
        order = list(enumerate(actions))
        for index, action in order if round_ % 2 == 0 else order[::-1]:
            times[index].append(action())
    return [statistics.median(t) for t in times]


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of one child process (ru_maxrss), in MiB."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command} failed with {process.returncode}")
    return usage.ru_maxrss / 1024
