"""What an imported archive offers a registry: repositories, tags, manifests and blob extents.

Both ways of delivering images read this catalog: the built-in registry serves each blob as a
byte range of the ISO file (no extraction, no copy), and push mode copies the same ranges into
another registry.  Repositories are named ``<solution id>/<image>``, e.g.
``example-solution-1.0.0/base-server`` (the MetalK8s convention).  Both archive layouts are
read: our single OCI image layout and MetalK8s's skopeo ``dir:`` per image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from metalk8s_solutions.api.manifest import SolutionManifest
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.product import read_solution_manifest
from metalk8s_solutions.errors import ArchiveError, command
from metalk8s_solutions.images.oci import (
    ImageSet,
    read_docker_dirs,
    read_oci_layout,
)


@dataclass(frozen=True)
class Extent:
    """Bytes ``[offset, offset + size)`` of the ISO file ``archive``."""

    archive: Path
    offset: int
    size: int


@dataclass(frozen=True)
class ManifestEntry:
    """A manifest or index the registry can serve from the manifests endpoint."""

    digest: str
    media_type: str
    extent: Extent


@dataclass
class SolutionImages:
    """Every image of one solution version, as a registry sees them."""

    solution_id: str
    archive: Path
    manifest: SolutionManifest
    #: image name -> tag -> manifest digest
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    #: digest -> manifest entry (top-level and nested manifests)
    manifests: dict[str, ManifestEntry] = field(default_factory=dict)
    #: digest -> extent, for every blob (layers, configs, manifests)
    blobs: dict[str, Extent] = field(default_factory=dict)
    #: image name -> digests of the blobs its repository may serve
    repository_blobs: dict[str, set[str]] = field(default_factory=dict)
    #: image name -> cosign signature tag (``sha256-<hex>.sig``) -> signature manifest digest
    signature_tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def repositories(self) -> list[str]:
        return sorted(f"{self.solution_id}/{image}" for image in self.tags)

    def image_refs(self) -> Iterator[tuple[str, str, str]]:
        """(image, tag, manifest digest) for every tagged image, sorted."""
        for image in sorted(self.tags):
            for tag in sorted(self.tags[image]):
                yield image, tag, self.tags[image][tag]

    def signature_refs(self) -> Iterator[tuple[str, str, str]]:
        """(image, signature tag, manifest digest) of every cosign signature image, sorted."""
        for image in sorted(self.signature_tags):
            for tag in sorted(self.signature_tags[image]):
                yield image, tag, self.signature_tags[image][tag]

    @property
    def total_size(self) -> int:
        return sum(extent.size for extent in self.blobs.values())


def load_catalog(archive: Path, reader: IsoReader | None = None) -> SolutionImages:
    """Read the catalog of ``archive`` (an ISO file) without extracting anything.

    Raises :class:`ArchiveError` when the archive's images cannot be read at all; per-image
    problems are for ``validate`` to report (imports validate first).
    """
    own = reader is None
    iso = reader or IsoReader(archive)
    try:
        manifest = read_solution_manifest(iso, str(archive))
        files = iso.files()
        images: ImageSet = (
            read_oci_layout(iso) if "images/index.json" in files else read_docker_dirs(iso)
        )
        if not images.images and images.findings:
            first = images.findings[0]
            raise ArchiveError(
                f"archive {archive}: {first}", hint=f"run '{command('validate', str(archive))}'"
            )
        catalog = SolutionImages(solution_id=manifest.id, archive=archive, manifest=manifest)
        digest_of = {path: f"sha256:{hexdigest}" for path, hexdigest in images.expected.items()}
        for ref, info in sorted(images.images.items()):
            name, _, tag = ref.rpartition(":")
            catalog.tags.setdefault(name, {})[tag] = info.digest
            owned = catalog.repository_blobs.setdefault(name, set())
            owned.add(info.digest)
            owned.update(f"sha256:{hexdigest}" for hexdigest in info.blobs)
            # MetalK8s dirs: the top manifest is manifest.json, not a blob named by its digest.
            docker_manifest = "images/" + ref.replace(":", "/", 1) + "/manifest.json"
            if docker_manifest in images.manifest_types:
                digest_of[docker_manifest] = info.digest
        for ref, info in sorted(images.signatures.items()):
            name, _, tag = ref.rpartition(":")
            if name not in catalog.tags:
                continue  # signs no image of the archive (validate says so: SOL083)
            catalog.signature_tags.setdefault(name, {})[tag] = info.digest
            owned = catalog.repository_blobs[name]
            owned.add(info.digest)
            owned.update(f"sha256:{hexdigest}" for hexdigest in info.blobs)
        for path, digest in sorted(digest_of.items()):
            if path not in files or digest in catalog.blobs:
                continue
            offset, size = iso.extent(path)
            catalog.blobs[digest] = Extent(archive, offset, size)
            if path in images.manifest_types:
                catalog.manifests[digest] = ManifestEntry(
                    digest, images.manifest_types[path], catalog.blobs[digest]
                )
        return catalog
    finally:
        if own:
            iso.close()
