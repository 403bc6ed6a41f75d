"""A layer over 4 GiB: an ISO 9660 multi-extent file, through build, validate, import, serve, push.

The layer is a sparse file (holes, with pseudo-random marks at its start, end and around the
4 GiB - 2 KiB boundary between its two extents), so it costs little disk and no memory; the
archive built from it is a real 4 GiB file. Its records are compared with those xorriso writes
for the same file, our reader reads xorriso's image and xorriso extracts the layer from ours.
The module takes about two minutes on 2 cores (most of it hashing and writing 4 GiB a few times).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import SolutionsCli, make_source
from metalk8s_solutions.archive.iso import SECTOR, IsoReader
from metalk8s_solutions.archive.signing import generate_key
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.registry import RunningRegistry, ServeOptions, registry_in_thread
from metalk8s_solutions.engine.validate import ValidateOptions, validate
from metalk8s_solutions.images.catalog import load_catalog
from metalk8s_solutions.images.client import RegistryTarget
from metalk8s_solutions.images.push import push_images
from metalk8s_solutions.testing.registry import LocalRegistry

pytestmark = [pytest.mark.timeout(900), pytest.mark.registry]

XORRISO = shutil.which("xorriso")
EXTENT = 0xFFFFF800  # the largest extent xorriso (and pycdlib) records: 4 GiB - 2 KiB
SIZE = 2**32 + 3 * 2**20 + 5  # over 4 GiB, not a whole number of sectors
MARK = 64 * 1024
MARKS = (0, EXTENT - MARK // 2, SIZE - MARK)  # the start, across the boundary, the end


@dataclass(frozen=True)
class Large:
    root: Path
    blob: Path  # the sparse layer, named by its digest
    digest: str
    iso: Path
    public_key: Path


def _sparse_layer(directory: Path) -> tuple[Path, str]:
    """A sparse file of SIZE bytes with pseudo-random marks; returns it and its sha256 digest."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "layer"
    with path.open("wb") as out:
        out.truncate(SIZE)
        for index, offset in enumerate(MARKS):
            out.seek(offset)
            out.write(hashlib.shake_256(str(index).encode()).digest(MARK))
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * 2**20):
            digest.update(chunk)
    named = directory / digest.hexdigest()
    path.rename(named)
    return named, f"sha256:{digest.hexdigest()}"


