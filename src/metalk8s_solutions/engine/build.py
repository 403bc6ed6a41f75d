"""``build``: from a source tree to a signed, reproducible Solution archive.

The source tree holds exactly what the archive will hold, except images, which come in source
form (``images/<name>/<tag>/`` as an OCI layout directory, or ``images/<name>/<tag>.tar`` as an
OCI or docker archive)::

    SRC/manifest.yaml                  the full Solution manifest
    SRC/images/<name>/<tag>[.tar]      one per spec.images entry
    SRC/operator/deploy/role.yaml
    SRC/operator/deploy/crds/*.yaml
    SRC/monitoring/..., SRC/ui/...     optional extras

The archive also gets ``sboms/sha256-<hex>.spdx.json``, the SPDX SBOM of every image manifest,
made from its layers (``images/sbom.py``): a second read of the layers, before the write.

:func:`plan` turns it into the list of archive files (a ``FileSource``, so ``validate`` runs the
same rules on it); :func:`build` checks the plan and streams every file into the ISO once,
hashing it on the way (blob digests verified as each blob ends); SHA256SUMS (whose size is known
from the paths alone) and its signature have their place reserved and are written last.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions import __version__
from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import Finding, Severity
from metalk8s_solutions.archive.checksums import SUMS_PATH, format_sums
from metalk8s_solutions.archive.signing import (
    key_id,
    load_private_key,
    max_signature_size,
    sign,
)
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build_plan import BuildPlan, plan
from metalk8s_solutions.engine.validate import (
    ProgressCallback,
    ProgressEvent,
    check_source,
)
from metalk8s_solutions.errors import ArchiveError, ChecksumMismatch, InvalidInput, command
from metalk8s_solutions.images.sbom import image_sboms


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
    the_plan = plan(options.source, private_key)
    # One SPDX SBOM per image manifest, read from its layers (sboms/, covered by SHA256SUMS).
    sboms = image_sboms(the_plan.images, created=epoch, tool=f"metalk8s-solutions-{__version__}")
    for path, data in sboms.items():
        the_plan.add_bytes(path, data)
    report = check_source(the_plan, trusted={}, policy=Policy.DISABLED, verify_content=False)
    errors = [f for f in report.findings if f.level is Severity.ERROR]
    if errors:
        details = "; ".join(str(f) for f in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InvalidInput(
            f"{options.source}: cannot build: {details}{more}",
            hint=f"run '{command('validate', str(options.source))}' for the full list",
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
