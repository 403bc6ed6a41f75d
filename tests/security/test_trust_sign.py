"""``solutions sign`` vouches only for an archive that passes the strictest policy: a valid
signature by a key the signer trusts (``--trusted-key``), and every checksum."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import SOLUTIONS
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.engine.sign import SignOptions, sign_archive
from metalk8s_solutions.errors import SolutionsError
from security.trust_support import build_archive, keypair


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SOLUTIONS, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    vendor_key, vendor_pub = keypair(tmp_path, "vendor")
    site_key, site_pub = keypair(tmp_path, "site")
    other_key, _ = keypair(tmp_path, "other")
    return {
        "vendor.key": vendor_key,
        "vendor.pub": vendor_pub,
        "site.key": site_key,
        "site.pub": site_pub,
        "other.key": other_key,
    }


def test_an_unsigned_archive_is_never_signed(tmp_path: Path, keys: dict[str, Path]) -> None:
    unsigned = build_archive(tmp_path, key=None)
    for extra in ((), ("--trusted-key", str(keys["vendor.pub"]))):
        done = run("sign", str(unsigned), "--key", str(keys["site.key"]), "-o", "out.iso", "-q",
                   *extra, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "will not sign" in done.stderr and "SOL080" in done.stderr, done.stderr
        assert not (tmp_path / "out.iso").exists()
    with pytest.raises(SolutionsError, match="will not sign"):
        sign_archive(
            SignOptions(unsigned, keys["site.key"], tmp_path / "x.iso", trusted=(keys["site.pub"],))
        )
    assert not (tmp_path / "x.iso").exists()


def test_an_archive_signed_by_an_untrusted_key_is_not_signed(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    foreign = build_archive(tmp_path, key=keys["other.key"])
    done = run("sign", str(foreign), "--key", str(keys["site.key"]), "-o", "out.iso", "-q",
               "--trusted-key", str(keys["vendor.pub"]), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "signed only by unknown key" in done.stderr
    assert not (tmp_path / "out.iso").exists()


def test_a_tampered_vendor_archive_is_not_signed(tmp_path: Path, keys: dict[str, Path]) -> None:
    signed = build_archive(tmp_path, key=keys["vendor.key"])
    data = bytearray(signed.read_bytes())
    with IsoReader(signed) as reader:
        offset, size = reader.extent("operator/deploy/role.yaml")
    data[offset + size - 3] ^= 1  # "update" -> "updatd": still a valid role
    tampered = tmp_path / "tampered.iso"
    tampered.write_bytes(bytes(data))
    done = run("sign", str(tampered), "--key", str(keys["site.key"]), "-o", "out.iso", "-q",
               "--trusted-key", str(keys["vendor.pub"]), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1 and "SOL071" in done.stderr, done.stderr
    assert not (tmp_path / "out.iso").exists()


def test_a_vendor_signed_archive_gets_the_site_signature(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    signed = build_archive(tmp_path, key=keys["vendor.key"])
    done = run("sign", str(signed), "--key", str(keys["site.key"]), "-o", "out.iso", "-q",
               "--trusted-key", str(keys["vendor.pub"]), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "signatures: 2" in done.stdout
    for key in ("vendor.pub", "site.pub"):
        checked = run("validate", "out.iso", "--key", str(keys[key]), "-q", "-o", "json",
                      cwd=tmp_path)  # fmt: skip
        assert checked.returncode == 0, checked.stdout
        assert json.loads(checked.stdout)["signature"] == "verified"