def _add_layer(image: Path, blob: Path, digest: str) -> None:
    """Append the layer ``blob`` to the image of the OCI layout ``image`` (new manifest)."""
    blobs = image / "blobs" / "sha256"
    os.link(blob, blobs / blob.name)
    index = json.loads((image / "index.json").read_text())
    old = index["manifests"][0]
    manifest = json.loads((blobs / old["digest"].split(":")[1]).read_bytes())
    manifest["layers"].append(
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": SIZE}
    )
    data = json.dumps(manifest).encode()
    (blobs / old["digest"].split(":")[1]).unlink()
    (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    old.update(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data))
    (image / "index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Large]:
    root = tmp_path_factory.mktemp("large")
    if shutil.disk_usage(root).free < 3 * SIZE:
        pytest.fail(f"{root}: needs {3 * SIZE // 2**30} GiB free for a 4 GiB archive")
    blob, digest = _sparse_layer(root / "layer")
    src = make_source(root / "src")
    _add_layer(src / "images" / "base-server" / "1.0.0", blob, digest)
    private, public = generate_key()
    (root / "vendor.key").write_bytes(private)
    (root / "vendor.pub").write_bytes(public)
    iso = root / "example-solution-1.0.0.iso"
    build(BuildOptions(src, iso, key=root / "vendor.key", epoch=1_700_000_000))
    try:
        yield Large(root, blob, digest, iso, root / "vendor.pub")
    finally:
        shutil.rmtree(root, ignore_errors=True)  # 4 GiB: not left for pytest's retention


def _marks() -> list[bytes]:
    """The expected bytes of each mark."""
    return [hashlib.shake_256(str(i).encode()).digest(MARK) for i in range(len(MARKS))]


# -- the records, against xorriso ------------------------------------------------------------


def _records(iso: Path, path: str, *, joliet: bool) -> list[tuple[int, int, int, set[bytes]]]:
    """``(extent, size, flags, SUSP signatures)`` of every directory record of ``path``."""
    with iso.open("rb") as f:

        def read(offset: int, size: int) -> bytes:
            f.seek(offset)
            return f.read(size)

        descriptor = 16
        while True:
            vd = read(descriptor * SECTOR, SECTOR)
            assert vd[0] != 255, f"{iso}: no {'Joliet' if joliet else 'primary'} descriptor"
            if (vd[0] == 2 and vd[88:91] == b"%/E") if joliet else vd[0] == 1:
                break
            descriptor += 1
        extent, size = struct.unpack_from("<I", vd, 158)[0], struct.unpack_from("<I", vd, 166)[0]
        parts = path.split("/")
        for depth, part in enumerate(parts):
            data, pos, found = read(extent * SECTOR, size), 0, []
            while pos < len(data):
                length = data[pos]
                if length == 0:
                    pos = (pos // SECTOR + 1) * SECTOR
                    continue
                record = data[pos : pos + length]
                pos += length
                name_len = record[32]
                raw = record[33 : 33 + name_len]
                if raw in (b"\0", b"\1"):  # . and ..
                    continue
                susp = record[33 + name_len + (1 - name_len % 2) :]
                sigs, nm, at = set(), b"", 0
                while at + 4 <= len(susp) and susp[at + 2] >= 4:
                    sigs.add(susp[at : at + 2])
                    if susp[at : at + 2] == b"NM":
                        nm = susp[at + 5 : at + susp[at + 2]]
                    at += susp[at + 2]
                name = raw.decode("utf-16-be") if joliet else nm.decode()
                if name == part:
                    found.append(
                        (
                            struct.unpack_from("<I", record, 2)[0],
                            struct.unpack_from("<I", record, 10)[0],
                            record[25],
                            sigs,
                        )
                    )
            assert found, f"{iso}: no {part} in {'/'.join(parts[:depth]) or '/'}"
            if depth == len(parts) - 1:
                return found
            extent, size = found[0][0], found[0][1]
    raise AssertionError("unreachable")


def _xorriso_image(large: Large) -> Path:
    """xorriso's image of the layer alone (``-iso-level 3``), written sparse."""
    tree = large.root / "xorriso-tree"
    tree.mkdir(exist_ok=True)
    if not (tree / "layer").exists():
        os.link(large.blob, tree / "layer")
    output = large.root / "xorriso.iso"
    assert XORRISO is not None
    with subprocess.Popen(
        [XORRISO, "-as", "mkisofs", "-iso-level", "3", "-R", "-J", "-o", "-", str(tree)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            block, zero, position = bytearray(2**20), bytes(2**20), 0
            while got := proc.stdout.readinto(block):
                if block[:got] != zero[:got]:
                    os.pwrite(fd, memoryview(block)[:got], position)
                position += got
            os.ftruncate(fd, position)
        finally:
            os.close(fd)
    assert proc.returncode == 0
    return output


@pytest.mark.skipif(XORRISO is None, reason="xorriso is not installed")
def test_multi_extent_records_as_xorriso_writes_them_and_read_both_ways(large: Large) -> None:
    blob_path = f"images/blobs/sha256/{large.digest.split(':')[1]}"
    theirs = _xorriso_image(large)
    for joliet in (False, True):
        ours = _records(large.iso, blob_path, joliet=joliet)
        reference = _records(theirs, "layer", joliet=joliet)
        # Same split: a first extent of 4 GiB - 2 KiB flagged multi-extent, then the rest.
        assert [(size, flags & 0x80) for _, size, flags, _ in ours] == [
            (EXTENT, 0x80),
            (SIZE - EXTENT, 0),
        ]
        assert [(size, flags) for _, size, flags, _ in ours] == [
            (size, flags) for _, size, flags, _ in reference
        ]
        for records in (ours, reference):  # contiguous extents
            assert records[1][0] == records[0][0] + EXTENT // SECTOR
        if not joliet:  # Rock Ridge entries on each record, as xorriso puts them
            for (*_, sigs), (*_, ref_sigs) in zip(ours, reference, strict=True):
                assert ref_sigs >= {b"PX", b"TF", b"NM"}
                assert ref_sigs <= sigs | {b"CE"}

    # Our reader on xorriso's image: one file, its bytes across the boundary.
    with IsoReader(theirs) as reader:
        assert reader.files()["layer"].size == SIZE
        with reader.open("layer") as stream:
            for offset, mark in zip(MARKS, _marks(), strict=True):
                stream.seek(offset)
                assert stream.read(MARK) == mark

    # xorriso on our image: it extracts the layer whole (sparse), with the same digest.
    out = large.root / "extracted"
    argv = [XORRISO or "xorriso", "-indev", str(large.iso), "-osirrox", "on:sparse=1m"]
    subprocess.run(
        [*argv, "-extract", "/" + blob_path, str(out)],
        check=True,
        capture_output=True,
    )
    digest = hashlib.sha256()
    with out.open("rb") as stream:
        while chunk := stream.read(8 * 2**20):
            digest.update(chunk)
    out.unlink()
    assert f"sha256:{digest.hexdigest()}" == large.digest


# -- validate, import, serve, push ----------------------------------------------------------


@contextlib.contextmanager
def _serving(config: Path) -> Iterator[RunningRegistry]:
    opts = ServeOptions(config, listen="127.0.0.1:0", interval=0.1)
    with registry_in_thread(opts) as registry:
        yield registry


@pytest.mark.cluster
def test_large_layer_validates_imports_is_served_with_ranges_and_pushed(
    large: Large, cli: SolutionsCli, local_registry: LocalRegistry
) -> None:
    result = validate(ValidateOptions(large.iso, keys=(large.public_key,)))
    assert result.valid, [f.message for f in result.findings]

    done = cli("import", str(large.iso), "--key", str(large.public_key))
    assert done.returncode == 0, done.stderr

    catalog = load_catalog(large.iso)
    repo = f"{catalog.solution_id}/base-server"
    url = f"/v2/{repo}/blobs/{large.digest}"
    with _serving(cli.config) as registry, httpx.Client(base_url=registry.url) as http:
        head = http.head(url)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(SIZE)
        marks = _marks()
        for offset, mark in zip(MARKS, marks, strict=True):  # across the extent boundary too
            end = offset + MARK - 1
            part = http.get(url, headers={"Range": f"bytes={offset}-{end}"})
            assert part.status_code == 206
            assert part.headers["Content-Range"] == f"bytes {offset}-{end}/{SIZE}"
            assert part.content == mark
        digest, length = hashlib.sha256(), 0
        with http.stream("GET", url, timeout=300) as whole:
            assert whole.status_code == 200
            for chunk in whole.iter_bytes(8 * 2**20):
                digest.update(chunk)
                length += len(chunk)
        assert (length, f"sha256:{digest.hexdigest()}") == (SIZE, large.digest)

    # Pushed: docker-registry checks each blob's digest as its upload completes.
    hexdigest = large.digest.split(":")[1]
    stored = local_registry.root / "data/docker/registry/v2/blobs/sha256" / hexdigest[:2]
    try:
        pushed = asyncio.run(
            push_images(catalog, RegistryTarget(local_registry.url, prefix="large"))
        )
        _check_pushed(pushed.uploaded_bytes, local_registry, repo, large.digest)
    finally:  # 4 GiB: not left in the session registry's storage
        shutil.rmtree(stored / hexdigest, ignore_errors=True)


def _check_pushed(uploaded: int, local_registry: LocalRegistry, repo: str, digest: str) -> None:
    """The large layer is in docker-registry, whole, with its digest."""
    assert uploaded > SIZE
    target = f"{local_registry.url}/v2/large/{repo}/blobs/{digest}"
    head = httpx.head(target, follow_redirects=True)
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Content-Length"] == str(SIZE)
    offset = EXTENT - MARK // 2
    part = httpx.get(
        target, headers={"Range": f"bytes={offset}-{offset + MARK - 1}"}, follow_redirects=True
    )
    assert part.content == _marks()[1]
