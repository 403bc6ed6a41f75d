"""Every image of the example's archives has an SBOM, made from its layers at build time, that
the SPDX reference library (spdx-tools) validates and that lists the image's Debian packages
(the versions mmdebstrap resolved) and, for the operator, its Python distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from conftest import metalk8s_archive
from metalk8s_solutions.archive.checksums import SUMS_PATH, parse_sums
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.engine.inspect import read_sbom
from metalk8s_solutions.engine.validate import ValidateOptions, validate

from .support import VERSIONS, unpack_image

SOLUTIONS = str(Path(sys.executable).parent / "solutions")


def _manifest_digests(iso: Path) -> dict[str, str]:
    with IsoReader(iso) as reader:
        index = json.loads(reader.read_bytes("images/index.json"))
    refs = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }
    # the images, not their cosign signature images (``<name>:sha256-<hex>.sig``)
    return {ref: digest for ref, digest in refs.items() if not ref.endswith(".sig")}


def _purls(document: dict[str, Any], kind: str) -> dict[str, str]:
    found = {}
    for package in document["packages"]:
        for ref in package.get("externalRefs", []):
            if ref["referenceLocator"].startswith(f"pkg:{kind}/"):
                found[package["name"]] = package["versionInfo"]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_image_has_a_valid_sbom_listing_its_packages(
    example_archives: Any, version: str, tmp_path: Path
) -> None:
    iso = example_archives.isos[version]
    debian = example_archives.info["debian"]["packages"]
    python = dict(r.split("==") for r in example_archives.info["operator_requirements"])
    digests = _manifest_digests(iso)
    assert digests
    with IsoReader(iso) as reader:
        sums = parse_sums(reader.read_bytes(SUMS_PATH), str(iso))
    for ref, digest in digests.items():
        document = read_sbom(iso, digest)
        assert document is not None, ref
        path = f"sboms/{digest.replace(':', '-')}.spdx.json"
        assert path in sums  # covered by SHA256SUMS, so by the archive's signature
        spdx_file = tmp_path / f"{ref.replace(':', '_')}.spdx.json"
        spdx_file.write_text(json.dumps(document))
        parsed = parse_file(str(spdx_file))
        assert validate_full_spdx_document(parsed) == [], ref
        assert document["packages"][0]["checksums"][0]["checksumValue"] == digest[7:]
        assert _purls(document, "deb") == debian, ref
        pypi = {name.lower().replace("_", "-"): v for name, v in _purls(document, "pypi").items()}
        if ref.startswith("example-solution-operator:"):
            # the pins of uv.lock (less those for other platforms, e.g. emscripten)
            pinned = {name.lower().replace("_", "-"): v for name, v in python.items()}
            assert pypi.items() <= pinned.items(), ref
            assert len(pypi) >= len(pinned) - 2, ref
        else:
            assert pypi == {}, ref


@pytest.mark.skipif(os.geteuid() != 0, reason="unpacking an image keeps owners: needs root")
def test_operator_sbom_lists_the_distributions_of_its_unpacked_filesystem(
    example_archives: Any, tmp_path: Path
) -> None:
    iso = example_archives.isos["2.0.0"]
    ref = "example-solution-operator:2.0.0"
    unpack_image(iso, ref, tmp_path / "rootfs")
    on_disk = {
        p.parent.name.rsplit("-", 1)[1]
        and p.parent.name[: -len(".dist-info")].rsplit("-", 1)[0].lower().replace("_", "-")
        for p in (tmp_path / "rootfs").glob("usr/**/*.dist-info/METADATA")
    }
    document = read_sbom(iso, _manifest_digests(iso)[ref])
    assert document is not None
    listed = {name.lower().replace("_", "-").replace(".", "-") for name in _purls(document, "pypi")}
    assert {n.replace(".", "-") for n in on_disk} == listed
    assert len(listed) > 10


def test_inspect_sbom_shows_packages_per_image(example_archives: Any) -> None:
    iso = str(example_archives.isos["2.0.0"])
    text = subprocess.run(
        [SOLUTIONS, "inspect", iso, "--sbom"], capture_output=True, text=True, check=True
    ).stdout
    assert "example-solution-operator:2.0.0 (sha256:" in text
    assert any(line.split()[:2] == ["deb", "libc6"] for line in text.splitlines())
    one = subprocess.run(
        [SOLUTIONS, "inspect", iso, "--sbom", "base-server:2.0.0", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (entry,) = json.loads(one)["images"]
    assert entry["image"] == "base-server:2.0.0"
    assert entry["spdx"]["spdxVersion"] == "SPDX-2.3"
    missing = subprocess.run(
        [SOLUTIONS, "inspect", iso, "--sbom", "nope:1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1
    assert "no image nope:1 in the archive" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_archives_without_sboms_still_validate_and_inspect(tmp_path: Path) -> None:
    archive = metalk8s_archive(tmp_path)
    assert validate(ValidateOptions(archive)).valid
    text = subprocess.run(
        [SOLUTIONS, "inspect", str(archive), "--sbom"], capture_output=True, text=True, check=True
    ).stdout
    assert "no SBOM in this archive" in text


def test_the_solutions_page_shows_package_counts_per_image(example_archives: Any) -> None:
    from metalk8s_solutions.engine.views import archive_details  # noqa: PLC0415
    from metalk8s_solutions.web.pages import templates  # noqa: PLC0415 - the web app is heavy

    iso = example_archives.isos["2.0.0"]
    details = archive_details(iso, ())
    operator = "example-solution-operator:2.0.0"
    assert operator in details["images"]
    rows = details["sboms"][operator]
    assert {r["type"] for r in rows} == {"deb", "pypi"}
    entry = {"name": "Example", "version": "2.0.0", "archive": str(iso), "details": details}
    html = templates.get_template("solutions.html").render(
        data={"config": "c", "solutions": {"example-solution": [entry]}, "policy": {}},
        can={"import": False, "activate": False},
        csrf="x",
        user="u",
        error=None,
        page="solutions",
        request=None,
    )
    assert f"<code>{operator}</code>" in html
    assert f"<summary>{len(rows)} package(s)</summary>" in html
    assert "deb <strong>libc6</strong>" in html
    assert html.count("<tr") == 2  # the versions table's head and one row: no nested table
