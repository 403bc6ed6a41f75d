"""The build reads every input byte once: hashed while written, SHA256SUMS and signature last."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from conftest import make_source, write_oci_layout
from metalk8s_solutions.archive.checksums import SUMS_PATH, parse_sums
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.signing import Algorithm, generate_key, key_id, load_private_key
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.validate import ValidateOptions, validate
from metalk8s_solutions.errors import ArchiveError, ChecksumMismatch

XORRISO = shutil.which("xorriso")
EPOCH = 1_700_000_000
BIG = 9 * 1024 * 1024 + 123  # more than two copy blocks, not a whole number of sectors


class Counted:
    """A source that counts how often it is opened and how many bytes are read from it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.opened = 0
        self.read = 0

    def __call__(self) -> BinaryIO:
        self.opened += 1
        counter = self

        class Stream(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                data = super().read(size)
                counter.read += len(data)
                return data

            def readinto(self, buffer: Any) -> int:
                got = super().readinto(buffer)
                counter.read += got
                return got

        return Stream(self.data)


def test_every_source_is_read_once_and_hashed_while_written(tmp_path: Path) -> None:
    contents = {
        "big": os.urandom(BIG),
        "dir/small": b"small\n",
        "empty": b"",
        "exact": b"e" * (4 * 1024 * 1024),
    }
    sources = {path: Counted(data) for path, data in contents.items()}
    seen: dict[str, str] = {}
    iso = tmp_path / "t.iso"
    write_iso(
        iso,
        [IsoFile(path, len(contents[path]), source) for path, source in sources.items()],
        volume_id="T",
        epoch=EPOCH,
        on_file=seen.setdefault,
    )
    assert seen == {path: hashlib.sha256(data).hexdigest() for path, data in contents.items()}
    for path, source in sources.items():
        if contents[path]:
            assert (source.opened, source.read) == (1, len(contents[path])), path
    with IsoReader(iso) as reader:
        assert {path: reader.read_bytes(path) for path in contents} == contents


def _plain(files: dict[str, bytes]) -> list[IsoFile]:
    return [
        IsoFile(path, len(data), (lambda data=data: io.BytesIO(data)))
        for path, data in files.items()
    ]


@pytest.mark.parametrize("reserved_size", [72, 71, 2048])
def test_reserved_files_give_the_image_written_with_their_bytes_known(
    tmp_path: Path, reserved_size: int
) -> None:
    payload = {"manifest.yaml": b"m: 1\n", "images/blobs/sha256/" + "a" * 64: b"x" * 5000}
    late = {"SHA256SUMS": b"s" * 300, "signatures/0123456789abcdef.sig": b"g" * 71}
    reference = tmp_path / "reference.iso"
    write_iso(reference, _plain({**payload, **late}), volume_id="T", epoch=EPOCH)
    reserved = [
        IsoFile("SHA256SUMS", 300, None),
        IsoFile("signatures/0123456789abcdef.sig", reserved_size, None),
    ]
    ours = tmp_path / "ours.iso"
    write_iso(ours, _plain(payload) + reserved, volume_id="T", epoch=EPOCH, finish=lambda: late)
    assert ours.read_bytes() == reference.read_bytes()
    with IsoReader(ours) as reader:
        assert (
            reader.read_bytes("signatures/0123456789abcdef.sig")
            == late["signatures/0123456789abcdef.sig"]
        )


def test_a_reserved_file_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="does not fit the 2048 bytes reserved"):
        write_iso(
            tmp_path / "t.iso",
            [IsoFile("SHA256SUMS", 2048, None)],
            volume_id="T",
            epoch=EPOCH,
            finish=lambda: {"SHA256SUMS": b"x" * 2049},
        )


def test_a_source_shorter_than_announced_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"ended after 3 of 10 bytes"):
        write_iso(
            tmp_path / "t.iso",
            [IsoFile("f", 10, lambda: io.BytesIO(b"abc"))],
            volume_id="T",
            epoch=EPOCH,
            on_file=lambda path, digest: None,
        )


