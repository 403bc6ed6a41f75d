"""``keygen``: a signing key pair for archives (private key 0600, public key to distribute)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from metalk8s_solutions.archive.signing import Algorithm, generate_key, key_id, load_public_key
from metalk8s_solutions.errors import Refused


@dataclass(frozen=True)
class KeygenOptions:
    prefix: Path  # writes PREFIX.key and PREFIX.pub
    algorithm: Algorithm = Algorithm.ECDSA_P256
    force: bool = False


@dataclass(frozen=True)
class KeygenResult:
    private_key: Path
    public_key: Path
    key_id: str
    algorithm: Algorithm

    def to_dict(self) -> dict[str, str]:
        return {
            "privateKey": str(self.private_key),
            "publicKey": str(self.public_key),
            "keyId": self.key_id,
            "algorithm": str(self.algorithm),
        }


def keygen(options: KeygenOptions) -> KeygenResult:
    private_path = options.prefix.with_name(options.prefix.name + ".key")
    public_path = options.prefix.with_name(options.prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() and not options.force:
            raise Refused(f"{path} already exists", hint="pass --force to overwrite it")
    private_pem, public_pem = generate_key(options.algorithm)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(private_path, flags, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(private_pem)
    private_path.chmod(0o600)
    public_path.write_bytes(public_pem)
    kid = key_id(load_public_key(public_pem, str(public_path)))
    return KeygenResult(private_path, public_path, kid, options.algorithm)
