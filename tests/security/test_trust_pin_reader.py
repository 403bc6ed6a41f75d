"""Pins (pure logic): their format in the configuration, and reading an archive against one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from conftest import metalk8s_archive
from metalk8s_solutions.api.config import parse_config
from metalk8s_solutions.api.pin import Pin
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.archive.pinning import PinnedIso, file_digest, first_seen_pin
from metalk8s_solutions.engine.state import read_archive_manifest
from metalk8s_solutions.errors import ArchiveChanged, InvalidInput
from security.trust_support import build_archive

DIGEST = "sha256:" + "a" * 64


def pin_of(iso: Path) -> Pin:
    with IsoReader(iso) as reader:
        sums = reader.read_bytes("SHA256SUMS")
    return Pin("example-solution-1.0.0", "sha256:" + hashlib.sha256(sums).hexdigest())


def flip(iso: Path, needle: bytes) -> None:
    """Change one byte of ``needle`` inside the ISO, in place (same inode, same size)."""
    data = bytearray(iso.read_bytes())
    at = data.find(needle)
    assert at >= 0
    data[at] ^= 0x20
    with iso.open("r+b") as handle:
        handle.write(bytes(data))


def test_pin_format_round_trips_and_rejects_malformed_entries() -> None:
    pin = Pin("s-1.0.0", DIGEST, "0123456789abcdef")
    assert pin.to_json() == {"id": "s-1.0.0", "sha256sums": DIGEST, "signer": "0123456789abcdef"}
    assert Pin.from_json(pin.to_json()) == pin
    whole = Pin("s-1.0.0", DIGEST, whole_file=True)
    assert whole.to_json() == {"id": "s-1.0.0", "file": DIGEST, "signer": "unsigned"}
    assert Pin.from_json(whole.to_json()) == whole
    for bad in (None, "x", {"id": "s", "sha256sums": "md5:1"}, {"sha256sums": DIGEST}, {}):
        assert Pin.from_json(bad) is None


def test_pins_in_the_configuration_follow_the_archives() -> None:
    text = yaml.safe_dump(
        {
            "archives": ["/a.iso", "/b.iso"],
            "custom": {"kept": True},
            "pins": {"/a.iso": {"id": "a-1.0.0", "sha256sums": DIGEST, "signer": "unsigned"}},
        }
    ).encode()
    config = parse_config(text, "c.yaml")
    assert config.pins == {"/a.iso": Pin("a-1.0.0", DIGEST)}
    other = Pin("b-1.0.0", "sha256:" + "b" * 64)
    added = config.with_pins({"/a.iso": other, "/b.iso": other, "/c.iso": other})
    assert added.pins == {"/a.iso": Pin("a-1.0.0", DIGEST), "/b.iso": other}  # never replaced
    reread = parse_config(added.to_yaml().encode(), "c.yaml")
    assert reread.pins == added.pins and reread.document["custom"] == {"kept": True}
    removed = parse_config(added.without_archive("/a.iso").to_yaml().encode(), "c.yaml")
    assert removed.pins == {"/b.iso": other}
    none_left = removed.without_archive("/b.iso")
    assert "pins" not in yaml.safe_load(none_left.to_yaml())
    with pytest.raises(InvalidInput, match=r"'pins' entry '/a\.iso' is not a pin"):
        parse_config(b"archives: [/a.iso]\npins: {/a.iso: {id: a, sha256sums: nope}}\n", "c")


def test_reading_against_the_pin(tmp_path: Path) -> None:
    iso = build_archive(tmp_path, key=None)
    pin = pin_of(iso)
    with PinnedIso(iso, pin) as reader:
        reader.verify_all()
        assert b"examples.example.com" in reader.read_bytes("operator/deploy/crds/example.yaml")
        assert hashlib.sha256(reader.read_bytes("SHA256SUMS")).hexdigest() in pin.digest
    assert read_archive_manifest(iso, pin).id == "example-solution-1.0.0"
    assert first_seen_pin(iso) == pin
    with pytest.raises(ArchiveChanged, match=r"now holds example-solution-1\.0\.0"):
        read_archive_manifest(iso, Pin("other-1.0.0", pin.digest))
    with pytest.raises(ArchiveChanged, match="its SHA256SUMS is now"):
        PinnedIso(iso, Pin(pin.id, DIGEST))


def test_a_file_changed_in_place_is_refused_when_read(tmp_path: Path) -> None:
    iso = build_archive(tmp_path, key=None)
    pin = pin_of(iso)
    flip(iso, b"replicas: {type: integer}")
    with PinnedIso(iso, pin) as reader:  # SHA256SUMS itself is intact
        assert reader.read_bytes("manifest.yaml")
        with pytest.raises(ArchiveChanged, match=r"crds/example\.yaml does not match"):
            reader.read_bytes("operator/deploy/crds/example.yaml")
        with pytest.raises(ArchiveChanged, match="does not match its SHA256SUMS line"):
            reader.verify_all()


def test_a_changed_blob_is_found_by_verify_all(tmp_path: Path) -> None:
    iso = build_archive(tmp_path, key=None)
    pin = pin_of(iso)
    flip(iso, b"operator binary")
    with PinnedIso(iso, pin) as reader, pytest.raises(ArchiveChanged, match="images/blobs"):
        reader.verify_all()


def test_an_archive_without_sha256sums_is_pinned_by_its_whole_file(tmp_path: Path) -> None:
    iso = metalk8s_archive(tmp_path)
    pin = first_seen_pin(iso)
    assert pin.whole_file and pin.digest == file_digest(iso)
    assert pin.digest == "sha256:" + hashlib.sha256(iso.read_bytes()).hexdigest()
    with PinnedIso(iso, pin) as reader:
        assert reader.read_bytes("operator/deploy/role.yaml")
    flip(iso, b"layer of base-server")
    with pytest.raises(ArchiveChanged, match="the file's SHA-256 is now"):
        PinnedIso(iso, pin)
