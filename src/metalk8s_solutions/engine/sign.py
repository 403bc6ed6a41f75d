"""``sign``: add a signature (typically the site's own) to an existing archive.

The archive is validated first under the strictest policy (``required``): every checksum must
hold and a signature by a key the signer trusts (``trusted``, e.g. the vendor's public key) must
be valid, since a signature vouches for content; then it is rewritten with one more
``signatures/<keyid>.sig``; the existing signatures and every other file are kept byte for
byte, streamed from the original ISO.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.archive.checksums import SUMS_PATH
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.signing import load_private_key, sign
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build import source_date_epoch
from metalk8s_solutions.engine.validate import ProgressCallback, ValidateOptions, validate
from metalk8s_solutions.errors import ArchiveInvalid, Refused, command


@dataclass(frozen=True)
class SignOptions:
    archive: Path
    key: Path
    output: Path
    epoch: int | None = None
    progress: ProgressCallback | None = None
    #: public keys whose valid signature the archive must already carry (the vendor's)
    trusted: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SignResult:
    output: Path
    key_id: str
    signatures: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "output": str(self.output),
            "keyId": self.key_id,
            "signatures": list(self.signatures),
        }


def sign_archive(options: SignOptions) -> SignResult:
    private_key = load_private_key(options.key)
    checked = validate(
        ValidateOptions(
            options.archive,
            keys=options.trusted,
            policy=Policy.REQUIRED,
            progress=options.progress,
        )
    )
    errors = [f for f in checked.findings if f.level is Severity.ERROR]
    if errors:
        hint = (
            "pass the vendor's public key with --trusted-key"
            if not options.trusted
            else "sign only an archive verified against a key you trust; obtain a fresh copy"
        )
        raise ArchiveInvalid(
            f"{options.archive}: will not sign an archive that fails the 'required' policy: "
            f"{errors[0]}",
            hint=hint,
        )
    if checked.kind != "iso":
        raise Refused(f"{options.archive}: only ISO archives can be signed")
    temporary = options.output.with_name(f".{options.output.name}.partial")
    with IsoReader(options.archive) as reader:
        if SUMS_PATH not in reader.files():
            raise Refused(
                f"{options.archive}: has no SHA256SUMS to sign (MetalK8s layout)",
                hint="rebuild it with "
                f"'{command('build', '<source>', '-o', str(options.archive))}'",
            )
        kid, signature = sign(private_key, reader.read_bytes(SUMS_PATH))
        name = f"signatures/{kid}.sig"

        def opener(path: str) -> Callable[[], BinaryIO]:
            return lambda: reader.open(path)

        files = [
            IsoFile(path, info.size, opener(path))
            for path, info in reader.files().items()
            if path != name
        ]
        files.append(IsoFile(name, len(signature), lambda: io.BytesIO(signature)))
        try:
            write_iso(
                temporary,
                files,
                volume_id=checked.report.manifest.id if checked.report.manifest else "SOLUTION",
                epoch=source_date_epoch(options.epoch),
            )
            temporary.replace(options.output)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    signatures = tuple(sorted(f.path for f in files if f.path.startswith("signatures/")))
    return SignResult(options.output, kid, signatures)
