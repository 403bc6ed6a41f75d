"""The SBOM generator against real bytes: tar layers made here, real package databases, a real
Go executable (the harness's podtool, compared with ``go version -m``)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from metalk8s_solutions.images import sbom
from metalk8s_solutions.images.sources import Blob, ImageSource
from metalk8s_solutions.testing import binaries
from metalk8s_solutions.testing.podtool import ensure_podtool

DPKG_STATUS = b"""\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12985
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: python3.11-minimal
Status: install ok installed
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Version: 3.11.2-6+deb12u1
Description: Minimal subset of the Python language (version 3.11)

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
"""

DISTROLESS = b"""\
Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
"""

APK_DB = b"""\
C:Q1rrh0iNFNPwCyIsP2GeohgpqKJgo=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:667648
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teras <timo.teras@iki.fi>
F:lib

C:Q1abcdefghij
P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
m:S\xc3\xb6ren Tempel <soeren+alpine@soeren-tempel.net>
"""

METADATA = b"""\
Metadata-Version: 2.1
Name: PyYAML
Version: 6.0.1
Summary: YAML parser and emitter for Python
Author: Kirill Simonov
Author-email: xi@resolvent.net
License: MIT
Classifier: License :: OSI Approved :: MIT License

YAML is a data serialization format designed for human readability.
License: not a header
"""

PKG_INFO = b"""\
Metadata-Version: 1.2
Name: old_style.pkg
Version: 0.9
License: Some custom licence text
"""

PACKAGE_JSON = b"""{
  "name": "@babel/core",
  "version": "7.24.0",
  "license": "MIT",
  "author": {"name": "The Babel Team", "email": "team@babeljs.io"}
}"""


def _layer(files: dict[str, bytes | None], *, compress: str = "gzip", mode: int = 0o644) -> bytes:
    """A tar layer; a ``None`` value is a directory."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            info.size = len(data)
            info.mode = mode if not name.endswith((".bin", "/bin/app")) else 0o755
            tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if compress == "gzip":
        return gzip.compress(data, mtime=0)
    if compress == "zstd":
        zstd = shutil.which("zstd")
        if zstd is None:
            pytest.skip("zstd is not installed")
        return subprocess.run(
            [zstd, "-q", "-c"], input=data, capture_output=True, check=True
        ).stdout
    return data


def _openers(*layers: bytes) -> list[tuple[str, Callable[[], BinaryIO]]]:
    return [(f"layer{i}", lambda data=data: io.BytesIO(data)) for i, data in enumerate(layers)]


def test_dpkg_status_lists_installed_packages_only() -> None:
    packages = sbom.parse_dpkg_status(DPKG_STATUS, "var/lib/dpkg/status")
    assert [(p.name, p.version) for p in packages] == [
        ("libc6", "2.36-9+deb12u4"),
        ("python3.11-minimal", "3.11.2-6+deb12u1"),
    ]
    assert packages[0].purl == "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64"
    assert packages[0].supplier == "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)"


def test_apk_database() -> None:
    packages = sbom.parse_apk_installed(APK_DB, "lib/apk/db/installed")
    assert [(p.name, p.version, p.license) for p in packages] == [
        ("musl", "1.2.4_git20230717-r4", "MIT"),
        ("busybox", "1.36.1-r15", "GPL-2.0-only"),
    ]
    assert packages[0].purl == "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64"


def test_python_metadata_reads_headers_only() -> None:
    (package,) = sbom.parse_python_metadata(METADATA, "x/PyYAML-6.0.1.dist-info/METADATA")
    assert (package.name, package.version, package.license) == ("PyYAML", "6.0.1", "MIT")
    assert package.purl == "pkg:pypi/pyyaml@6.0.1"
    assert package.supplier == "Person: xi@resolvent.net" or package.supplier.startswith("Person:")


def test_npm_package_json_with_scope() -> None:
    (package,) = sbom.parse_package_json(PACKAGE_JSON, "app/node_modules/@babel/core/package.json")
    assert package.purl == "pkg:npm/%40babel/core@7.24.0"
    assert package.supplier == "Person: The Babel Team (team@babeljs.io)"


