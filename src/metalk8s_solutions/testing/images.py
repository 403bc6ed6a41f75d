"""Small, valid OCI images made on the spot, for tests that need something to push and pull.

The images are deterministic (fixed timestamps, sorted entries): the same arguments always give
the same digests.  They are real: skopeo copies them, registries accept them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class SampleImage:
    """Where an image was written and its manifest digest."""

    layout: Path
    ref: str
    manifest_digest: str
    layer_digests: tuple[str, ...]


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip'd tar of ``files``; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    tar_bytes = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    return gzip.compress(tar_bytes, mtime=0), diff_id


def _put_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    blob = layout / "blobs" / "sha256" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        blob.write_bytes(data)
    return "sha256:" + digest


def write_test_image(
    layout: Path, ref: str, layers: list[dict[str, bytes]], *, entrypoint: list[str] | None = None
) -> SampleImage:
    """Add image ``ref`` (a tag, e.g. ``"demo:1.0"``) made of ``layers`` to the OCI layout."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layer_descs: list[dict[str, Any]] = []
    diff_ids = []
    for files in layers:
        blob, diff_id = _layer(files)
        digest = _put_blob(layout, blob)
        layer_descs.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(blob)})
        diff_ids.append(diff_id)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": entrypoint or ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z"} for _ in layers],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = _put_blob(layout, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": layer_descs,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = _put_blob(layout, manifest_bytes)
    index_path = layout / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref
    ]
    index["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "annotations": {"org.opencontainers.image.ref.name": ref},
        }
    )
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True))
    return SampleImage(
        layout=layout,
        ref=ref,
        manifest_digest=manifest_digest,
        layer_digests=tuple(d["digest"] for d in layer_descs),
    )
