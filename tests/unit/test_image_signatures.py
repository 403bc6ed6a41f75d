"""Image signatures in cosign's layout: what ``build`` writes, what ``validate`` checks (SOL083,
SOL084), and what the catalog serves and pushes.  cosign itself verifies them in
tests/integration/test_cosign.py."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from conftest import make_source
from metalk8s_solutions.api.config import Policy
from metalk8s_solutions.api.findings import Severity
from metalk8s_solutions.archive import cosign
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.signing import Algorithm, generate_key, load_private_key, sign
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.sign import SignOptions, sign_archive
from metalk8s_solutions.engine.validate import ValidateOptions, ValidateResult, validate
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.images.registry_index import ArchiveFile, repositories_of

REF_NAME = "org.opencontainers.image.ref.name"


def extract(iso: Path, dest: Path) -> Path:
    with IsoReader(iso) as reader:
        for name in reader.files():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(reader.read_bytes(name))
    return dest


def check(path: Path, keys: tuple[Path, ...], policy: Policy | None = None) -> ValidateResult:
    return validate(ValidateOptions(path, keys=keys, policy=policy))


def found(result: ValidateResult, rule: str, level: Severity) -> list[str]:
    return [f.message for f in result.findings if f.rule == rule and f.level is level]


def keypair(directory: Path, name: str, algorithm: Algorithm = Algorithm.ECDSA_P256) -> Path:
    private, public = generate_key(algorithm)
    (directory / f"{name}.key").write_bytes(private)
    (directory / f"{name}.pub").write_bytes(public)
    return directory / f"{name}.key"


def built(tmp_path: Path, key: Path | None, name: str = "out.iso") -> Path:
    source = tmp_path / "src"
    if not source.exists():
        make_source(source)
    iso = tmp_path / name
    build(BuildOptions(source, iso, key=key, epoch=1_700_000_000))
    return iso


def index_of(reader: IsoReader) -> dict[str, dict[str, object]]:
    document = json.loads(reader.read_bytes("images/index.json"))
    return {m["annotations"][REF_NAME]: m for m in document["manifests"]}


def blob(reader: IsoReader, digest: object) -> bytes:
    return reader.read_bytes(f"images/blobs/sha256/{str(digest).removeprefix('sha256:')}")


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_build_signs_every_image_in_cosign_layout(tmp_path: Path, algorithm: Algorithm) -> None:
    iso = built(tmp_path, keypair(tmp_path, "vendor", algorithm))
    public = serialization.load_pem_public_key((tmp_path / "vendor.pub").read_bytes())
    with IsoReader(iso) as reader:
        index = index_of(reader)
        images = {r: d for r, d in index.items() if not r.endswith(".sig")}
        assert sorted(images) == ["base-server:1.0.0", "example-solution-operator:1.0.0"]
        assert len(index) == 4
        for ref, descriptor in images.items():
            name = ref.split(":")[0]
            digest = str(descriptor["digest"])
            tag = "sha256-" + digest.removeprefix("sha256:") + ".sig"
            signature = index[f"{name}:{tag}"]
            assert signature["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
            manifest = json.loads(blob(reader, signature["digest"]))
            assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
            [layer] = manifest["layers"]
            assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
            payload = blob(reader, layer["digest"])
            assert payload == (
                b'{"critical":{"identity":{"docker-reference":"example-solution-1.0.0/'
                + name.encode()
                + b'"},"image":{"docker-manifest-digest":"'
                + digest.encode()
                + b'"},"type":"cosign container image signature"},"optional":null}'
            )
            raw = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(raw, payload)  # pure Ed25519, as cosign verifies a --key
            else:
                assert isinstance(public, ec.EllipticCurvePublicKey)
                public.verify(raw, payload, ec.ECDSA(hashes.SHA256()))
            # Covered by SHA256SUMS like every blob.
            sums = reader.read_bytes("SHA256SUMS").decode()
            assert f"images/blobs/sha256/{str(signature['digest'])[7:]}" in sums
    result = check(iso, (tmp_path / "vendor.pub",))
    assert result.valid and not result.findings, result.findings


def test_build_is_still_reproducible(tmp_path: Path) -> None:
    key = keypair(tmp_path, "vendor")
    first = built(tmp_path, key, "a.iso").read_bytes()
    assert built(tmp_path, key, "b.iso").read_bytes() == first


def test_unsigned_build_has_no_image_signatures(tmp_path: Path) -> None:
    with IsoReader(built(tmp_path, None)) as reader:
        assert not [r for r in index_of(reader) if r.endswith(".sig")]


def test_signature_of_another_image_is_fatal(built_archive: Callable[[], Path]) -> None:
    """SOL083: a signature image that names another manifest (here swapped in index.json)."""
    iso = built_archive()
    root = extract(iso, iso.parent / "x")
    document = json.loads((root / "images/index.json").read_text())
    sigs = [m for m in document["manifests"] if m["annotations"][REF_NAME].endswith(".sig")]
    sigs[0]["digest"], sigs[1]["digest"] = sigs[1]["digest"], sigs[0]["digest"]
    sigs[0]["size"], sigs[1]["size"] = sigs[1]["size"], sigs[0]["size"]
    (root / "images/index.json").write_text(json.dumps(document))
    for policy in (Policy.REQUIRED, Policy.IF_SIGNED):
        result = check(root, (iso.parent / "vendor.pub",), policy)
        messages = found(result, "SOL083", Severity.ERROR)
        assert len(messages) == 2 and "signs manifest sha256:" in messages[0], result.findings
    assert not found(check(root, (), Policy.DISABLED), "SOL083", Severity.ERROR)


def test_signature_checks_on_the_format() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    digest = "sha256:" + "ab" * 32
    signed = cosign.sign_image(private, "sol-1.0.0/img", digest)
    blobs = signed.blobs

    def read(hexdigest: str, size: int) -> bytes:
        return blobs[hexdigest]

    trusted = {"k": private.public_key()}
    ok = cosign.check_signature_image(signed.manifest, read, digest, trusted)
    assert ok.valid == ["k"] and not ok.problems and ok.untrusted == 0
    other = cosign.check_signature_image(signed.manifest, read, "sha256:" + "cd" * 32, trusted)
    assert other.problems == [f"signature 1: signs manifest {digest}, not sha256:{'cd' * 32}"]
    stranger = {"s": ec.generate_private_key(ec.SECP256R1()).public_key()}
    untrusted = cosign.check_signature_image(signed.manifest, read, digest, stranger)
    assert untrusted.valid == [] and untrusted.untrusted == 1 and not untrusted.problems
    bare = json.loads(signed.manifest)
    del bare["layers"][0]["annotations"]
    missing = cosign.check_signature_image(json.dumps(bare).encode(), read, digest, trusted)
    assert missing.problems == [f"signature 1: no {cosign.SIGNATURE_ANNOTATION} annotation"]
    assert cosign.check_signature_image(b"[", read, digest, trusted).problems
    assert cosign.signature_tag(digest) == "sha256-" + "ab" * 32 + ".sig"
    assert cosign.signed_digest(cosign.signature_tag(digest)) == digest
    assert cosign.signed_digest("1.0.0") is None
    config = blobs[json.loads(signed.manifest)["config"]["digest"][7:]]
    payload_digest = "sha256:" + hashlib.sha256(cosign.payload("sol-1.0.0/img", digest)).hexdigest()
    assert json.loads(config)["rootfs"]["diff_ids"] == [payload_digest]


def test_archive_built_before_image_signatures_still_validates(tmp_path: Path) -> None:
    """A signed archive without image signatures (as built before them): valid under
    'required', with one SOL084 warning."""
    unsigned = built(tmp_path, None)
    key = keypair(tmp_path, "vendor")
    signed = tmp_path / "signed.iso"
    with IsoReader(unsigned) as reader:
        files = {name: reader.read_bytes(name) for name in reader.files()}
    kid, signature = sign(load_private_key(key), files["SHA256SUMS"])
    files[f"signatures/{kid}.sig"] = signature
    entries = [IsoFile(p, len(d), (lambda d=d: io.BytesIO(d))) for p, d in files.items()]
    write_iso(signed, entries, volume_id="S", epoch=0)
    pub = tmp_path / "vendor.pub"
    result = check(signed, (pub,), Policy.REQUIRED)
    assert result.valid, result.findings
    [message] = found(result, "SOL084", Severity.WARNING)
    assert "2 image(s) carry no cosign signature" in message
    # An unsigned archive gets SOL080 for it, not SOL084 as well.
    assert not found(check(unsigned, (), Policy.IF_SIGNED), "SOL084", Severity.WARNING)


def test_site_resigned_archive_keeps_vendor_image_signatures(tmp_path: Path) -> None:
    """'sign' keeps the vendor's image signatures byte for byte: with only the site key trusted
    the archive is valid, its images signed by a key not trusted here (SOL084 warning)."""
    vendor = keypair(tmp_path, "vendor")
    site = keypair(tmp_path, "site")
    iso = built(tmp_path, vendor)
    resigned = tmp_path / "site.iso"
    sign_archive(SignOptions(iso, site, resigned, trusted=(tmp_path / "vendor.pub",)))
    result = check(resigned, (tmp_path / "site.pub",), Policy.REQUIRED)
    assert result.valid, result.findings
    [message] = found(result, "SOL084", Severity.WARNING)
    assert "signed only by keys not trusted here" in message
    both = check(resigned, (tmp_path / "site.pub", tmp_path / "vendor.pub"), Policy.REQUIRED)
    assert both.valid and not both.findings


def test_catalog_serves_signature_tags(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    catalog = load_catalog(iso)
    assert [i for i, _, _ in catalog.image_refs()] == ["base-server", "example-solution-operator"]
    refs = list(catalog.signature_refs())
    assert len(refs) == 2
    with iso.open("rb") as handle:
        repositories = repositories_of(catalog, ArchiveFile(iso, handle, ()))
        for (image, tag, digest), repository in zip(refs, repositories, strict=True):
            signed = catalog.tags[image]["1.0.0"]
            assert tag == cosign.signature_tag(signed)
            assert repository.manifest(tag) is catalog.manifests[digest]
            assert tag in repository.tags


def test_inspect_names_each_image_signature_tag(tmp_path: Path) -> None:
    from metalk8s_solutions.engine.inspect import InspectOptions, inspect  # noqa: PLC0415

    signed = inspect(InspectOptions(built(tmp_path, keypair(tmp_path, "vendor")))).data["images"]
    assert [i["signature"] for i in signed] == [cosign.signature_tag(i["digest"]) for i in signed]
    unsigned = inspect(InspectOptions(built(tmp_path, None, "unsigned.iso"))).data["images"]
    assert [i["signature"] for i in unsigned] == [None, None]
