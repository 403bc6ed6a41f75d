"""The one small program inside the images the real nodes need, and those images.

No image can be downloaded here, so the CRI sandbox ("pause") image and the tests' image are
built on the spot from ``gomod/podtool`` (a static Go program without dependencies): ``/pause``
sleeps until told to stop and reaps orphans; ``/podtool serve [ADDR]`` prints one line and
answers HTTP.  The binary is cached like the control-plane binaries, keyed by its source.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from metalk8s_solutions.testing import binaries

SOURCE_DIR = binaries.GOMOD_DIR / "podtool"
PAUSE_IMAGE = "solutions.local/pause:1"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        digest.update((SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()[:10]


def ensure_podtool() -> Path:
    """The static ``podtool`` binary, built once with the machine's Go toolchain."""
    target = binaries.cache_root() / f"podtool-{_source_hash()}" / "podtool"
    if target.is_file():
        return target
    go = binaries._go()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent.parent) as tmp:
        out = Path(tmp) / "podtool"
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly -buildvcs=false")
        cmd = [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."]
        binaries.go_build(cmd, SOURCE_DIR, env, target.parent / "build.log", "podtool")
        out.rename(target)
    return target


def _layer(binary: bytes) -> tuple[bytes, str]:
    """A gzip'd tar holding /podtool (0755) and /pause -> podtool; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        link = tarfile.TarInfo("pause")
        link.type = tarfile.SYMTYPE
        link.linkname = "podtool"
        link.mode = 0o777
        tar.addfile(link)
        info = tarfile.TarInfo("podtool")
        info.size = len(binary)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(binary))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def write_image(layout: Path, name: str, entrypoint: list[str]) -> str:
    """Write an OCI layout at ``layout`` holding image ``name``; returns the manifest digest.

    ``name`` is a full reference (``host/repo:tag``); the index names it both ways containerd
    (``io.containerd.image.name``) and skopeo (``org.opencontainers.image.ref.name``: the tag)
    read.
    """
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    blob, diff_id = _layer(ensure_podtool().read_bytes())
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": put(blob), "size": len(blob)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    digest = put(manifest_bytes)
    tag = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest_bytes),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
    return digest


def write_image_tar(target: Path, name: str, entrypoint: list[str]) -> str:
    """``write_image`` as one tar file (what ``ctr images import`` reads)."""
    with tempfile.TemporaryDirectory() as tmp:
        digest = write_image(Path(tmp), name, entrypoint)
        with tarfile.open(target, "w") as tar:
            for path in sorted(Path(tmp).rglob("*")):
                tar.add(path, arcname=str(path.relative_to(tmp)), recursive=False)
    return digest
