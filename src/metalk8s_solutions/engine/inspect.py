"""``inspect``: what an archive holds — manifest, images, CRDs, roles, signature status.

Reads straight from the ISO file (or an extracted directory): no extraction, no mount.  It does
not hash the content (that is ``validate``'s job); it checks the signatures over SHA256SUMS,
which is cheap, and says so.  :func:`sboms` and :func:`read_sbom` read the SPDX SBOMs of its
images (``sboms/``, made by ``build``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.crd import summarize_crd, summarize_role
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.api.streams import FileSource, read_limited
from metalk8s_solutions.api.yamldoc import load_yaml_documents
from metalk8s_solutions.archive.checksums import SUMS_PATH
from metalk8s_solutions.archive.cosign import signature_tag
from metalk8s_solutions.archive.layout import Layout, crd_files, detect_layout
from metalk8s_solutions.archive.product import operator_roles
from metalk8s_solutions.archive.signing import (
    MAX_SIGNATURE_BYTES,
    check_signatures,
    trusted_keys,
)
from metalk8s_solutions.engine.crds import CRD_V1BETA1, convert_v1beta1, is_v1beta1_crd
from metalk8s_solutions.engine.validate import check_source, open_source
from metalk8s_solutions.errors import ArchiveError, ManifestError, Missing, command
from metalk8s_solutions.images.oci import (
    MANIFEST_TYPES,
    ImageSet,
    read_docker_dirs,
    read_oci_layout,
)
from metalk8s_solutions.images.sbom import load_sbom, package_rows


@dataclass(frozen=True)
class InspectOptions:
    archive: Path
    keys: tuple[Path, ...] = ()
    trusted_pems: tuple[str, ...] = ()


@dataclass(frozen=True)
class InspectResult:
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


def inspect(options: InspectOptions) -> InspectResult:
    trusted = trusted_keys(options.keys, options.trusted_pems)
    source, kind = open_source(options.archive)
    try:
        report = check_source(source, trusted=trusted, policy=Policy.DISABLED, verify_content=False)
        files = source.files()
        crds: list[dict[str, Any]] = []
        for path in crd_files(files):
            try:
                docs = load_yaml_documents(read_limited(source, path, 4 << 20), path)
            except ManifestError:
                continue
            crds.extend(
                {
                    "file": path,
                    **summarize_crd(convert_v1beta1(doc) if is_v1beta1_crd(doc) else doc),
                    **({"convertedFrom": CRD_V1BETA1} if is_v1beta1_crd(doc) else {}),
                }
                for doc in docs
            )
        roles: list[dict[str, Any]] = []
        try:
            docs = operator_roles(source, "archive")
        except (ManifestError, ArchiveError):
            docs = []
        roles = [summarize_role(doc) for doc in docs]
        sums = read_limited(source, SUMS_PATH, 32 << 20) if SUMS_PATH in files else None
        signatures = {
            p: read_limited(source, p, MAX_SIGNATURE_BYTES)
            for p in sorted(files)
            if p.startswith("signatures/")
        }
        sig = check_signatures(sums, signatures, trusted, Policy.IF_SIGNED)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    manifest = report.manifest
    data: dict[str, Any] = {
        "archive": str(options.archive),
        "kind": kind,
        "layout": str(report.layout),
        "id": manifest.id if manifest else None,
        "manifest": manifest.to_dict() if manifest else None,
        "images": [
            {**image.to_dict(), "signature": _signature_tag(report.images, ref, image.digest)}
            for ref, image in sorted(report.images.images.items())
        ],
        "crds": crds,
        "roles": roles,
        "integrity": {
            "checksums": f"present (verify with '{command('validate', str(options.archive))}')"
            if sums
            else "absent",
            "signature": sig.status,
            "signedBy": sorted([*sig.valid, *sig.unknown]),
            "trustedSignatures": sig.valid,
        },
        "files": len(files),
        "size": sum(f.size for f in files.values()),
        "problems": [f.to_dict() for f in report.findings if f.level is Severity.ERROR],
    }
    return InspectResult(data)


def _signature_tag(images: ImageSet, ref: str, digest: str) -> str | None:
    """The cosign signature tag (``sha256-<hex>.sig``) of image ``ref``, when the archive has it."""
    tag = signature_tag(digest)
    return tag if f"{ref.rpartition(':')[0]}:{tag}" in images.signatures else None


def read_sbom(archive: Path | FileSource, manifest_digest: str) -> dict[str, Any] | None:
    """The SPDX SBOM of the image manifest ``sha256:<hex>`` in ``archive`` (an ISO, an extracted
    archive, or an open source), ``None`` if the archive has none for it."""
    if not isinstance(archive, Path):
        return load_sbom(archive, manifest_digest)
    source, _ = open_source(archive)
    try:
        return load_sbom(source, manifest_digest)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class SbomOptions:
    archive: Path
    image: str | None = None  # name:tag; every image when None


def sboms(options: SbomOptions) -> dict[str, Any]:
    """Every image of the archive (or ``options.image``) with the SBOM of each of its
    single-platform manifests (``spdx`` is ``None`` where the archive has none)."""
    source, _ = open_source(options.archive)
    try:
        files = source.files()
        if detect_layout(files) is Layout.METALK8S:
            images = read_docker_dirs(source)
        else:
            images = read_oci_layout(source)
        if options.image is not None and options.image not in images.images:
            known = ", ".join(sorted(images.images)) or "none"
            raise Missing(
                f"{options.archive}: no image {options.image} in the archive (images: {known})",
                hint=f"list them with '{command('inspect', str(options.archive))}'",
            )
        result: list[dict[str, Any]] = []
        for ref, image in sorted(images.images.items()):
            if options.image is not None and ref != options.image:
                continue
            digests = [
                f"sha256:{h}"
                for h in image.blobs
                if images.manifest_types.get(f"images/blobs/sha256/{h}") in MANIFEST_TYPES
            ] or [image.digest]
            for digest in digests:
                result.append({"image": ref, "digest": digest, "spdx": load_sbom(source, digest)})
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return {"archive": str(options.archive), "images": result}


def sbom_packages(archive: Path) -> dict[str, list[dict[str, str]]]:
    """The packages of each image of ``archive`` (``name:tag`` -> rows of :func:`package_rows`,
    every platform's together), for images that have an SBOM; empty for an archive without."""
    result: dict[str, list[dict[str, str]]] = {}
    for entry in sboms(SbomOptions(archive))["images"]:
        if entry["spdx"] is None:
            continue
        rows = result.setdefault(entry["image"], [])
        seen = {row["purl"] for row in rows}
        rows.extend(row for row in package_rows(entry["spdx"]) if row["purl"] not in seen)
    return result
