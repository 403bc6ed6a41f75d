"""What an archive built from a source tree will hold, before anything is written.

:func:`plan` lists the files of the future archive from the source tree (``manifest.yaml``,
``operator/``, the image sources under ``images/`` turned into one OCI layout of blobs); the
result is a ``FileSource``, so ``validate`` runs the same rules on a source tree as on an ISO,
and ``build`` (``engine/build.py``) writes it.  Nothing here imports either of them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from metalk8s_solutions.api.manifest import SolutionManifest, parse_manifest
from metalk8s_solutions.api.streams import FileInfo, read_limited
from metalk8s_solutions.archive.cosign import sign_image, signature_tag
from metalk8s_solutions.archive.signing import PrivateKey
from metalk8s_solutions.archive.tree import DirectorySource
from metalk8s_solutions.archive.writer import IsoFile
from metalk8s_solutions.errors import ArchiveError, InvalidInput
from metalk8s_solutions.images.oci import OCI_INDEX, REF_NAME
from metalk8s_solutions.images.sources import ImageSource, load_image_source

OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'


def _bytes_opener(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


@dataclass
class BuildPlan:
    """The files of the future archive; a FileSource for the validation rules."""

    root: Path
    manifest: SolutionManifest
    entries: dict[str, IsoFile] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)  # blob path -> digest
    images: list[ImageSource] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(self.root)

    def files(self) -> dict[str, FileInfo]:
        return {p: FileInfo(p, e.size) for p, e in self.entries.items()}

    def special(self) -> dict[str, str]:
        return self._special

    def open(self, path: str) -> BinaryIO:
        source = self.entries[path].source
        if source is None:
            raise ArchiveError(f"{self.root}: {path} is written only at the end of the build")
        return source.open("rb") if isinstance(source, Path) else source()

    def add_bytes(self, path: str, data: bytes) -> None:
        self.entries[path] = IsoFile(path, len(data), _bytes_opener(data))

    _special: dict[str, str] = field(default_factory=dict)


def _image_source_path(root: Path, ref: str) -> Path:
    name, tag = ref.split(":", 1)
    for candidate in (root / "images" / name / tag, root / "images" / name / f"{tag}.tar"):
        if candidate.exists():
            return candidate
    raise InvalidInput(
        f"SOL030 {root}: no source for image {ref}",
        hint=f"put an OCI layout at images/{name}/{tag}/ or an archive at images/{name}/{tag}.tar",
    )


def _sign_images(result: BuildPlan, key: PrivateKey) -> list[dict[str, Any]]:
    """Add a cosign signature image per image to ``result``; their index.json entries."""
    entries: list[dict[str, Any]] = []
    for image in result.images:
        name = image.ref.split(":", 1)[0]
        digest = image.descriptor["digest"]
        ref = f"{name}:{signature_tag(digest)}"
        if any(e["annotations"][REF_NAME] == ref for e in entries):
            continue  # two tags of one manifest: one signature image
        signed = sign_image(key, f"{result.manifest.id}/{name}", digest)
        for hexdigest, data in [(signed.digest[7:], signed.manifest), *signed.blobs.items()]:
            path = f"images/blobs/sha256/{hexdigest}"
            result.add_bytes(path, data)
            result.expected[path] = hexdigest
        entries.append({**signed.descriptor, "annotations": {REF_NAME: ref}})
    return entries


def plan(root: Path, key: PrivateKey | None = None) -> BuildPlan:
    """What the archive built from ``root`` will contain (nothing is written); with ``key``,
    every image also gets its cosign signature image (``<name>:sha256-<hex>.sig``)."""
    manifest_path = root / "manifest.yaml"
    if not manifest_path.is_file():
        raise InvalidInput(f"SOL010 {manifest_path} is missing")
    tree = DirectorySource(root)
    manifest = parse_manifest(read_limited(tree, "manifest.yaml", 256 * 1024), str(manifest_path))
    result = BuildPlan(root, manifest)
    for path, info in tree.files().items():
        if not path.startswith("images/"):
            result.entries[path] = IsoFile(path, info.size, root / path)
    result._special = {p: k for p, k in tree.special().items() if not p.startswith("images/")}
    index: list[dict[str, Any]] = []
    for ref in sorted(str(i) for i in manifest.images):
        image = load_image_source(_image_source_path(root, ref), ref)
        result.images.append(image)
        index.append({**image.descriptor, "annotations": {REF_NAME: ref}})
        for blob in image.blobs:
            path = f"images/blobs/sha256/{blob.digest}"
            result.entries[path] = IsoFile(path, blob.size, blob.source)
            result.expected[path] = blob.digest
    if key is not None:
        index += _sign_images(result, key)
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}
    result.add_bytes("images/index.json", json.dumps(document, indent=2).encode() + b"\n")
    result.add_bytes("images/oci-layout", OCI_LAYOUT_BYTES)
    return result