def _rchar() -> int:
    with Path("/proc/self/io").open(encoding="ascii") as stream:
        for line in stream:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_build_reads_each_input_byte_once(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    layer = os.urandom(24 * 1024 * 1024)
    write_oci_layout(src / "images" / "base-server" / "1.0.0", [layer, b"base"], "1.0.0")
    before = _rchar()
    build(BuildOptions(src, tmp_path / "out.iso", epoch=EPOCH))
    read = _rchar() - before
    with IsoReader(tmp_path / "out.iso") as reader:
        payload = sum(info.size for info in reader.files().values())
    assert len(layer) < read < 1.3 * payload, (read, payload)


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def test_a_real_layer_shared_by_two_images_is_read_once_for_the_sboms(tmp_path: Path) -> None:
    """The SBOM pass is the one second read of the layers: a layer shared by two images is
    read once for both SBOMs, then once more by the write."""
    src = make_source(tmp_path / "src")
    status = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n"
    layer = _tar_gz({"var/lib/dpkg/status": status, "opt/data.bin": os.urandom(16 * 1024 * 1024)})
    for image in ("base-server", "example-solution-operator"):
        write_oci_layout(src / "images" / image / "1.0.0", [layer, image.encode()], "1.0.0")
    before = _rchar()
    build(BuildOptions(src, tmp_path / "out.iso", epoch=EPOCH))
    read = _rchar() - before
    with IsoReader(tmp_path / "out.iso") as reader:
        payload = sum(info.size for info in reader.files().values())
        sboms = [p for p in reader.files() if p.startswith("sboms/")]
        assert len(sboms) == 2
        for path in sboms:
            assert b'"name": "libc6"' in reader.read_bytes(path)
    assert payload + 0.9 * len(layer) < read < payload + 1.3 * len(layer), (read, payload)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_signed_build_equals_the_image_written_with_every_byte_known(
    tmp_path: Path, algorithm: Algorithm
) -> None:
    src = make_source(tmp_path / "src")
    key = tmp_path / "vendor.key"
    private, public = generate_key(algorithm)
    key.write_bytes(private)
    (tmp_path / "vendor.pub").write_bytes(public)
    iso = tmp_path / "ours.iso"
    result = build(BuildOptions(src, iso, key=key, epoch=EPOCH))
    assert result.key_id == key_id(load_private_key(key).public_key())
    with IsoReader(iso) as reader:
        files = {path: reader.read_bytes(path) for path in reader.files()}
    sums = parse_sums(files[SUMS_PATH], "ours")
    assert sums == {
        path: hashlib.sha256(data).hexdigest()
        for path, data in files.items()
        if path != SUMS_PATH and not path.startswith("signatures/")
    }
    reference = tmp_path / "reference.iso"
    volume_id = result.id.upper().replace(".", "_").replace("-", "_")
    write_iso(reference, _plain(files), volume_id=volume_id, epoch=EPOCH)
    assert iso.read_bytes() == reference.read_bytes()
    checked = validate(ValidateOptions(iso, keys=(tmp_path / "vendor.pub",)))
    assert checked.valid
    assert checked.to_dict()["signature"] == "verified"
    if XORRISO is not None:
        listing = subprocess.run(
            [XORRISO, "-indev", str(iso), "-find", "/", "-type", "f"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert f"'/signatures/{result.key_id}.sig'" in listing


def test_a_corrupt_blob_fails_the_build_and_leaves_no_file(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    blobs = src / "images" / "base-server" / "1.0.0" / "blobs" / "sha256"
    victim = blobs / hashlib.sha256(b"base").hexdigest()  # a layer of this image only
    victim.write_bytes(b"vase")
    out = tmp_path / "out.iso"
    with pytest.raises(ChecksumMismatch, match=f"blob sha256:{victim.name} .* corrupt"):
        build(BuildOptions(src, out, epoch=EPOCH))
    assert list(tmp_path.iterdir()) == [src]
