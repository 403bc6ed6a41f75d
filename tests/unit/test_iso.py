"""The ISO reader and writer: extents, interoperability, reproducibility, hostile input."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_source
from metalk8s_solutions.archive.iso import EntryKind, IsoLimits, IsoReader
from metalk8s_solutions.archive.writer import IsoFile, write_iso
from metalk8s_solutions.engine.build import BuildOptions, build
from metalk8s_solutions.engine.validate import ValidateOptions, validate
from metalk8s_solutions.errors import ArchiveError, SolutionsError

XORRISO = shutil.which("xorriso")


def small_iso(path: Path, files: dict[str, bytes]) -> Path:
    entries = [
        IsoFile(name, len(data), (lambda data=data: io.BytesIO(data)))
        for name, data in files.items()
    ]
    write_iso(path, entries, volume_id="TEST", epoch=1_700_000_000)
    return path


def test_round_trip_and_extents(tmp_path: Path) -> None:
    files = {"manifest.yaml": b"a: 1\n", "images/blobs/sha256/" + "a" * 64: b"x" * 5000, "e": b""}
    iso = small_iso(tmp_path / "t.iso", files)
    raw = iso.read_bytes()
    with IsoReader(iso) as reader:
        assert reader.rock_ridge and reader.joliet
        assert set(reader.files()) == set(files)
        assert reader.entries["images/blobs"].kind is EntryKind.DIRECTORY
        for name, data in files.items():
            assert reader.read_bytes(name) == data
            offset, size = reader.extent(name)
            assert raw[offset : offset + size] == data


def test_reproducible_build(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    first, second = tmp_path / "1.iso", tmp_path / "2.iso"
    build(BuildOptions(src, first, epoch=1_600_000_000))
    (src / "manifest.yaml").touch()  # mtimes must not matter
    build(BuildOptions(src, second, epoch=1_600_000_000))
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )
    build(BuildOptions(src, second, epoch=1_600_000_001))
    assert first.read_bytes() != second.read_bytes()


@pytest.mark.skipif(XORRISO is None, reason="xorriso is not installed")
def test_reads_xorriso_images_and_flags_symlinks(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "file.txt").write_bytes(b"hello")
    (tree / "a" / "link").symlink_to("../../etc/passwd")
    iso = tmp_path / "x.iso"
    subprocess.run(
        [str(XORRISO), "-as", "mkisofs", "-R", "-J", "-o", str(iso), str(tree)],
        check=True,
        capture_output=True,
    )
    with IsoReader(iso) as reader:
        assert reader.read_bytes("a/b/file.txt") == b"hello"
        assert reader.special() == {"a/link": "symlink"}
        assert reader.entries["a/link"].target == "../../etc/passwd"


@pytest.mark.skipif(XORRISO is None, reason="xorriso is not installed")
def test_xorriso_reads_our_images(tmp_path: Path) -> None:
    iso = small_iso(tmp_path / "t.iso", {"operator/deploy/role.yaml": b"r", "manifest.yaml": b"m"})
    out = subprocess.run(
        [str(XORRISO), "-indev", str(iso), "-find", "/", "-type", "f"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "'/operator/deploy/role.yaml'" in out
    assert "'/manifest.yaml'" in out


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an ISO 9660 image"),
        (b"\0" * 100_000, "not an ISO 9660 image"),
        (b"PK\3\4" + b"x" * 50_000, "not an ISO 9660 image"),
    ],
)
def test_not_an_iso(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.iso"
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match=message):
        IsoReader(path)


def test_truncated_iso(built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    data = iso.read_bytes()
    for cut in (len(data) // 2, len(data) - 2048, 18 * 2048):
        iso.write_bytes(data[:cut])
        with pytest.raises(ArchiveError, match=r"truncated|SOL001"), IsoReader(iso) as reader:
            for name in reader.files():
                reader.read_bytes(name)


def test_directory_loop_is_detected(tmp_path: Path) -> None:
    iso = small_iso(tmp_path / "t.iso", {"a/b": b"x"})
    data = bytearray(iso.read_bytes())
    with IsoReader(iso) as reader:
        root_extent = int.from_bytes(data[16 * 2048 + 158 : 16 * 2048 + 162], "little")
        a_offset = reader.entries["a"].offset
    # Point directory "a" at the root directory's extent: a loop.
    start = root_extent * 2048
    pos = data.find((a_offset // 2048).to_bytes(4, "little"), start, start + 2048)
    assert pos > 0
    data[pos : pos + 4] = root_extent.to_bytes(4, "little")
    data[pos + 4 : pos + 8] = root_extent.to_bytes(4, "big")
    iso.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="loop"):
        IsoReader(iso)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_fuzz_flipped_bytes_in_metadata(tmp_path: Path, data: st.DataObject) -> None:
    files = {"manifest.yaml": b"a: 1\n", "dir/sub/file": b"y" * 3000}
    iso = tmp_path / "fuzz.iso"
    if not iso.exists():
        small_iso(iso, files)
    raw = bytearray(iso.read_bytes())
    # Flip bytes in the descriptors and directory area, where parsing decisions are made.
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(16 * 2048, min(len(raw), 40 * 2048) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    target = tmp_path / "flipped.iso"
    target.write_bytes(bytes(raw))
    try:
        with IsoReader(target) as reader:
            for name in reader.files():
                reader.read_bytes(name)
    except SolutionsError:
        pass


def test_deep_and_huge_trees_are_bounded(tmp_path: Path) -> None:
    deep = small_iso(tmp_path / "deep.iso", {"/".join("d" * 10) + "/f": b"x"})
    with pytest.raises(ArchiveError, match="deeper than 3 levels"):
        IsoReader(deep, IsoLimits(max_depth=3))
    wide = small_iso(tmp_path / "wide.iso", {f"f{i}": b"" for i in range(50)})
    with pytest.raises(ArchiveError, match="more than 20 entries"):
        IsoReader(wide, IsoLimits(max_entries=20))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_fuzz_one_flipped_byte_anywhere(
    built_archive: Callable[[], Path], data: st.DataObject
) -> None:
    """Any flipped byte: a clear error, or an archive whose files are all unchanged."""
    iso = FUZZ_COPY.get("iso") or FUZZ_COPY.setdefault("iso", built_archive())
    original = FUZZ_COPY.setdefault("bytes", iso.read_bytes())  # type: ignore[arg-type]
    assert isinstance(original, bytes)
    if "files" not in FUZZ_COPY:
        with IsoReader(iso) as reader:
            FUZZ_COPY["files"] = {n: reader.read_bytes(n) for n in reader.files()}  # type: ignore[assignment]
    pos = data.draw(st.integers(0, len(original) - 1))
    flipped = bytearray(original)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    iso.write_bytes(bytes(flipped))
    try:
        result = validate(ValidateOptions(iso, keys=(iso.parent / "vendor.pub",)))
    except SolutionsError:
        return
    if result.valid:
        with IsoReader(iso) as reader:
            assert {n: reader.read_bytes(n) for n in reader.files()} == FUZZ_COPY["files"]


FUZZ_COPY: dict[str, object] = {}


def _multi_extent_iso(tmp_path: Path, *, swap: bool = False, drop_last: bool = False) -> Path:
    """A small image whose ``a1`` is a multi-extent file of three extents: ``a1``, ``a2``, ``a3``.

    Our writer makes multi-extent records only for files over 4 GiB; here the records of three
    small files are rewritten into one file's extents (``a2`` and ``a3`` renamed ``a1`` in the
    primary tree, all but the last flagged multi-extent), so the reader's logic runs in a unit
    test (the 4 GiB case, against xorriso, is in tests/integration/test_large_archives.py).
    """
    files = {"a1": b"1" * 4096, "a2": b"2" * 2048, "a3": b"33", "b": b"b"}
    iso = small_iso(tmp_path / "m.iso", files)
    data = bytearray(iso.read_bytes())
    root = int.from_bytes(data[16 * 2048 + 158 : 16 * 2048 + 162], "little") * 2048
    records: dict[bytes, int] = {}
    pos = root
    while data[pos]:
        records[bytes(data[pos + 33 : pos + 33 + data[pos + 32]])] = pos
        pos += data[pos]
    first, second, last = records[b"a1"], records[b"a2"], records[b"a3"]
    data[first + 25] |= 0x80
    data[second + 25] |= 0x80
    for record, name in ((second, b"a2"), (last, b"a3")):
        end = record + data[record]
        data[record:end] = data[record:end].replace(name, b"a1")
    if drop_last:  # "b" where the last extent should be
        data[last : last + data[last]] = data[records[b"b"] : records[b"b"] + data[last]]
    if swap:  # the last two extents in the wrong order: not contiguous
        a, b = data[second + 2 : second + 10], data[last + 2 : last + 10]
        data[second + 2 : second + 10], data[last + 2 : last + 10] = b, a
    iso.write_bytes(bytes(data))
    return iso


def test_multi_extent_file_is_the_concatenation_of_its_extents(tmp_path: Path) -> None:
    iso = _multi_extent_iso(tmp_path)
    raw = iso.read_bytes()
    whole = b"1" * 4096 + b"2" * 2048 + b"33"
    with IsoReader(iso) as reader:
        assert set(reader.files()) == {"a1", "b"}
        assert reader.read_bytes("a1") == whole
        offset, size = reader.extent("a1")
        assert size == len(whole)
        assert raw[offset : offset + size] == whole
        with reader.open("a1") as stream:  # reads across the boundaries between the extents
            stream.seek(4094)
            assert stream.read(4) == b"1122"
            stream.seek(4096 + 2046)
            assert stream.read(10) == b"2233"
        assert reader.read_bytes("b") == b"b"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"swap": True}, "a1: the extents of this multi-extent file are not contiguous"),
        ({"drop_last": True}, "a1: the last extent of a multi-extent file is missing"),
    ],
)
def test_broken_multi_extent_files_are_refused(
    tmp_path: Path, options: dict[str, bool], message: str
) -> None:
    iso = _multi_extent_iso(tmp_path, **options)
    with pytest.raises(ArchiveError, match=f"SOL001 .*{message}"):
        IsoReader(iso)
