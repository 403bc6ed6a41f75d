"""Finding and building the control-plane binaries: every failure is one clear message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metalk8s_solutions.errors import EnvironmentFailure
from metalk8s_solutions.testing import binaries


def test_cache_is_keyed_by_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(binaries.ASSETS_ENV, raising=False)
    group = binaries.GROUPS[0]
    assert binaries.group_dir(group) == (
        tmp_path
        / "metalk8s-solutions"
        / "bin"
        / f"kube-{binaries.KUBERNETES_VERSION}-{group.recipe_hash}"
    )


def test_override_folder_is_used_and_never_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(binaries.ASSETS_ENV, str(tmp_path))
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    assert binaries.ensure(["etcd"]) == {"etcd": tmp_path / "etcd"}
    with pytest.raises(EnvironmentFailure, match=r"has no 'kwok'.*unset SOLUTIONS_TEST_ASSETS"):
        binaries.ensure(["kwok"])


def test_missing_go_toolchain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(binaries.ASSETS_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EnvironmentFailure, match=r"Go toolchain \('go'\) is not on PATH"):
        binaries.ensure(["etcd"])


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")
def test_failed_module_download_names_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(binaries.ASSETS_ENV, raising=False)
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOCACHE", str(tmp_path / "gocache"))
    with pytest.raises(EnvironmentFailure) as err:
        binaries.ensure(["etcd"])
    message = str(err.value)
    assert message.startswith(f"building etcd {binaries.ETCD_VERSION} failed")
    assert "GOPROXY=off" in message
    log = (
        tmp_path
        / "cache"
        / "metalk8s-solutions"
        / "bin"
        / (f"build-etcd-{binaries.ETCD_VERSION}.log")
    )
    assert f"read {log}" in message
    assert log.is_file()
    assert not binaries.group_dir(binaries.GROUPS[1]).exists()  # nothing half-built is left


def test_cosign_is_pinned_by_its_wrapper_module_and_built_only_for_tests() -> None:
    group = next(g for g in binaries.GROUPS if g.name == "cosign")
    go_mod = (group.module_dir / "go.mod").read_text()
    assert f"github.com/sigstore/cosign/v2 {binaries.COSIGN_VERSION}" in go_mod
    assert "tool github.com/sigstore/cosign/v2/cmd/cosign" in go_mod
    assert (group.module_dir / "go.sum").is_file()
    # Not built by bootstrap (python -m metalk8s_solutions.testing.binaries), nor for clusters.
    assert "cosign" not in binaries.ALL_BINARIES
    assert "cosign" not in binaries.CONTROL_PLANE_BINARIES
