"""Image signatures in cosign's layout: made at build time, checked by ``validate``.

cosign (``cosign verify --key``) looks for the signatures of the image manifest
``sha256:<hex>`` under the tag ``sha256-<hex>.sig`` of the image's own repository: an OCI image
manifest whose layers are *simple signing* payloads
(``application/vnd.dev.cosign.simplesigning.v1+json``)::

    {"critical":{"identity":{"docker-reference":"<repository>"},
                 "image":{"docker-manifest-digest":"sha256:<hex>"},
                 "type":"cosign container image signature"},"optional":null}

each with the base64 signature over the payload's exact bytes in the layer annotation
``dev.cosignproject.cosign/signature``.  An ECDSA P-256 key signs SHA-256 (DER), an Ed25519 key
signs the payload itself (cosign loads a ``--key`` for verification without Ed25519ph), so both
key types of :mod:`~metalk8s_solutions.archive.signing` verify with stock cosign.

What cosign checks (v2.6, ``pkg/cosign/verifiers.go`` ``SimpleClaimVerifier``): the signature
with the key and that ``docker-manifest-digest`` is the digest verified; the
``docker-reference`` is not compared with the repository given on its command line.  The
archive does not know the registry its images will be served from, so the reference written is
``<solution id>/<image>``, the repository path under any registry prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # signing loads cryptography: only the functions that sign or verify need it
    from metalk8s_solutions.archive.signing import PrivateKey, PublicKey

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_TAG = re.compile(r"^sha256-([0-9a-f]{64})\.sig$")
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
#: a simple-signing payload is a few hundred bytes; anything far larger is not one
MAX_PAYLOAD = 64 * 1024
MAX_SIGNATURES = 64
_ZERO_TIME = "0001-01-01T00:00:00Z"


def signature_tag(digest: str) -> str:
    """``sha256-<hex>.sig``, the tag cosign reads the signatures of ``sha256:<hex>`` from."""
    match = _DIGEST.match(digest)
    if match is None:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return f"sha256-{match.group(1)}.sig"


def signed_digest(tag: str) -> str | None:
    """The manifest digest a signature tag stands for, or None when ``tag`` is not one."""
    match = SIGNATURE_TAG.match(tag)
    return f"sha256:{match.group(1)}" if match else None


def payload(reference: str, digest: str) -> bytes:
    """The simple-signing payload, byte for byte as cosign writes it (Go's compact JSON)."""
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "size": len(data),
        "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
    }


@dataclass(frozen=True)
class SignatureImage:
    """A ``sha256-<hex>.sig`` image: its manifest and every blob it references."""

    manifest: bytes
    blobs: dict[str, bytes]  # hex digest -> bytes (config and payloads)

    @property
    def digest(self) -> str:
        return f"sha256:{hashlib.sha256(self.manifest).hexdigest()}"

    @property
    def descriptor(self) -> dict[str, Any]:
        return _descriptor(OCI_MANIFEST, self.manifest)


def signature_image(layers: list[tuple[bytes, bytes]]) -> SignatureImage:
    """The signature image holding ``(payload, raw signature)`` layers, as cosign builds it
    (an OCI manifest over an empty-image config whose diff_ids are the payloads')."""
    diff_ids = [f"sha256:{hashlib.sha256(p).hexdigest()}" for p, _ in layers]
    config = json.dumps(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    blobs = {hashlib.sha256(config).hexdigest(): config}
    descriptors = []
    for data, signature in layers:
        blobs[hashlib.sha256(data).hexdigest()] = data
        descriptor = _descriptor(SIMPLE_SIGNING, data)
        descriptor["annotations"] = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
        descriptors.append(descriptor)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": descriptors,
    }
    return SignatureImage(json.dumps(manifest, separators=(",", ":")).encode(), blobs)


def sign_image(private_key: PrivateKey, reference: str, digest: str) -> SignatureImage:
    """The signature image of manifest ``digest`` of repository ``reference``, by one key."""
    from metalk8s_solutions.archive.signing import sign  # noqa: PLC0415 - cryptography

    data = payload(reference, digest)
    _, signature = sign(private_key, data)
    return signature_image([(data, signature)])


@dataclass
class ImageSignatureCheck:
    """What the signatures of one image say: the trusted keys that signed it, and what is wrong
    (a malformed signature image, a payload naming another manifest: always fatal)."""

    valid: list[str] = field(default_factory=list)
    untrusted: int = 0  # signatures no trusted key verifies
    problems: list[str] = field(default_factory=list)


def check_signature_image(
    manifest: bytes,
    read_blob: Callable[[str, int], bytes],
    digest: str,
    trusted: Mapping[str, PublicKey],
) -> ImageSignatureCheck:
    """Check the signature image ``manifest`` of image manifest ``digest``.

    ``read_blob(hex, size)`` returns a blob's bytes, already checked against its digest (the
    caller's integrity pass) or raises ``OSError``/``ValueError``.
    """
    result = ImageSignatureCheck()
    try:
        document = json.loads(manifest)
    except (ValueError, RecursionError):
        result.problems.append("the signature manifest is not JSON")
        return result
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list) or not layers or len(layers) > MAX_SIGNATURES:
        result.problems.append(f"the signature manifest needs 1-{MAX_SIGNATURES} layers")
        return result
    for number, layer in enumerate(layers, start=1):
        problem = _check_layer(layer, read_blob, digest, trusted, result)
        if problem:
            result.problems.append(f"signature {number}: {problem}")
    return result


def _check_layer(
    layer: Any,
    read_blob: Callable[[str, int], bytes],
    digest: str,
    trusted: Mapping[str, PublicKey],
    result: ImageSignatureCheck,
) -> str | None:
    from metalk8s_solutions.archive.signing import verify  # noqa: PLC0415 - cryptography

    if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
        return f"not a {SIMPLE_SIGNING} layer"
    match = _DIGEST.match(str(layer.get("digest")))
    size = layer.get("size")
    if match is None or not isinstance(size, int) or not 0 < size <= MAX_PAYLOAD:
        return "malformed layer descriptor"
    annotations = layer.get("annotations")
    encoded = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(encoded, str):
        return f"no {SIGNATURE_ANNOTATION} annotation"
    try:
        signature = base64.b64decode(encoded, validate=True)
        data = read_blob(match.group(1), size)
        claims = json.loads(data)
    except (binascii.Error, OSError, ValueError, RecursionError) as err:
        return f"unreadable ({err})"
    critical = claims.get("critical") if isinstance(claims, dict) else None
    image = critical.get("image") if isinstance(critical, dict) else None
    named = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(critical, dict) or critical.get("type") != PAYLOAD_TYPE:
        return f"the payload is not a {PAYLOAD_TYPE!r}"
    if named != digest:
        return f"signs manifest {named}, not {digest}"
    for kid, key in trusted.items():
        if verify(key, data, signature):
            if kid not in result.valid:
                result.valid.append(kid)
            return None
    result.untrusted += 1
    return None


__all__ = [
    "SIGNATURE_TAG",
    "ImageSignatureCheck",
    "SignatureImage",
    "check_signature_image",
    "payload",
    "sign_image",
    "signature_image",
    "signature_tag",
    "signed_digest",
]
