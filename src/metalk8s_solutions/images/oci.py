"""Images inside an archive: the OCI image layout of ours, and MetalK8s's skopeo ``dir:``s.

Both are read through a :class:`~metalk8s_solutions.api.streams.FileSource` (an ISO, a
directory) and give the same result: the images by ``name:tag`` with their digests, sizes and
platforms, and for every blob file the digest it must have.  Manifests and configs are small and
checked here; big blobs are checked by the caller's single hashing pass (the SHA-256 of a blob
file is its digest, so checksum and digest checks share one hash).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.api.findings import Finding
from metalk8s_solutions.api.streams import FileSource, read_limited
from metalk8s_solutions.archive.cosign import SIGNATURE_TAG
from metalk8s_solutions.errors import ArchiveError

OCI_LAYOUT = "application/vnd.oci.image.layout.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_DESCRIPTORS = 10_000
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


@dataclass
class ImageInfo:
    """One image of an archive, for ``inspect`` and the registry."""

    ref: str
    digest: str
    media_type: str
    size: int = 0
    platforms: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.ref,
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
            "platforms": self.platforms,
        }


@dataclass
class ImageSet:
    """What the images part of an archive holds, and what is wrong with it."""

    images: dict[str, ImageInfo] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)  # blob path -> hex digest
    manifest_types: dict[str, str] = field(default_factory=dict)  # manifest path -> media type
    findings: list[Finding] = field(default_factory=list)
    #: cosign signature images (``name:sha256-<hex>.sig``), kept apart from the images
    signatures: dict[str, ImageInfo] = field(default_factory=dict)


def hex_of(digest: object) -> str:
    """The hex part of ``sha256:<hex>``, or ArchiveError."""
    match = DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise ArchiveError(f"unsupported or malformed digest {digest!r} (only sha256)")
    return match.group(1)


def _load_json(source: FileSource, path: str, digest: str | None = None) -> Any:
    data = read_limited(source, path, MAX_JSON_BYTES)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise ArchiveError(f"SOL031 {path} does not match its digest sha256:{digest}")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise ArchiveError(f"SOL033 {path} is not valid JSON") from err


def _descriptor(node: Any) -> tuple[str, str, int]:
    if not isinstance(node, dict):
        raise ArchiveError("a descriptor must be a JSON object")
    size = node.get("size")
    if not isinstance(size, int) or size < 0:
        raise ArchiveError(f"descriptor {node.get('digest')} has no valid size")
    return str(node.get("mediaType", "")), hex_of(node.get("digest")), size


def _platform(node: Any) -> str | None:
    if isinstance(node, dict) and node.get("os") and node.get("architecture"):
        variant = f"/{node['variant']}" if node.get("variant") else ""
        return f"{node['os']}/{node['architecture']}{variant}"
    return None


class _Walker:
    """Follows an image from its top descriptor down to its layers, in one blob store."""

    def __init__(self, source: FileSource, blob_path: Any, result: ImageSet) -> None:
        self.source = source
        self.blob_path = blob_path  # (hex) -> archive path of the blob
        self.result = result

    def blob(self, hexdigest: str, size: int, image: ImageInfo) -> str:
        path: str = self.blob_path(hexdigest)
        info = self.source.files().get(path)
        if info is None:
            raise ArchiveError(f"SOL031 {image.ref}: blob sha256:{hexdigest} is missing ({path})")
        if info.size != size:
            raise ArchiveError(f"SOL031 {path}: {info.size} bytes where the descriptor says {size}")
        self.result.expected[path] = hexdigest
        if hexdigest not in image.blobs:
            image.blobs.append(hexdigest)
            image.size += size
        return path

    def manifest(self, node: Any, image: ImageInfo, depth: int = 0) -> None:
        media_type, hexdigest, size = _descriptor(node)
        path = self.blob(hexdigest, size, image)
        self.document(_load_json(self.source, path, hexdigest), path, media_type, image, depth)

    def document(self, doc: Any, path: str, media_type: str, image: ImageInfo, depth: int) -> None:
        if not isinstance(doc, dict):
            raise ArchiveError(f"SOL033 {path}: a manifest must be a JSON object")
        media_type = doc.get("mediaType") or media_type
        if media_type in INDEX_TYPES or "manifests" in doc:
            self.result.manifest_types[path] = (
                media_type if media_type in INDEX_TYPES else (INDEX_TYPES[0])
            )
            if depth > 2:
                raise ArchiveError(f"SOL033 {path}: image indexes nested too deeply")
            children = doc.get("manifests")
            if not isinstance(children, list) or len(children) > MAX_DESCRIPTORS:
                raise ArchiveError(f"SOL033 {path}: manifests must be a list")
            for child in children:
                platform = _platform(child.get("platform") if isinstance(child, dict) else None)
                if platform and platform not in image.platforms:
                    image.platforms.append(platform)
                self.manifest(child, image, depth + 1)
            return
        if media_type not in MANIFEST_TYPES:
            raise ArchiveError(f"SOL033 {path}: unsupported manifest media type {media_type!r}")
        self.result.manifest_types[path] = media_type
        layers = doc.get("layers")
        if not isinstance(layers, list) or len(layers) > MAX_DESCRIPTORS:
            raise ArchiveError(f"SOL033 {path}: layers must be a list")
        _, config_hex, config_size = _descriptor(doc.get("config"))
        config_path = self.blob(config_hex, config_size, image)
        if depth == 0:
            config = _load_json(self.source, config_path, config_hex)
            platform = _platform(config)
            if platform and platform not in image.platforms:
                image.platforms.append(platform)
        for layer in layers:
            _, layer_hex, layer_size = _descriptor(layer)
            self.blob(layer_hex, layer_size, image)


def read_oci_layout(source: FileSource, prefix: str = "images/") -> ImageSet:
    """The images of the OCI image layout at ``prefix``, by their ref.name annotation."""
    result = ImageSet()
    files = source.files()
    if prefix + "oci-layout" not in files or prefix + "index.json" not in files:
        result.findings.append(
            Finding("SOL033", "the OCI image layout needs oci-layout and index.json", prefix)
        )
        return result
    try:
        layout = _load_json(source, prefix + "oci-layout")
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise ArchiveError(f"SOL033 {prefix}oci-layout: imageLayoutVersion must be 1.0.0")
        index = _load_json(source, prefix + "index.json")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or len(manifests) > MAX_DESCRIPTORS:
            raise ArchiveError(f"SOL033 {prefix}index.json: manifests must be a list")
    except ArchiveError as err:
        result.findings.append(_finding(err, prefix + "index.json"))
        return result
    walker = _Walker(source, lambda h: f"{prefix}blobs/sha256/{h}", result)
    for node in manifests:
        annotations = node.get("annotations") if isinstance(node, dict) else None
        ref = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
        if not isinstance(ref, str) or not ref:
            result.findings.append(
                Finding("SOL033", f"a manifest has no {REF_NAME} annotation", prefix + "index.json")
            )
            continue
        is_signature = SIGNATURE_TAG.match(ref.rpartition(":")[2]) is not None
        listed = result.signatures if is_signature else result.images
        if ref in listed:
            result.findings.append(Finding("SOL033", f"{ref} is listed twice", "images/index.json"))
            continue
        try:
            media_type, hexdigest, _ = _descriptor(node)
            image = ImageInfo(ref, f"sha256:{hexdigest}", media_type)
            platform = _platform(node.get("platform"))
            if platform:
                image.platforms.append(platform)
            walker.manifest(node, image)
        except ArchiveError as err:
            result.findings.append(_finding(err, prefix + "index.json", ref))
            continue
        listed[ref] = image
    referenced = set(result.expected)
    for path in sorted(files):
        if path.startswith(prefix + "blobs/") and path not in referenced:
            result.findings.append(Finding("SOL035", "blob not referenced by any image", path))
            result.expected[path] = path.rsplit("/", 1)[-1]
    return result


def read_docker_dirs(source: FileSource) -> ImageSet:
    """The images of a MetalK8s archive: one skopeo ``dir:`` per ``images/<name>/<tag>/``."""
    result = ImageSet()
    files = source.files()
    for path in sorted(files):
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != "images" or parts[3] != "manifest.json":
            continue
        directory = "/".join(parts[:3]) + "/"
        ref = f"{parts[1]}:{parts[2]}"

        def blob_path(hexdigest: str, directory: str = directory) -> str:
            plain = directory + hexdigest
            return plain if plain in files or plain + ".tar" not in files else plain + ".tar"

        try:
            data = read_limited(source, path, MAX_JSON_BYTES)
            doc = json.loads(data)
            media = doc.get("mediaType", DOCKER_MANIFEST) if isinstance(doc, dict) else ""
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
            image = ImageInfo(ref, digest, media, len(data))
            _Walker(source, blob_path, result).document(doc, path, media, image, 0)
        except (ArchiveError, ValueError, RecursionError) as err:
            result.findings.append(_finding(err, path, ref))
            continue
        result.images[ref] = image
    return result


def _finding(err: Exception, path: str, ref: str | None = None) -> Finding:
    text = str(err)
    rule = "SOL033"
    for candidate in ("SOL031", "SOL033"):
        if text.startswith(candidate + " "):
            rule, text = candidate, text[len(candidate) + 1 :]
    if ref and not text.startswith(ref):
        text = f"{ref}: {text}"
    return Finding(rule, text, path)
