"""One cluster with real nodes per machine: a second test process waits for the first's lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metalk8s_solutions.errors import EnvironmentFailure
from metalk8s_solutions.testing import realnode

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_process_waits_for_the_lock_then_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "real-nodes.lock"
    monkeypatch.setattr(realnode, "RUN_ROOT", tmp_path)
    monkeypatch.setattr(realnode, "MACHINE_LOCK", lock)
    monkeypatch.setenv(realnode.LOCK_WAIT_ENV, "1.5")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        said: list[str] = []
        with pytest.raises(EnvironmentFailure, match="another test process") as failure:
            realnode.hold_machine(said.append)
        assert realnode.LOCK_WAIT_ENV in (failure.value.hint or "")
        assert said == ["waiting for another test process's cluster with real nodes to stop"]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    fd = realnode.hold_machine()  # the holder ended: the lock is free
    os.close(fd)
