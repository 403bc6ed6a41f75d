"""Pushing version N+1 after version N, when N+1 shares 90% of its layer bytes (target <= 15%).

Both versions have 4 images over ~1 GB of unique layer bytes: a 300 MB base layer in every
image, and per image 150 MB kept from version N plus 25 MB new in N+1 (so 900 MB of N+1's 1000
MB are N's bytes).  Version N is pushed into a fresh registry, then N+1 with N as a related
version: the shared layers are mounted across repositories, only the new bytes travel.  The
reference is a full push of N+1 into an empty registry, measured in the same run; timings are
medians of 3 runs, byte counts are exact.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _results import record
from _synthetic import CRD, IMAGES, MIB, ROLE, SOLUTIONS, random_file
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.images.client import RegistryTarget
from metalk8s_solutions.images.push import PushResult, push_images
from metalk8s_solutions.testing.registry import LocalRegistry

RUNS = 3
MANIFEST = """\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: bench-solution
  annotations: {{solutions.metalk8s.scality.com/display-name: Bench}}
spec:
  version: {version}
  images: [{images}]
  operator:
    image: {{name: example-solution-operator, tag: {version}}}
"""


def blob(blobs: Path, data: bytes) -> dict[str, object]:
    hexdigest = hashlib.sha256(data).hexdigest()
    (blobs / hexdigest).write_bytes(data)
    return {"digest": f"sha256:{hexdigest}", "size": len(data)}


def layer(blobs: Path, path: Path, hexdigest: str) -> dict[str, object]:
    target = blobs / hexdigest
    if not target.exists():
        os.link(path, target)
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": f"sha256:{hexdigest}",
        "size": path.stat().st_size,
    }


def make_version(root: Path, version: str, layers: dict[str, list[tuple[Path, str]]]) -> Path:
    (root / "operator/deploy/crds").mkdir(parents=True)
    refs = ", ".join(f"{image}:{version}" for image in layers)
    (root / "manifest.yaml").write_text(MANIFEST.format(version=version, images=refs))
    (root / "operator/deploy/crds/crd.yaml").write_text(CRD)
    (root / "operator/deploy/role.yaml").write_text(ROLE)
    for image, files in layers.items():
        layout = root / "images" / image / version
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        config = json.dumps({"os": "linux", "architecture": "amd64", "image": image}).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json"}
                | blob(blobs, config),
                "layers": [layer(blobs, path, hexdigest) for path, hexdigest in files],
            }
        ).encode()
        desc = blob(blobs, manifest)
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    **desc,
                    "annotations": {"org.opencontainers.image.ref.name": version},
                }
            ],
        }
        (layout / "index.json").write_text(json.dumps(index))
    return root


def build(work: Path, version: str, layers: dict[str, list[tuple[Path, str]]]) -> Path:
    source = make_version(work / f"src-{version}", version, layers)
    iso = work / f"bench-solution-{version}.iso"
    subprocess.run([SOLUTIONS, "build", "-q", str(source), "-o", str(iso)], check=True)
    return iso


def push(iso: Path, registry: LocalRegistry, related: tuple[str, ...] = ()) -> PushResult:
    return asyncio.run(
        push_images(load_catalog(iso), RegistryTarget(registry.url), related=related)
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-push-incremental-"))
    try:
        store = work / "layers"
        store.mkdir()

        def new_layer(name: str, size: int) -> tuple[Path, str]:
            path = store / name
            return path, random_file(path, size)

        base = new_layer("base", 300 * MIB)
        kept = {image: new_layer(f"{image}-kept", 150 * MIB) for image in IMAGES}
        old = {image: new_layer(f"{image}-old", 25 * MIB) for image in IMAGES}
        new = {image: new_layer(f"{image}-new", 25 * MIB) for image in IMAGES}
        version_n = build(work, "1.0.0", {i: [base, kept[i], old[i]] for i in IMAGES})
        version_n1 = build(work, "1.1.0", {i: [base, kept[i], new[i]] for i in IMAGES})

        incremental: list[tuple[float, PushResult]] = []
        full: list[tuple[float, PushResult]] = []
        for run in range(RUNS):
            root = work / f"registry-{run}"
            registry = LocalRegistry(root).start()
            try:
                push(version_n, registry)
                subprocess.run(["sync"], check=True)
                started = time.perf_counter()
                result = push(version_n1, registry, related=("bench-solution-1.0.0",))
                incremental.append((time.perf_counter() - started, result))
            finally:
                registry.stop()
                shutil.rmtree(root, ignore_errors=True)
            registry = LocalRegistry(root).start()
            try:
                subprocess.run(["sync"], check=True)
                started = time.perf_counter()
                result = push(version_n1, registry)
                full.append((time.perf_counter() - started, result))
            finally:
                registry.stop()
                shutil.rmtree(root, ignore_errors=True)

        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        inc_bytes = incremental[0][1].uploaded_bytes
        full_bytes = full[0][1].uploaded_bytes
        assert all(r.uploaded_bytes == inc_bytes for _, r in incremental)
        inc_time, full_time = median([t for t, _ in incremental]), median([t for t, _ in full])
        last = incremental[-1][1]
        print(f"version N+1: {full_bytes / 1e6:.0f} MB of unique blobs, {os.cpu_count()} cores")
        print(
            f"push of N+1 after N: uploaded {inc_bytes / 1e6:.1f} MB "
            f"({last.uploaded_blobs} blobs), mounted {last.mounted_bytes / 1e6:.0f} MB "
            f"({last.mounted_blobs} blobs), {inc_time:.2f} s (median of {RUNS})"
        )
        print(f"full push of N+1:    uploaded {full_bytes / 1e6:.1f} MB, {full_time:.2f} s")
        print(
            f"bytes uploaded: {100 * inc_bytes / full_bytes:.1f}% of a full push (target <= 15%); "
            f"time: {100 * inc_time / full_time:.0f}%"
        )
        record(
            "push-incremental",
            "bytes uploaded pushing N+1 after N (90% of N+1's bytes are N's)",
            ours=inc_bytes / 1e6,
            unit="MB",
            reference=full_bytes / 1e6,
            reference_name="full push of N+1",
            ratio=inc_bytes / full_bytes,
            target=0.15,
            runs=RUNS,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
