"""``build``: from a source tree to a signed, reproducible Solution archive.

The source tree holds exactly what the archive will hold, except images, which come in source
form (``images/<name>/<tag>/`` as an OCI layout directory, or ``images/<name>/<tag>.tar`` as an
OCI or docker archive)::

    SRC/manifest.yaml                  the full Solution manifest
    SRC/images/<name>/<tag>[.tar]      one per spec.images entry
    SRC/operator/deploy/role.yaml
    SRC/operator/deploy/crds/*.yaml
    SRC/monitoring/..., SRC/ui/...     optional extras

:func:`plan` turns it into the list of archive files (a ``FileSource``, so ``validate`` runs the
same rules on it); :func:`build` checks the plan and streams every file into the ISO once,
hashing it on the way (blob digests verified as each blob ends); SHA256SUMS (whose size is known
from the paths alone) and its signature have their place reserved and are written last.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import Finding, Severity
from metalk8s_solutions.api.manifest import SolutionManifest, parse_manifest
from metalk8s_solutions.api.streams import FileInfo, read_limited
from metalk8s_solutions.archive.checksums import SUMS_PATH, format_sums
from metalk8s_solutions.archive.signing import (
    key_id,
    load_private_key,
    max_signature_size,
    sign,
)
from metalk8s_solutions.archive.tree import DirectorySource
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.validate import (
    ProgressCallback,
    ProgressEvent,
    check_source,
)
from metalk8s_solutions.errors import ArchiveError, ChecksumMismatch, InvalidInput
from metalk8s_solutions.images.oci import OCI_INDEX, REF_NAME
from metalk8s_solutions.images.sources import ImageSource, load_image_source

OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass(frozen=True)
class BuildOptions:
    source: Path
    output: Path
    key: Path | None = None
    epoch: int | None = None  # default: SOURCE_DATE_EPOCH, else now
    progress: ProgressCallback | None = None


@dataclass(frozen=True)
class BuildResult:
    output: Path
    id: str
    size: int
    files: int
    blobs: int
    images: tuple[str, ...]
    key_id: str | None
    seconds: float
    warnings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "id": self.id,
            "size": self.size,
            "files": self.files,
            "blobs": self.blobs,
            "images": list(self.images),
            "signedBy": self.key_id,
            "seconds": round(self.seconds, 3),
            "warnings": [f.to_dict() for f in self.warnings],
        }


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


def plan(root: Path) -> BuildPlan:
    """What the archive built from ``root`` will contain (nothing is written)."""
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
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}
    result.add_bytes("images/index.json", json.dumps(document, indent=2).encode() + b"\n")
    result.add_bytes("images/oci-layout", OCI_LAYOUT_BYTES)
    return result


def source_date_epoch(explicit: int | None = None) -> int:
    if explicit is not None:
        return explicit
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time())
    try:
        return int(value)
    except ValueError as err:
        raise InvalidInput(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from err


def build(options: BuildOptions) -> BuildResult:
    """Build the archive; raises InvalidInput with the first error found in the source tree."""
    started = time.monotonic()
    epoch = source_date_epoch(options.epoch)
    private_key = load_private_key(options.key) if options.key else None
    the_plan = plan(options.source)
    report = check_source(the_plan, trusted={}, policy=Policy.DISABLED, verify_content=False)
    errors = [f for f in report.findings if f.level is Severity.ERROR]
    if errors:
        details = "; ".join(str(f) for f in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InvalidInput(
            f"{options.source}: cannot build: {details}{more}",
            hint="run 'solutions validate' on the source tree for the full list",
        )
    covered = sorted(the_plan.entries)
    sums_size = len(format_sums(dict.fromkeys(covered, "0" * 64)))
    the_plan.entries[SUMS_PATH] = IsoFile(SUMS_PATH, sums_size, None)
    kid: str | None = None
    if private_key is not None:
        kid = key_id(private_key.public_key())
        signature_path = f"signatures/{kid}.sig"
        the_plan.entries[signature_path] = IsoFile(
            signature_path, max_signature_size(private_key), None
        )
    digests: dict[str, str] = {}

    def on_file(path: str, hexdigest: str) -> None:
        expected = the_plan.expected.get(path)
        if expected is not None and hexdigest != expected:
            raise ChecksumMismatch(
                f"{options.source}: blob sha256:{expected} of an image source has digest "
                f"sha256:{hexdigest}: the image source is corrupt"
            )
        digests[path] = hexdigest

    def finish() -> dict[str, bytes]:
        sums = format_sums(digests)
        contents = {SUMS_PATH: sums}
        if private_key is not None:
            _, signature = sign(private_key, sums)
            contents[f"signatures/{kid}.sig"] = signature
        return contents

    def on_write(done: int, size: int) -> None:
        if options.progress is not None:
            options.progress(ProgressEvent("write", done, size))

    manifest = the_plan.manifest
    output = options.output
    temporary = output.with_name(f".{output.name}.partial")
    try:
        write_iso(
            temporary,
            list(the_plan.entries.values()),
            volume_id=manifest.id.upper().replace(".", "_").replace("-", "_"),
            epoch=epoch,
            progress=on_write,
            on_file=on_file,
            finish=finish,
        )
        temporary.replace(output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return BuildResult(
        output=output,
        id=manifest.id,
        size=output.stat().st_size,
        files=len(the_plan.entries),
        blobs=len(the_plan.expected),
        images=tuple(sorted(str(i) for i in manifest.images)),
        key_id=kid,
        seconds=time.monotonic() - started,
        warnings=tuple(f for f in report.findings if f.level is Severity.WARNING),
    )


__all__ = ["ArchiveError", "BuildOptions", "BuildPlan", "BuildResult", "build", "plan"]
