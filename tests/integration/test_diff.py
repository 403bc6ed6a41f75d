"""Issue 22 item 3: what going from the example Solution's 1.0.0 to its 2.0.0 changes, as
``solutions diff`` says it and as the dry run of ``env upgrade`` says it on a real cluster.

What really differs between ``examples/example-solution/versions/1.0.0`` and ``2.0.0``: every
image has a new tag (and digest) and 2.0.0 adds the UI image; the VersionServer CRD gains
``v1beta1`` (the new storage version), ``v1alpha1`` is deprecated, no longer the storage version,
and gains ``spec.logLevel``; the manifest adds operator metrics (http) and the UI; ``role.yaml``
is the same (and http metrics derive no right), so RBAC does not change.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from env_support import cli, write_config
from metalk8s_solutions.engine.diff import NO_SBOM
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

SOL = "example-solution"
CRD = "versionservers.example-solution.metalk8s.scality.com"
SOLUTIONS = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "solutions")


def solutions(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SOLUTIONS, *args], capture_output=True, text=True, check=False, timeout=120
    )


def check_example_diff(data: dict[str, Any]) -> None:
    """The facts of 1.0.0 -> 2.0.0 (module docstring), in the -o json schema."""
    assert (data["from"]["version"], data["to"]["version"]) == ("1.0.0", "2.0.0")
    assert {"field": "version", "from": "1.0.0", "to": "2.0.0"} in data["manifest"]
    assert {
        "field": "operatorImage",
        "from": f"{SOL}-operator:1.0.0",
        "to": f"{SOL}-operator:2.0.0",
    } in data["manifest"]
    assert {"field": "ui", "from": None, "to": f"{SOL}-ui:2.0.0 port 8080"} in data["manifest"]
    images = data["images"]
    assert [(c["name"], c["from"]["image"], c["to"]["image"]) for c in images["changed"]] == [
        ("base-server", "base-server:1.0.0", "base-server:2.0.0"),
        (f"{SOL}-operator", f"{SOL}-operator:1.0.0", f"{SOL}-operator:2.0.0"),
    ]
    assert [i["image"] for i in images["added"]] == [f"{SOL}-ui:2.0.0"]
    assert images["removed"] == [] and images["unchanged"] == []
    for change in images["changed"]:
        assert change["from"]["digest"] != change["to"]["digest"]
        # the Debian and dependency layers are shared: only the small code layers are new
        assert 0 < change["to"]["newBytes"] < change["to"]["size"] / 10
    blobs = data["blobs"]
    assert blobs["shared"] >= 2
    assert blobs["bytesToPull"] == sum(b["size"] for b in blobs["added"]) > 0
    (crd,) = data["crds"]
    assert (crd["crd"], crd["kind"], crd["change"]) == (CRD, "VersionServer", "changed")
    changes = crd["changes"]
    assert {
        "change": "version-added",
        "version": "v1beta1",
        "to": "served, storage",
        "against": "v1alpha1",  # 1.0.0's storage version, which had no logLevel
        "fields": [{"change": "field-added", "path": "spec.logLevel", "to": "string"}],
    } in changes
    assert {"change": "storage", "version": "v1alpha1", "from": True, "to": False} in changes
    assert {"change": "deprecated", "version": "v1alpha1", "from": False, "to": True} in changes
    assert {
        "change": "field-added",
        "path": "spec.logLevel",
        "to": "string",
        "version": "v1alpha1",
    } in changes
    assert data["rbac"] == {
        "granted": [],
        "dropped": [],
        "derived": {"granted": [], "dropped": []},
    }
    if data["from"]["sboms"] == 0:  # the example's archives before SBOMs (issue 22 item 2)
        assert data["packages"] == {"known": False, "note": NO_SBOM, "images": []}
    else:  # every image has its SBOM: each changed or added image's packages are known
        by_image = {p["image"]: p for p in data["packages"]["images"]}
        assert set(by_image) == {"base-server", f"{SOL}-operator", f"{SOL}-ui"}
        assert all(p["known"] for p in by_image.values()), by_image
        added = by_image[f"{SOL}-ui"]["added"]  # a new image: all its packages are new
        assert "deb" in {p["type"] for p in added}, added  # its Debian base


def test_solutions_diff_of_the_example_1_0_0_and_2_0_0(example_archives: Any) -> None:
    one, two = example_archives.isos["1.0.0"], example_archives.isos["2.0.0"]
    key = example_archives.public_key
    ran = solutions("diff", str(one), str(two), "--key", str(key), "-o", "json")
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    check_example_diff(data)
    assert data["from"]["signature"] == data["to"]["signature"] == "verified"

    text = solutions("diff", str(one), str(two)).stdout
    for line in (
        f"From: {SOL}-1.0.0 ({one}, signature: ",
        "  ~ version: 1.0.0 -> 2.0.0",
        f"  ~ operatorImage: {SOL}-operator:1.0.0 -> {SOL}-operator:2.0.0",
        "  ~ base-server 1.0.0 -> 2.0.0: sha256:",
        f"  + {SOL}-ui:2.0.0: sha256:",
        f"  ~ {CRD} (VersionServer)",
        "      + version v1beta1 (served, storage); fields against v1alpha1: 1 change(s)\n"
        "          + v1beta1 spec.logLevel (string)",
        "      ~ v1alpha1: storage true -> false",
        "      ~ v1alpha1: deprecated false -> true",
        "      + v1alpha1 spec.logLevel (string)",
        "RBAC (the operator's rights):\n  no change",
    ):
        assert line in text, text
    assert " to pull in " in text.split("Images: ", 1)[1].splitlines()[0]

    yaml_out = solutions("diff", str(one), str(two), "-o", "yaml")
    assert yaml_out.returncode == 0 and "bytesToPull:" in yaml_out.stdout


def test_diff_of_a_file_that_is_not_an_archive_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"not an ISO" * 100)
    ran = solutions("diff", str(junk), str(junk))
    assert ran.returncode in (1, 2), ran
    assert ran.stderr.startswith("error: ") and len(ran.stderr.strip().splitlines()) == 1
    assert "Traceback" not in ran.stderr


@pytest.fixture
def config(example_archives: Any, tmp_path: Path, local_cluster: LocalCluster) -> Iterator[Path]:
    isos = [example_archives.isos[v] for v in ("1.0.0", "2.0.0")]
    path = write_config(tmp_path / "solutions.yaml", isos)
    yield path
    cli(path, local_cluster.kubeconfig, "deactivate", SOL, "--force")
    for version in ("1.0.0", "2.0.0"):
        cli(path, local_cluster.kubeconfig, "unimport", f"{SOL}-{version}")


@pytest.mark.cluster
def test_env_upgrade_dry_run_shows_what_the_new_archive_changes(
    config: Path, local_cluster: LocalCluster
) -> None:
    def ok(*args: str) -> str:
        ran = cli(config, local_cluster.kubeconfig, *args)
        assert ran.returncode == 0, (args, ran.stdout, ran.stderr)
        return ran.stdout

    env = "diffenv"
    ok("activate", SOL, "--version", "2.0.0")
    ok("env", "create", env)
    try:
        ok("env", "add-solution", env, SOL, "1.0.0", "--no-wait")
        upgrade = ("env", "upgrade", env, SOL, "2.0.0", "--no-wait", "--dry-run")
        data = json.loads(ok(*upgrade, "-o", "json"))
        (diff,) = data["archiveDiffs"]
        check_example_diff(diff)
        assert diff["from"]["signature"] is None  # imported: verified at import, not again
        text = ok(*upgrade)
        plan, _, changes = text.partition("\nWhat changes from 1.0.0 to 2.0.0 (solutions diff ")
        assert f"would upgrade {SOL} in {env}/{env}: 1.0.0 -> 2.0.0" in plan, text
        assert "dry run: nothing was changed" in plan
        assert "      + version v1beta1 (served, storage); fields against v1alpha1" in changes, text
        assert f"  + {SOL}-ui:2.0.0: sha256:" in changes
        # not on a real upgrade, nor on the plan of anything else
        assert "What changes" not in ok("env", "add-solution", env, SOL, "1.0.0", "--dry-run")
    finally:
        cli(config, local_cluster.kubeconfig, "env", "delete", env, "--timeout", "120")
