"""The built-in registry after import: an archive file swapped while it serves is refused.

The registry (real server, real HTTP clients, skopeo) serves what was verified at import and
nothing else: a changed file is not served, is logged, and counts in
``solutions_archive_pin_mismatch_total``; a swapped file never claims another solution's
repositories.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import SolutionsCli
from metalk8s_solutions.engine.registry import RunningRegistry, ServeOptions, registry_in_thread
from security.trust_support import build_archive, keypair, write_trust_config

pytestmark = pytest.mark.timeout(180)

MANIFEST = "/v2/example-solution-1.0.0/base-server/manifests/1.0.0"


@contextlib.contextmanager
def serving(config: Path) -> Iterator[tuple[RunningRegistry, httpx.Client]]:
    options = ServeOptions(config, listen="127.0.0.1:0", interval=0.1)
    with registry_in_thread(options) as registry, httpx.Client(base_url=registry.url) as http:
        yield registry, http


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def swap(target: Path, replacement: Path) -> None:
    """Replace ``target`` by ``replacement``'s bytes, as an attacker with write access would."""
    staged = target.with_name(f".{target.name}.new")
    staged.write_bytes(replacement.read_bytes())
    staged.replace(target)


def hand_config(path: Path, archives: list[Path]) -> Path:
    doc = {
        "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
        "kind": "SolutionsConfiguration",
        "archives": [str(a) for a in archives],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def refused(http: httpx.Client, url: str) -> str:
    answer = http.get(url)
    assert answer.status_code == 404, answer.text
    error = answer.json()["errors"][0]
    assert error["code"] == "NAME_UNKNOWN"
    return str(error["message"])


@pytest.mark.cluster
def test_an_imported_archive_swapped_while_served_is_refused(
    cli: SolutionsCli, tmp_path: Path, skopeo: str
) -> None:
    vendor_key, vendor_pub = keypair(tmp_path / "keys", "vendor")
    good = build_archive(tmp_path / "good", key=vendor_key)
    original = tmp_path / "original.iso"
    original.write_bytes(good.read_bytes())
    evil = build_archive(tmp_path / "evil", key=None, layer=b"evil base layer")
    write_trust_config(cli.config, [vendor_pub], "required")
    imported = cli("import", str(good))
    assert imported.returncode == 0, imported.stderr
    with serving(cli.config) as (registry, http):
        served = http.get(
            MANIFEST, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        )
        assert served.status_code == 200, served.text
        digest = served.headers["Docker-Content-Digest"]
        swap(good, evil)
        eventually(lambda: http.get(MANIFEST).status_code == 404)
        message = refused(http, MANIFEST)
        assert str(good) in message and "changed since it was imported" in message, message
        assert "solutions_archive_pin_mismatch_total 1" in http.get("/metrics").text
        assert registry.metrics.pin_mismatches == 1
        # no client gets the new content, by tag or by the old digest
        by_digest = f"/v2/example-solution-1.0.0/base-server/manifests/{digest}"
        assert http.get(by_digest).status_code == 404
        pulled = subprocess.run(
            [skopeo, "inspect", "--tls-verify=false",
             f"docker://{registry.address}/example-solution-1.0.0/base-server:1.0.0"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert pulled.returncode != 0 and "changed since it was imported" in pulled.stderr
        # the original file put back is served again, with the same digest
        swap(good, original)
        eventually(lambda: http.get(MANIFEST).status_code == 200)
        assert http.head(MANIFEST).headers["Docker-Content-Digest"] == digest


def test_a_file_listed_without_a_pin_is_pinned_as_first_served(tmp_path: Path) -> None:
    good = build_archive(tmp_path / "good", key=None)
    original = tmp_path / "original.iso"
    original.write_bytes(good.read_bytes())
    evil = build_archive(tmp_path / "evil", key=None, layer=b"evil base layer")
    config = hand_config(tmp_path / "solutions.yaml", [good])
    with serving(config) as (registry, http):
        assert http.get(MANIFEST).status_code == 200
        swap(good, evil)
        eventually(lambda: http.get(MANIFEST).status_code == 404)
        assert "changed since it was imported" in refused(http, MANIFEST)
        assert registry.metrics.pin_mismatches == 1
        swap(good, original)
        eventually(lambda: http.get(MANIFEST).status_code == 200)


def test_a_swapped_file_never_claims_another_solutions_repositories(tmp_path: Path) -> None:
    good = build_archive(tmp_path / "good", key=None)
    other = build_archive(tmp_path / "other", key=None, version="2.0.0")
    config = hand_config(tmp_path / "solutions.yaml", [good])
    with serving(config) as (registry, http):
        assert http.get(MANIFEST).status_code == 200
        swap(good, other)  # the file of 1.0.0 now holds 2.0.0
        eventually(lambda: http.get(MANIFEST).status_code == 404)
        time.sleep(0.5)  # several more checks
        stolen = "/v2/example-solution-2.0.0/base-server/manifests/1.0.0"
        assert http.get(stolen).status_code == 404
        assert http.get("/v2/_catalog").json()["repositories"] == []
        assert "changed since it was imported" in refused(http, MANIFEST)
        assert registry.metrics.pin_mismatches == 1


def test_a_file_changed_in_place_with_the_same_sha256sums_is_refused(tmp_path: Path) -> None:
    """Not a new SHA256SUMS, a changed blob: caught because every file is checked on load."""
    good = build_archive(tmp_path / "good", key=None)
    config = hand_config(tmp_path / "solutions.yaml", [good])
    with serving(config) as (registry, http):
        assert http.get(MANIFEST).status_code == 200
        data = bytearray(good.read_bytes())
        marker = data.find(b"operator binary")
        assert marker > 0
        data[marker] ^= 0x20
        with good.open("r+b") as handle:  # same inode, same size
            handle.write(bytes(data))
        eventually(lambda: http.get(MANIFEST).status_code == 404)
        assert "does not match its SHA256SUMS line" in refused(http, MANIFEST)
        assert registry.metrics.pin_mismatches == 1
