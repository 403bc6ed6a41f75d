"""The example Solution's archives: valid, signed, made of shared reproducible layers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from metalk8s_solutions.archive.iso import IsoReader

from .support import EXAMPLE, VERSIONS, example_build, image_blobs


def test_one_archive_per_version(example_archives: Any) -> None:
    assert sorted(example_archives.isos) == list(VERSIONS)
    for version, iso in example_archives.isos.items():
        assert iso.name == f"example-solution-{version}.iso"
    assert example_archives.public_key.read_text().startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("version", VERSIONS)
def test_solutions_validate_accepts_the_archive(example_archives: Any, version: str) -> None:
    iso, key = example_archives.isos[version], example_archives.public_key
    command = [sys.executable, "-m", "metalk8s_solutions.cli", "validate", str(iso)]
    result = subprocess.run(
        [*command, "--key", str(key), "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert report["signature"] == "verified"
    assert (report["errors"], report["warnings"]) == (0, 0), report["findings"]
    assert report["id"] == f"example-solution-{version}"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_archive_holds_the_version_tree(example_archives: Any, version: str) -> None:
    tree = EXAMPLE / "versions" / version
    with IsoReader(example_archives.isos[version]) as iso:
        for path in ("manifest.yaml", "operator/deploy/role.yaml"):
            assert iso.read_bytes(path) == (tree / path).read_bytes()
        crd = "operator/deploy/crds/versionservers.yaml"
        assert iso.read_bytes(crd) == (tree / crd).read_bytes()
        manifest = yaml.safe_load(iso.read_bytes("manifest.yaml"))
    assert manifest["spec"]["version"] == version
    ui = [f"example-solution-ui:{version}"] if version == "2.0.0" else []
    assert manifest["spec"]["images"] == [
        f"base-server:{version}",
        f"example-solution-operator:{version}",
        *ui,
    ]


def layers_of(example_archives: Any) -> dict[tuple[str, str], list[str]]:
    return {
        (version, image): [
            layer["digest"] for layer in image_blobs(iso, f"{image}:{version}")[0]["layers"]
        ]
        for version, iso in example_archives.isos.items()
        for image in ("base-server", "example-solution-operator")
    }


def test_base_layers_are_shared_across_images_and_versions(example_archives: Any) -> None:
    layers = layers_of(example_archives)
    bases = {digests[0] for digests in layers.values()}
    assert len(bases) == 1, "every image starts with the same Debian layer"
    deps = {digests[1] for (_, image), digests in layers.items() if image != "base-server"}
    assert len(deps) == 1, "every operator image has the same dependency layer"
    tops = [digests[-1] for digests in layers.values()]
    assert len(set(tops)) == len(tops), "each image of each version has its own code layer"
    # Stored once per archive: 2 shared blobs + 2 code layers + 2 configs + 2 manifests, and
    # each image's cosign signature image (its manifest, config and payload layer).
    with IsoReader(example_archives.isos["1.0.0"]) as iso:
        blobs = [p for p in iso.files() if p.startswith("images/blobs/")]
    assert len(blobs) == 8 + 2 * 3


def test_image_configs_follow_the_operator_contract(example_archives: Any) -> None:
    iso = example_archives.isos["2.0.0"]
    _, operator = image_blobs(iso, "example-solution-operator:2.0.0")
    assert operator["config"]["Entrypoint"] == ["example-solution-operator"]
    assert operator["config"]["Cmd"] == ["--config=/etc/config/operator.yaml"]
    assert operator["config"]["User"] == "65534:65534"
    _, server = image_blobs(iso, "base-server:2.0.0")
    assert server["config"]["Entrypoint"] == ["base-server"]
    assert server["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert operator["architecture"] == server["architecture"]
    assert len(server["rootfs"]["diff_ids"]) == 2


def test_build_info_records_the_resolved_debian_packages(example_archives: Any) -> None:
    info = example_archives.info
    packages = info["debian"]["packages"]
    assert packages["python3"].startswith("3.")
    assert "libc6" in packages
    assert "perl" not in packages, "the merged-usr hook keeps usrmerge (and Perl) out"
    assert any(line.startswith("kopf==") for line in info["operator_requirements"])
    written = json.loads((example_archives.out / "build-info.json").read_text())
    assert written["versions"].keys() == set(VERSIONS)


def test_a_rebuild_is_cached_and_byte_identical(example_archives: Any, tmp_path: Path) -> None:
    """Same inputs and key: the same ISO bytes; every layer comes from the cache."""
    out = tmp_path / "again"
    out.mkdir()
    shutil.copy(example_archives.private_key, out / "vendor.key")
    shutil.copy(example_archives.public_key, out / "vendor.pub")
    again = example_build().build(out, ("1.0.0",))
    assert again.isos["1.0.0"].read_bytes() == example_archives.isos["1.0.0"].read_bytes()
    hits = again.info["cache"]["hits"]
    assert hits["debian rootfs"] is True
    layer_hits = {k: v for k, v in hits.items() if not k.startswith(("iso", "debian rootfs"))}
    assert layer_hits and all(layer_hits.values()), hits
    assert hits["iso 1.0.0"] is False  # a new output directory: the ISO itself is rebuilt
    assert again.info["seconds"]["total"] < 60
