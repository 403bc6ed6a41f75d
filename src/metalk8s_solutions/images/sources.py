"""Images given to ``build``: an OCI layout directory, an OCI archive or a docker archive.

Each becomes an :class:`ImageSource`: the top manifest descriptor for our ``index.json`` and the
list of blobs to store, each with its digest, size and a way to open it.  Blobs stay where they
are (a file of the directory, a byte range of the uncompressed tarball) and are streamed into the
archive later; only manifests and configs (small JSON) are read here.  A docker archive has no
OCI manifest: one is written, pointing at its config and layer files as they are.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from metalk8s_solutions.api.streams import open_window, sha256_stream
from metalk8s_solutions.errors import ArchiveError
from metalk8s_solutions.images.oci import (
    INDEX_TYPES,
    MAX_JSON_BYTES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    REF_NAME,
    hex_of,
)

Opener = Path | Callable[[], BinaryIO]
MAX_MEMBERS = 100_000


@dataclass(frozen=True)
class Blob:
    digest: str  # hex
    size: int
    source: Opener


@dataclass
class ImageSource:
    ref: str
    descriptor: dict[str, Any]  # for index.json (mediaType, digest, size[, platform])
    blobs: list[Blob] = field(default_factory=list)


def _open(source: Opener) -> BinaryIO:
    return source.open("rb") if isinstance(source, Path) else source()


class _Store:
    """The files of an OCI layout (a directory or a tarball), by relative path."""

    def __init__(self, label: str, files: dict[str, tuple[int, Opener]]) -> None:
        self.label = label
        self.files = files

    def get(self, path: str) -> tuple[int, Opener]:
        if path not in self.files:
            raise ArchiveError(f"{self.label}: {path} is missing")
        return self.files[path]

    def json(self, path: str) -> Any:
        size, opener = self.get(path)
        if size > MAX_JSON_BYTES:
            raise ArchiveError(f"{self.label}: {path} is too large for a JSON document")
        with _open(opener) as stream:
            data = stream.read(size)
        try:
            return json.loads(data)
        except ValueError as err:
            raise ArchiveError(f"{self.label}: {path} is not valid JSON") from err

    def blob(self, hexdigest: str) -> Blob:
        size, opener = self.get(f"blobs/sha256/{hexdigest}")
        return Blob(hexdigest, size, opener)


def _directory_store(root: Path) -> _Store:
    files: dict[str, tuple[int, Opener]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ArchiveError(f"{path}: symlinks are not allowed in image sources")
        if path.is_file():
            files[path.relative_to(root).as_posix()] = (path.stat().st_size, path)
        if len(files) > MAX_MEMBERS:
            raise ArchiveError(f"{root}: too many files")
    return _Store(str(root), files)


def _tar_store(path: Path) -> _Store:
    try:
        with tarfile.open(path, "r:") as tar:
            members = []
            for member in tar:
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise ArchiveError(f"{path}: too many members")
    except tarfile.ReadError as err:
        raise ArchiveError(
            f"{path}: not an uncompressed tar archive ({err})",
            hint="give an OCI layout directory, or an uncompressed oci-archive/docker-archive",
        ) from err
    files: dict[str, tuple[int, Opener]] = {}
    links: dict[str, str] = {}
    for member in members:
        name = os.path.normpath(member.name).lstrip("/")
        if member.issym():
            links[name] = posixpath.normpath(
                posixpath.join(posixpath.dirname(name), member.linkname)
            )
        elif member.islnk():
            links[name] = os.path.normpath(member.linkname).lstrip("/")
        elif member.isfile() and not member.issparse():
            offset, size = member.offset_data, member.size

            def opener(offset: int = offset, size: int = size) -> BinaryIO:
                return open_window(path, offset, size)

            files[name] = (size, opener)
    # docker-archive tarballs link legacy "<id>/layer.tar" names to "<digest>.tar" members.
    for name, target in links.items():
        if target not in files:
            raise ArchiveError(f"{path}: link {name} points outside the tarball's files")
        files[name] = files[target]
    return _Store(str(path), files)


def _collect(store: _Store, node: dict[str, Any], blobs: dict[str, Blob], depth: int = 0) -> None:
    hexdigest = hex_of(node.get("digest"))
    blob = store.blob(hexdigest)
    blobs[hexdigest] = blob
    doc = store.json(f"blobs/sha256/{hexdigest}")
    if not isinstance(doc, dict):
        raise ArchiveError(f"{store.label}: manifest {hexdigest} is not a JSON object")
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        if depth > 2:
            raise ArchiveError(f"{store.label}: image indexes nested too deeply")
        for child in doc.get("manifests") or []:
            _collect(store, child, blobs, depth + 1)
        return
    for item in [doc.get("config"), *(doc.get("layers") or [])]:
        if not isinstance(item, dict):
            raise ArchiveError(f"{store.label}: manifest {hexdigest} has a malformed descriptor")
        layer = store.blob(hex_of(item.get("digest")))
        blobs[layer.digest] = layer


def _from_oci(store: _Store, ref: str) -> ImageSource:
    index = store.json("index.json")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        raise ArchiveError(f"{store.label}: index.json lists no image")
    tag = ref.split(":", 1)[1]

    def names(node: Any) -> set[str]:
        annotations = node.get("annotations") or {} if isinstance(node, dict) else {}
        name = annotations.get(REF_NAME, "")
        return {name} if name else set()

    chosen = [m for m in manifests if names(m) & {ref, tag}]
    if not chosen and len(manifests) == 1:
        chosen = manifests
    if len(chosen) != 1:
        raise ArchiveError(
            f"{store.label}: cannot tell which image is {ref}",
            hint=f"annotate it with {REF_NAME}: {tag}, or keep one image per layout",
        )
    node = chosen[0]
    blobs: dict[str, Blob] = {}
    _collect(store, node, blobs)
    descriptor = {
        "mediaType": node.get("mediaType", OCI_MANIFEST),
        "digest": node["digest"],
        "size": blobs[hex_of(node["digest"])].size,
    }
    if isinstance(node.get("platform"), dict):
        descriptor["platform"] = node["platform"]
    return ImageSource(ref, descriptor, list(blobs.values()))


def _layer_type(size: int, opener: Opener) -> str:
    with _open(opener) as stream:
        magic = stream.read(4) if size else b""
    if magic[:2] == b"\x1f\x8b":
        return OCI_LAYER + "+gzip"
    if magic == b"\x28\xb5\x2f\xfd":
        return OCI_LAYER + "+zstd"
    return OCI_LAYER


def _from_docker(store: _Store, ref: str) -> ImageSource:
    entries = store.json("manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ArchiveError(f"{store.label}: manifest.json lists no image")
    chosen = [e for e in entries if isinstance(e, dict) and ref in (e.get("RepoTags") or [])]
    if not chosen and len(entries) == 1:
        chosen = entries
    if len(chosen) != 1 or not isinstance(chosen[0], dict):
        raise ArchiveError(f"{store.label}: cannot tell which image is {ref} (set RepoTags)")
    entry = chosen[0]
    blobs: dict[str, Blob] = {}

    def add(path: object) -> tuple[Blob, dict[str, Any]]:
        size, opener = store.get(str(path))
        with _open(opener) as stream:
            hexdigest, _ = sha256_stream(stream)
        blob = Blob(hexdigest, size, opener)
        blobs[hexdigest] = blob
        return blob, {"digest": f"sha256:{hexdigest}", "size": size}

    _, config_desc = add(entry.get("Config"))
    layers = []
    for layer_path in entry.get("Layers") or []:
        blob, desc = add(layer_path)
        layers.append({"mediaType": _layer_type(blob.size, blob.source), **desc})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config_desc},
        "layers": layers,
    }
    data = json.dumps(manifest, separators=(",", ":")).encode()
    hexdigest = hashlib.sha256(data).hexdigest()
    blobs[hexdigest] = Blob(hexdigest, len(data), lambda: io.BytesIO(data))
    descriptor = {"mediaType": OCI_MANIFEST, "digest": f"sha256:{hexdigest}", "size": len(data)}
    return ImageSource(ref, descriptor, list(blobs.values()))


def load_image_source(path: Path, ref: str) -> ImageSource:
    """The image ``ref`` (``name:tag``) from an OCI layout dir or an oci/docker archive tarball."""
    try:
        if path.is_dir():
            store = _directory_store(path)
        elif path.is_file():
            store = _tar_store(path)
        else:
            raise ArchiveError(f"{path}: no such image source")
        if "oci-layout" in store.files:
            return _from_oci(store, ref)
        if "manifest.json" in store.files:
            return _from_docker(store, ref)
    except OSError as err:
        raise ArchiveError(f"{path}: cannot read: {err.strerror}") from err
    raise ArchiveError(
        f"{path}: neither an OCI image layout nor a docker archive",
        hint="produce it with 'skopeo copy ... oci:DIR' or 'oci-archive:' / 'docker-archive:'",
    )