def test_layers_merge_with_whiteouts_and_find_every_kind() -> None:
    site = "usr/lib/python3/dist-packages"
    base = _layer(
        {
            "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
            "var/lib/dpkg/status": DPKG_STATUS,
            "var/lib/dpkg/status.d/tzdata": DISTROLESS,
            "var/lib/dpkg/status.d/tzdata.md5sums": b"0123  usr/share/zoneinfo/UTC\n",
            f"{site}/PyYAML-6.0.1.dist-info/METADATA": METADATA,
            f"{site}/old.egg-info/PKG-INFO": PKG_INFO,
            "srv/app/node_modules/@babel/core/package.json": PACKAGE_JSON,
            "srv/app/node_modules/@babel/core/lib/package.json": b'{"name":"x","version":"1"}',
            "opt/gone/node_modules/left-pad/package.json": b'{"name":"left-pad","version":"1.3.0"}',
        }
    )
    upper = _layer(
        {
            f"{site}/.wh.PyYAML-6.0.1.dist-info": b"",  # pip uninstall in a later layer
            "opt/gone/.wh..wh..opq": b"",
            "lib/apk/db/installed": APK_DB,
        },
        compress="none",
    )
    packages = sbom.scan_layers(_openers(base, upper)).packages
    names = {(p.type, p.name) for p in packages}
    assert ("pypi", "PyYAML") not in names  # deleted by the whiteout
    assert ("npm", "left-pad") not in names  # deleted by the opaque whiteout
    assert ("npm", "x") not in names  # a package.json inside a package, not a package
    assert names == {
        ("deb", "libc6"),
        ("deb", "python3.11-minimal"),
        ("deb", "tzdata"),
        ("pypi", "old_style.pkg"),
        ("npm", "@babel/core"),
        ("apk", "musl"),
        ("apk", "busybox"),
    }
    libc = next(p for p in packages if p.name == "libc6")
    assert libc.purl == "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12"
    musl = next(p for p in packages if p.name == "musl")  # apk's purl names the image's distro
    assert musl.purl.startswith("pkg:apk/debian/musl@")
    old = next(p for p in packages if p.name == "old_style.pkg")
    assert old.purl == "pkg:pypi/old-style-pkg@0.9"


def test_upper_layer_file_replaces_lower_database() -> None:
    base = _layer({"var/lib/dpkg/status": DPKG_STATUS})
    upper = _layer({"var/lib/dpkg/status": DISTROLESS}, compress="zstd")
    packages = sbom.scan_layers(_openers(base, upper)).packages
    assert [p.name for p in packages] == ["tzdata"]


def _podtool() -> Path:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    return ensure_podtool()


def _go_version_m(binary: Path) -> tuple[str, tuple[str, str], list[tuple[str, str]]]:
    """Go version, main module and dependencies (replacements applied) by ``go version -m``."""
    listed = subprocess.run(
        ["go", "version", "-m", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    go_version = listed.split(":", 1)[1].split()[0]
    main: tuple[str, str] = ("", "")
    deps: list[tuple[str, str]] = []
    for line in listed.splitlines():
        parts = line.split("\t")
        if parts[1:2] == ["mod"]:
            main = (parts[2], parts[3])
        elif parts[1:2] == ["dep"]:
            deps.append((parts[2], parts[3]))
        elif parts[1:2] == ["=>"]:
            deps[-1] = (parts[2], parts[3])
    return go_version, main, deps


def _check_against_go(binary: Path) -> None:
    go_version, main, deps = _go_version_m(binary)
    with binary.open("rb") as stream:
        info = sbom.go_buildinfo(stream, binary.stat().st_size)
    assert info is not None
    assert info.go_version == go_version
    assert info.main == main
    assert list(info.deps) == deps


def test_go_buildinfo_matches_go_version_m() -> None:
    _check_against_go(_podtool())


def test_go_buildinfo_of_a_program_with_dependencies() -> None:
    """etcd (built by the test harness, with dozens of modules), when it is cached here."""
    etcd = binaries.find("etcd")
    if etcd is None or shutil.which("go") is None:
        pytest.skip("etcd is not built yet (the control-plane fixtures build it)")
    _check_against_go(etcd)
    assert len(_go_version_m(etcd)[2]) > 20


def test_go_binary_in_a_layer_and_not_a_go_binary() -> None:
    binary = _podtool().read_bytes()
    layer = _layer({"usr/bin/app": binary, "usr/bin/script.bin": b"#!/bin/sh\n" + b"x" * 4096})
    packages = sbom.scan_layers(_openers(layer)).packages
    stdlib = next(p for p in packages if p.name == "stdlib")
    assert stdlib.type == "golang" and stdlib.version.startswith("go1.")
    assert stdlib.purl == f"pkg:golang/stdlib@{stdlib.version}"
    assert any(p.name == "metalk8s-solutions.local/podtool" for p in packages)
    assert all(p.source == "usr/bin/app" for p in packages)


def test_buildinfo_blob_inline_format() -> None:
    modinfo = (
        "path\texample.com/cmd\nmod\texample.com\tv1.2.3\th1:x\n"
        "dep\tgolang.org/x/sys\tv0.1.0\th1:y\n=>\t./sys\t(devel)\t\n"
    )
    framed = b"0" * 16 + modinfo.encode() + b"1" * 16
    assert framed[-17] == ord("\n")
    blob = sbom.GO_MAGIC + bytes([8, 2]) + bytes(16)
    blob += bytes([len(b"go1.22.1")]) + b"go1.22.1"
    blob += bytes([len(framed) & 0x7F | 0x80, len(framed) >> 7]) + framed
    parsed = sbom.parse_buildinfo_blob(blob)
    assert parsed is not None
    info = sbom.parse_modinfo(*parsed)
    assert info.go_version == "go1.22.1"
    assert info.main == ("example.com", "v1.2.3")
    assert info.deps == (("./sys", "(devel)"),)
    assert sbom.parse_buildinfo_blob(blob[:40]) is None  # truncated
    assert sbom.parse_buildinfo_blob(sbom.GO_MAGIC + bytes([8, 0]) + bytes(16)) is None  # < 1.18


def test_spdx_document_is_deterministic_and_sorted() -> None:
    packages = sbom.parse_dpkg_status(DPKG_STATUS, "var/lib/dpkg/status")
    packages += sbom.parse_python_metadata(PKG_INFO, "a.egg-info/PKG-INFO")
    digest = "sha256:" + "ab" * 32
    one = sbom.spdx_document("repo/app:1.0", digest, packages, created=0, tool="t-1")
    two = sbom.spdx_document("repo/app:1.0", digest, reversed(packages), created=0, tool="t-1")
    assert sbom.encode(one) == sbom.encode(two)
    assert one["documentNamespace"].endswith("sha256-" + "ab" * 32)
    assert one["creationInfo"]["created"] == "1970-01-01T00:00:00Z"
    image = one["packages"][0]
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    purl = image["externalRefs"][0]["referenceLocator"]
    assert purl == f"pkg:oci/app@sha256%3A{'ab' * 32}?repository_url=repo/app&tag=1.0"
    kinds = [r["relationshipType"] for r in one["relationships"]]
    assert kinds == ["DESCRIBES"] + ["CONTAINS"] * len(packages)
    # a license text that is no SPDX expression is kept as an extracted license
    custom = next(p for p in one["packages"] if p["name"] == "old_style.pkg")
    assert custom["licenseDeclared"].startswith("LicenseRef-")
    assert one["hasExtractedLicensingInfos"][0]["extractedText"] == "Some custom licence text"
    assert sbom.sbom_path(digest) == f"sboms/sha256-{'ab' * 32}.spdx.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MIT", "MIT"),
        ("MIT or Apache-2.0", "MIT OR Apache-2.0"),
        (
            "(MIT AND BSD-3-Clause) OR GPL-2.0-or-later",
            "( MIT AND BSD-3-Clause ) OR GPL-2.0-or-later",
        ),
        ("BSD", None),
        ("MIT AND", None),
        ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
    ],
)
def test_license_expressions(text: str, expected: str | None) -> None:
    assert sbom._license_expression(text) == expected


