"""The images of the archives run: their layers, unpacked from the ISO as a runtime would, form
root filesystems whose entry commands work in a chroot, as the image's user."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import (
    VERSIONS,
    background,
    chroot_command,
    free_port,
    operator_config,
    unpack_image,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="unpacking images and chroot need root (CI runs as root)"
)


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def operator_rootfs(
    example_archives: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    target = tmp_path_factory.mktemp("operator-image") / "rootfs"
    runtime = unpack_image(
        example_archives.isos["2.0.0"], "example-solution-operator:2.0.0", target
    )
    return target, runtime


def test_operator_image_entry_command(operator_rootfs: tuple[Path, dict[str, Any]]) -> None:
    rootfs, runtime = operator_rootfs
    help_ = run(chroot_command(rootfs, runtime, ["--help"]))
    assert help_.returncode == 0, help_.stderr
    assert "VersionServer" in help_.stdout
    version = run(chroot_command(rootfs, runtime, ["--version"]))
    assert version.stdout == "example-solution-operator 2.0.0\n"


def test_operator_image_reads_the_mounted_config(
    operator_rootfs: tuple[Path, dict[str, Any]],
) -> None:
    """The image's default command reads /etc/config/operator.yaml, as the contract mounts it."""
    rootfs, runtime = operator_rootfs
    config = rootfs / "etc" / "config" / "operator.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(operator_config({"2.0.0": ["registry:5000/example-solution-2.0.0"]}))
    config.chmod(0o644)
    check = run(chroot_command(rootfs, runtime, [*runtime["Cmd"], "--check-config"]))
    assert check.returncode == 0, check.stderr
    assert check.stdout == "2.0.0\tregistry:5000/example-solution-2.0.0\n"
    # The default command, without WATCH_NAMESPACE: the config was read, then usage error.
    default = run(chroot_command(rootfs, runtime))
    assert default.returncode == 2
    assert "set WATCH_NAMESPACE" in default.stderr
    config.write_text("apiVersion: v1\nkind: ConfigMap\n")
    invalid = run(chroot_command(rootfs, runtime))
    assert invalid.returncode == 1
    assert "apiVersion is 'v1'" in invalid.stderr


def test_operator_image_has_the_locked_dependencies(
    operator_rootfs: tuple[Path, dict[str, Any]],
) -> None:
    rootfs, runtime = operator_rootfs
    probe = "import importlib.metadata as m; print(m.version('kopf'), m.version('lightkube'))"
    result = run(chroot_command(rootfs, {**runtime, "Entrypoint": []}, ["python3", "-c", probe]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [metadata.version("kopf"), metadata.version("lightkube")]


@pytest.mark.parametrize("version", VERSIONS)
def test_base_server_image_serves_its_version(
    example_archives: Any, tmp_path: Path, version: str
) -> None:
    rootfs = tmp_path / "rootfs"
    runtime = unpack_image(example_archives.isos[version], f"base-server:{version}", rootfs)
    self_test = run(chroot_command(rootfs, runtime, ["--self-test"]))
    assert self_test.returncode == 0, self_test.stderr
    assert self_test.stdout == f"base-server {version}: self-test passed\n"
    port = free_port()
    command = chroot_command(rootfs, runtime, ["--host=127.0.0.1", f"--port={port}"])
    with background(command, tmp_path / "server.log") as server:
        url = f"http://127.0.0.1:{port}/version"
        answer = wait_until(lambda: httpx.get(url), f"base-server {version} in a chroot")
        assert answer.json() == {"version": version}
        assert answer.headers["server"].startswith(f"base-server/{version} ")
        assert server.poll() is None
