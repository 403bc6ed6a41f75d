"""The catalog maps repositories and digests to byte ranges of the ISO that hold exactly them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from conftest import SHARED_LAYER, metalk8s_archive
from metalk8s_solutions.images.catalog import Extent, load_catalog


def read(extent: Extent) -> bytes:
    with extent.archive.open("rb") as handle:
        handle.seek(extent.offset)
        return handle.read(extent.size)


def test_oci_layout_archive(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    assert catalog.solution_id == "example-solution-1.0.0"
    assert catalog.repositories() == [
        "example-solution-1.0.0/base-server",
        "example-solution-1.0.0/example-solution-operator",
    ]
    refs = list(catalog.image_refs())
    assert [(image, tag) for image, tag, _ in refs] == [
        ("base-server", "1.0.0"),
        ("example-solution-operator", "1.0.0"),
    ]
    for digest, extent in catalog.blobs.items():
        assert "sha256:" + hashlib.sha256(read(extent)).hexdigest() == digest
    for _, _, digest in refs:
        assert catalog.manifests[digest].media_type == "application/vnd.oci.image.manifest.v1+json"
    # The shared layer is stored once and served by both repositories.
    shared = set.intersection(*catalog.repository_blobs.values())
    assert "sha256:" + hashlib.sha256(SHARED_LAYER).hexdigest() in shared
    # Two image manifests, and the cosign signature manifest of each (signed build).
    assert len(catalog.manifests) == 4
    assert [(i, t.endswith(".sig")) for i, t, _ in catalog.signature_refs()] == [
        ("base-server", True),
        ("example-solution-operator", True),
    ]


def test_metalk8s_layout_archive(tmp_path: Path) -> None:
    catalog = load_catalog(metalk8s_archive(tmp_path))
    assert catalog.solution_id == "example-solution-1.0.0"
    assert sorted(catalog.tags) == ["base-server", "example-solution-operator"]
    for image, _tag, digest in catalog.image_refs():
        entry = catalog.manifests[digest]
        assert entry.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        assert "sha256:" + hashlib.sha256(read(entry.extent)).hexdigest() == digest
        assert len(catalog.repository_blobs[image]) == 3  # manifest, config, layer
    for digest, extent in catalog.blobs.items():
        assert "sha256:" + hashlib.sha256(read(extent)).hexdigest() == digest
