"""Signatures over SHA256SUMS: keys, key ids, signing, and the verification policy.

Each signature is a file ``signatures/<keyid>.sig`` holding a signature over the exact bytes of
SHA256SUMS, so several (vendor, then site) coexist and each can be checked with stock openssl.
``keyid`` is the first 16 hex characters of the SHA-256 of the public key's DER
SubjectPublicKeyInfo.  ECDSA P-256 signatures are DER-encoded over SHA-256 and deterministic
(RFC 6979) so that a signed build stays reproducible; Ed25519 is pure Ed25519.

The policy follows Zarf's rule: only *missing* material may be tolerated; a bad signature is
always fatal.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import Finding, Severity
from metalk8s_solutions.errors import KeyFileError, command

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
SIGNATURE_NAME = re.compile(r"^signatures/([0-9a-f]{16})\.sig$")
MAX_KEY_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 4096


class Algorithm(enum.StrEnum):
    ECDSA_P256 = "ecdsa-p256"
    ED25519 = "ed25519"


def key_id(public_key: PublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def generate_key(algorithm: Algorithm = Algorithm.ECDSA_P256) -> tuple[bytes, bytes]:
    """A new key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    private: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm is Algorithm.ECDSA_P256
        else ed25519.Ed25519PrivateKey.generate()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise KeyFileError(f"{path}: too large to be a key")
        return path.read_bytes()
    except OSError as err:
        raise KeyFileError(f"{path}: cannot read the key: {err.strerror}") from err


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """An ECDSA P-256 or Ed25519 private key from a PEM file."""
    if password is None and os.environ.get("SOLUTIONS_KEY_PASSWORD"):
        password = os.environ["SOLUTIONS_KEY_PASSWORD"].encode()
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise KeyFileError(
            f"{path}: not a usable PEM private key ({err})",
            hint=f"create one with '{command('keygen')}'; set SOLUTIONS_KEY_PASSWORD if encrypted",
        ) from err
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise KeyFileError(f"{path}: only ECDSA P-256 and Ed25519 keys are supported")


def load_public_key(data: bytes, label: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise KeyFileError(f"{label}: not a PEM public key ({err})") from err
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise KeyFileError(f"{label}: only ECDSA P-256 and Ed25519 keys are supported")


def trusted_keys(paths: Iterable[Path] = (), pems: Iterable[str] = ()) -> dict[str, PublicKey]:
    """The trusted public keys by key id, from files (``--key``) and PEM texts (site config)."""
    keys: dict[str, PublicKey] = {}
    for path in paths:
        key = load_public_key(_read_key_file(path), str(path))
        keys[key_id(key)] = key
    for number, pem in enumerate(pems, start=1):
        key = load_public_key(pem.encode(), f"trusted key #{number}")
        keys[key_id(key)] = key
    return keys


def max_signature_size(private_key: PrivateKey) -> int:
    """The largest signature ``sign`` makes with this key: Ed25519 64 bytes, ECDSA P-256 DER 72."""
    return 64 if isinstance(private_key, ed25519.Ed25519PrivateKey) else 72


def sign(private_key: PrivateKey, data: bytes) -> tuple[str, bytes]:
    """(key id, signature) over ``data``; ECDSA is deterministic (RFC 6979)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(data)
    else:
        signature = private_key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return key_id(private_key.public_key()), signature


def verify(public_key: PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def default_policy(trusted: Mapping[str, PublicKey]) -> Policy:
    """``required`` once trusted keys are configured, otherwise ``if-signed``."""
    return Policy.REQUIRED if trusted else Policy.IF_SIGNED


@dataclass
class SignatureReport:
    """The outcome of signature checks: who signed, and what is wrong."""

    valid: list[str] = field(default_factory=list)  # trusted key ids with a valid signature
    unknown: list[str] = field(default_factory=list)  # key ids we have no key for
    findings: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> str:
        if any(f.rule == "SOL081" for f in self.findings):
            return "invalid"
        if self.valid:
            return "verified"
        if self.unknown:
            return "signed-by-unknown-key"
        return "unsigned"


def check_signatures(
    sums: bytes | None,
    signatures: Mapping[str, bytes],
    trusted: Mapping[str, PublicKey],
    policy: Policy,
) -> SignatureReport:
    """Check the signatures (``{path: bytes}``) over ``sums`` against the policy."""
    report = SignatureReport()
    if policy is Policy.DISABLED:
        return report
    if not trusted:
        report.findings.append(
            Finding(
                "SOL082",
                "no trusted key configured: authenticity is not verified (pass --key PUB)",
            )
        )
    for path, signature in sorted(signatures.items()):
        match = SIGNATURE_NAME.match(path)
        if match is None:
            report.findings.append(Finding("SOL081", "not a signature file name", path))
            continue
        kid = match.group(1)
        key = trusted.get(kid)
        if key is None:
            report.unknown.append(kid)
            continue
        if sums is None or len(signature) > MAX_SIGNATURE_BYTES or not verify(key, sums, signature):
            report.findings.append(
                Finding(
                    "SOL081",
                    f"the signature by key {kid} does not match SHA256SUMS: the archive was "
                    "modified or the signature is corrupt — obtain a fresh copy",
                    path,
                )
            )
        else:
            report.valid.append(kid)
    if report.valid:
        return report
    severity = Severity.ERROR if policy is Policy.REQUIRED else Severity.WARNING
    if report.unknown:
        message = f"signed only by unknown key(s) {', '.join(report.unknown)}"
    else:
        message = "the archive is not signed"
    report.findings.append(Finding("SOL080", message, "signatures/", severity))
    return report
