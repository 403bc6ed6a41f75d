"""``solutions dev cluster`` and ``solutions dev registry`` as a user runs them, from a shell."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from metalk8s_solutions.testing import binaries

SOLUTIONS = str(Path(sys.executable).parent / "solutions")


def solutions(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SOLUTIONS, *args], capture_output=True, text=True, check=False, timeout=300, env=env
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As a server binds: connections of the stopped one in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_cluster_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    kubeconfig = tmp_path / "out" / "kubeconfig"
    up = solutions(
        "dev",
        "cluster",
        "up",
        "--nodes",
        "1",
        "--state-dir",
        str(state),
        "--kubeconfig",
        str(kubeconfig),
        "-o",
        "json",
    )
    try:
        assert up.returncode == 0, up.stderr
        status_up = json.loads(up.stdout)
        assert status_up["state"] == "running"
        assert status_up["nodesReady"] == 1
        assert kubeconfig.read_text().count("client-certificate-data") == 1
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        # progress went to stderr, one line per step
        assert "kube-apiserver" in up.stderr

        # 'up' again is a no-op on a running cluster
        again = solutions("dev", "cluster", "up", "--state-dir", str(state), "-o", "json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["server"] == status_up["server"]
        # its hints are commands that work as printed: they name the state directory
        human = solutions("dev", "cluster", "up", "--state-dir", str(state))
        hints = [line.split("#")[0].strip() for line in human.stdout.splitlines()[1:]]
        assert f"solutions dev cluster down --state-dir {state}" in hints, human.stdout
        status_hint = next(h for h in hints if h.startswith("solutions dev cluster status"))
        pasted = solutions(*status_hint.split()[1:])
        assert pasted.returncode == 0 and pasted.stdout.startswith("running:"), pasted.stdout

        status = solutions("dev", "cluster", "status", "--state-dir", str(state))
        assert status.returncode == 0
        assert status.stdout.startswith("running: https://127.0.0.1:")
        assert "1/1 node(s) Ready" in status.stdout
        pids = [c["pid"] for c in status_up["components"].values()]
        api_port = int(status_up["server"].rsplit(":", 1)[1])
    finally:
        down = solutions("dev", "cluster", "down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not state.exists()
    for pid in pids:  # no orphan: every component is gone (or a zombie awaiting its reaper)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        assert stat.rsplit(")", 1)[1].split()[0] == "Z", f"pid {pid} still runs"
    assert port_is_free(api_port)

    absent = solutions("dev", "cluster", "status", "--state-dir", str(state))
    assert absent.returncode == 0
    assert "No local control plane" in absent.stdout


def test_cluster_up_on_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = solutions(
            "dev", "cluster", "up", "--port", str(port), "--state-dir", str(tmp_path / "c")
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: port {port} on 127.0.0.1 is already in use, so kube-apiserver cannot listen "
        "there; stop what uses it (see 'ss -ltnp') or choose another port"
    ]


def test_a_component_that_dies_at_start_names_its_log(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name, path in binaries.ensure().items():
        (assets / name).symlink_to(path)
    (assets / "etcd").unlink()
    (assets / "etcd").write_text(
        "#!/bin/sh\necho 'etcdmain: flag provided but not defined' >&2\nexit 1\n"
    )
    (assets / "etcd").chmod(0o755)
    state = tmp_path / "c"
    env = dict(os.environ, SOLUTIONS_TEST_ASSETS=str(assets))
    result = solutions("dev", "cluster", "up", "--state-dir", str(state), env=env)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "error: etcd: exited before it could answer /health: etcdmain: flag provided but not "
        f"defined; read {state}/logs/etcd.log"
    )
    solutions("dev", "cluster", "down", "--state-dir", str(state))


@pytest.mark.registry
def test_registry_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "registry"
    up = solutions("dev", "registry", "up", "--state-dir", str(state), "-o", "json")
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        assert info["state"] == "running"
        status = solutions("dev", "registry", "status", "--state-dir", str(state), "-o", "json")
        assert json.loads(status.stdout)["url"] == info["url"]
    finally:
        down = solutions("dev", "registry", "down", "--state-dir", str(state))
    assert down.returncode == 0
    assert port_is_free(int(info["address"].rsplit(":", 1)[1]))
