"""The installed ``solutions`` command, as a developer runs it, and openssl interoperability."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from metalk8s_solutions.archive.iso import IsoReader

SOLUTIONS = str(Path(sys.executable).parent / "solutions")
OPENSSL = shutil.which("openssl")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SOLUTIONS, *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_developer_journey(source_tree: Path, algorithm: str) -> None:
    work = source_tree.parent
    keygen = run("keygen", "vendor", "--algorithm", algorithm, "-o", "json", cwd=work)
    assert keygen.returncode == 0, keygen.stderr
    key_id = json.loads(keygen.stdout)["keyId"]
    assert (work / "vendor.key").stat().st_mode & 0o777 == 0o600

    built = run("build", "src", "-o", "out.iso", "--key", "vendor.key", cwd=work)
    assert built.returncode == 0, built.stderr
    assert f"signed by {key_id}" in built.stdout
    assert "write:" in built.stderr  # progress goes to stderr

    shown = run("inspect", "out.iso", "--key", "vendor.pub", "-o", "json", cwd=work)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["id"] == "example-solution-1.0.0"
    assert data["integrity"]["signature"] == "verified"
    assert {i["image"] for i in data["images"]} == {
        "base-server:1.0.0",
        "example-solution-operator:1.0.0",
    }
    assert data["crds"][0]["storageVersion"] == "v1alpha1"

    ok = run("validate", "out.iso", "--key", "vendor.pub", "-o", "json", cwd=work)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["signature"] == "verified"
    unsigned_ok = run("validate", "out.iso", cwd=work)
    assert unsigned_ok.returncode == 0
    assert "SOL082" in unsigned_ok.stdout

    if OPENSSL is not None:
        with IsoReader(work / "out.iso") as reader:
            (work / "SHA256SUMS").write_bytes(reader.read_bytes("SHA256SUMS"))
            (work / "sig").write_bytes(reader.read_bytes(f"signatures/{key_id}.sig"))
        if algorithm == "ecdsa-p256":
            command = ["dgst", "-sha256", "-verify", "vendor.pub", "-signature", "sig"]
        else:
            command = ["pkeyutl", "-verify", "-pubin", "-inkey", "vendor.pub", "-rawin"]
            command += ["-in", "SHA256SUMS", "-sigfile", "sig"]
        verified = subprocess.run(
            [OPENSSL, *command, *(["SHA256SUMS"] if algorithm == "ecdsa-p256" else [])],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "Verified" in verified.stdout or "Signature Verified" in verified.stdout


def test_exit_codes(source_tree: Path) -> None:
    work = source_tree.parent
    assert run("build", "src", "-o", "out.iso", "-q", cwd=work).returncode == 0
    # 1: invalid (a flipped byte), with the file named and no traceback.
    data = bytearray((work / "out.iso").read_bytes())
    with IsoReader(work / "out.iso") as reader:
        offset, _ = reader.extent("operator/deploy/role.yaml")
    data[offset] ^= 0xFF
    (work / "bad.iso").write_bytes(bytes(data))
    bad = run("validate", "bad.iso", "-q", cwd=work)
    assert bad.returncode == 1
    assert "SOL071" in bad.stdout and "operator/deploy/role.yaml" in bad.stdout
    # Each finding is printed once: no error line repeats the first one.
    assert bad.stdout.count("SOL071") == 1 and bad.stderr == ""
    assert "INVALID (2 errors, 2 warnings;" in bad.stdout
    # 1: not an ISO at all.
    (work / "junk.iso").write_bytes(b"junk" * 10_000)
    junk = run("validate", "junk.iso", cwd=work)
    assert junk.returncode == 1 and "not an ISO 9660 image" in junk.stdout
    assert "INVALID (1 error, 0 warnings;" in junk.stdout
    inspected = run("inspect", "junk.iso", cwd=work)
    assert inspected.returncode == 1 and inspected.stderr.startswith("error: SOL001")
    # 2: could not run (a key that is not a key, a missing path).
    (work / "notakey.pub").write_text("hello")
    assert run("validate", "out.iso", "--key", "notakey.pub", cwd=work).returncode == 2
    assert run("validate", "missing.iso", cwd=work).returncode == 2


def test_build_refuses_an_invalid_source(source_tree: Path) -> None:
    role = source_tree / "operator" / "deploy" / "role.yaml"
    role.write_text(role.read_text().replace("kind: Role", "kind: Secret"))
    result = run("build", "src", "-o", "out.iso", cwd=source_tree.parent)
    assert result.returncode == 1
    assert "SOL051" in result.stderr and "Traceback" not in result.stderr
    assert not (source_tree.parent / "out.iso").exists()


def test_build_from_tarballs_with_skopeo(tmp_path: Path, source_tree: Path) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed")
    for name, transport in (
        ("base-server", "docker-archive"),
        ("example-solution-operator", "oci-archive"),
    ):
        layout = source_tree / "images" / name / "1.0.0"
        tarball = layout.parent / "1.0.0.tar"
        subprocess.run(
            [skopeo, "copy", "-q", f"oci:{layout}:1.0.0", f"{transport}:{tarball}:{name}:1.0.0"],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(layout)
    result = run("build", "src", "-o", "out.iso", cwd=source_tree.parent)
    assert result.returncode == 0, result.stderr
    checked = run("validate", "out.iso", "-o", "json", cwd=source_tree.parent)
    assert checked.returncode == 0, checked.stdout
    extracted = tmp_path / "x"
    with IsoReader(source_tree.parent / "out.iso") as reader:
        for name in reader.files():
            (extracted / name).parent.mkdir(parents=True, exist_ok=True)
            (extracted / name).write_bytes(reader.read_bytes(name))
    for ref in ("base-server:1.0.0", "example-solution-operator:1.0.0"):
        shown = subprocess.run(
            [skopeo, "inspect", f"oci:{extracted / 'images'}:{ref}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr


def test_site_signature_is_added_and_both_verify(source_tree: Path) -> None:
    work = source_tree.parent
    for who in ("vendor", "site"):
        assert run("keygen", who, cwd=work).returncode == 0
    assert run("build", "src", "-o", "v.iso", "--key", "vendor.key", "-q", cwd=work).returncode == 0
    signed = run(
        "sign", "v.iso", "--key", "site.key", "--trusted-key", "vendor.pub", "-o", "s.iso", "-q",
        cwd=work,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert "signatures: 2" in signed.stdout
    for key in ("vendor.pub", "site.pub"):
        checked = run("validate", "s.iso", "--key", key, "-q", "-o", "json", cwd=work)
        assert checked.returncode == 0, checked.stdout
        assert json.loads(checked.stdout)["signature"] == "verified"
    # Tampered archives are not signed.
    data = bytearray((work / "v.iso").read_bytes())
    with IsoReader(work / "v.iso") as reader:
        offset, _ = reader.extent("manifest.yaml")
    data[offset + 3] ^= 1
    (work / "t.iso").write_bytes(bytes(data))
    refused = run(
        "sign", "t.iso", "--key", "site.key", "--trusted-key", "vendor.pub", "-o", "t2.iso", "-q",
        cwd=work,
    )  # fmt: skip
    assert refused.returncode == 1 and "will not sign" in refused.stderr


def test_validate_a_source_tree_lists_every_manifest_problem(source_tree: Path) -> None:
    manifest = source_tree / "manifest.yaml"
    text = manifest.read_text().replace("version: 1.0.0", "version: One")
    manifest.write_text(text + "  ui: {port: 0}\n")
    done = run("validate", "src", cwd=source_tree.parent)
    assert done.returncode == 1, done.stderr
    assert "SOL013" in done.stdout and "SOL019" in done.stdout, done.stdout
    assert "INVALID (2 errors" in done.stdout and done.stderr == ""


def test_activate_takes_one_version_positional_or_as_an_option(tmp_path: Path) -> None:
    """One convention with add-solution and upgrade (the version positional); ``--version``
    stays for MetalK8s's solutions.sh; two different versions are a usage error (exit 2),
    refused before anything is read or changed."""
    config = tmp_path / "solutions.yaml"
    both = run("--config", config, "activate", "sol", "1.0.0", "--version", "2.0.0", cwd=tmp_path)
    assert both.returncode == 2
    assert "two versions given (1.0.0 and --version 2.0.0); give one" in both.stderr
    assert "Traceback" not in both.stderr and not config.exists()
    shown = run("activate", "--help", cwd=tmp_path)
    assert "Usage: solutions activate [OPTIONS] NAME [VERSION]" in shown.stdout