def test_cosign_manifests_are_not_images() -> None:
    signature = {
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json"}],
    }
    assert sbom.is_cosign(signature)
    assert sbom.is_cosign({"layers": []}, "app:sha256-" + "ab" * 32 + ".sig")
    assert not sbom.is_cosign({"layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar"}]})


def test_a_layer_that_is_no_tar_adds_nothing_and_is_named() -> None:
    good = _layer({"var/lib/dpkg/status": DISTROLESS})
    scan = sbom.scan_layers(_openers(good, gzip.compress(b"not a tar" * 100)[:50], b"x" * 600))
    assert [p.name for p in scan.packages] == ["tzdata"]
    assert scan.unreadable == ["layer1", "layer2"]
    document = sbom.spdx_document(
        "a:1", "sha256:" + "0" * 64, scan.packages, created=0, tool="t", unreadable=["layer1"]
    )
    assert document["packages"][0]["comment"] == "layer1 is no tar archive: no package read from it"


def test_an_index_gets_one_sbom_per_platform_and_no_sbom_for_a_signature() -> None:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def manifest(
        layer: bytes, layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip"
    ) -> bytes:
        return json.dumps(
            {
                "schemaVersion": 2,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(b"{}")},
                "layers": [{"mediaType": layer_type, **put(layer)}],
            }
        ).encode()

    amd64 = put(manifest(_layer({"var/lib/dpkg/status": DPKG_STATUS})))
    arm64 = put(manifest(_layer({"lib/apk/db/installed": APK_DB})))
    signature = put(manifest(b"{}", "application/vnd.dev.cosign.simplesigning.v1+json"))
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {**amd64, "platform": {"os": "linux", "architecture": "amd64"}},
                {**arm64, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                signature,
            ],
        }
    ).encode()
    top = put(index)
    image = ImageSource(
        "app:1.0",
        {"mediaType": "application/vnd.oci.image.index.v1+json", **top},
        [Blob(h, len(d), lambda d=d: io.BytesIO(d)) for h, d in blobs.items()],
    )
    files = sbom.image_sboms([image], created=0, tool="t")
    assert sorted(files) == sorted(sbom.sbom_path(str(m["digest"])) for m in (amd64, arm64))
    by_platform = {
        json.loads(data)["packages"][0]["comment"]: json.loads(data) for data in files.values()
    }
    assert set(by_platform) == {"platform linux/amd64", "platform linux/arm64/v8"}
    names = {p["name"] for p in by_platform["platform linux/arm64/v8"]["packages"]}
    assert names == {"app", "musl", "busybox"}
