"""Process records find their own process and never signal a stranger."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from metalk8s_solutions.errors import ComponentFailure, EnvironmentFailure
from metalk8s_solutions.testing.processes import (
    ProcessRecord,
    check_port_free,
    spawn,
    wait_until,
)


def test_spawn_stop_and_liveness(tmp_path: Path) -> None:
    record = spawn("sleeper", ["/bin/sleep", "30"], tmp_path / "s.log", bind_to_parent=True)
    assert record.alive()
    record.stop(timeout=2)
    assert not record.alive()


def test_a_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    record = spawn("sleeper", ["/bin/sleep", "30"], tmp_path / "s.log", bind_to_parent=True)
    try:
        stranger = ProcessRecord("x", record.pid, record.start_ticks - 1, "")
        assert not stranger.alive()
        stranger.stop()  # must not signal the sleeper
        assert record.alive()
    finally:
        record.stop(timeout=2)


def test_wait_until_reports_death_with_last_log_line(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    record = spawn(
        "broken",
        ["/bin/sh", "-c", "echo starting; echo 'fatal: bad flag' >&2; exit 3"],
        log,
        bind_to_parent=True,
    )
    with pytest.raises(ComponentFailure) as err:
        wait_until(record, lambda: False, timeout=10, what="get ready")
    assert (
        str(err.value) == f"broken: exited before it could get ready: fatal: bad flag; read {log}"
    )


def test_wait_until_times_out(tmp_path: Path) -> None:
    record = spawn("slow", ["/bin/sleep", "30"], tmp_path / "s.log", bind_to_parent=True)
    try:
        started = time.monotonic()
        with pytest.raises(ComponentFailure, match="did not get ready within 1s"):
            wait_until(record, lambda: False, timeout=1, what="get ready")
        assert time.monotonic() - started < 5
    finally:
        record.stop(timeout=2)


def test_busy_port_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(EnvironmentFailure, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free(port, what="the registry")
