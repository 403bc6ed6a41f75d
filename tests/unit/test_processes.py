"""Process records find their own process and never signal a stranger."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metalk8s_solutions.errors import ComponentFailure, EnvironmentFailure
from metalk8s_solutions.testing.processes import (
    ProcessRecord,
    _stat_fields,
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


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    with pytest.raises(ComponentFailure, match="cannot start no-such-tool: no such executable"):
        spawn("tool", ["no-such-tool"], tmp_path / "t.log", bind_to_parent=True)


def test_a_bound_component_dies_with_its_parent(tmp_path: Path) -> None:
    """The parent spawns a sleeper and exits; the kernel kills the sleeper with it.  The
    parent has busy threads, as a test process does, when it forks."""
    pid_file = tmp_path / "pid"
    script = f"""
import threading, time
from pathlib import Path
from metalk8s_solutions.testing.processes import spawn

def busy() -> None:
    while True:
        import socket; socket.getaddrinfo("localhost", 80)

for _ in range(4):
    threading.Thread(target=busy, daemon=True).start()
log = Path({str(tmp_path / "s.log")!r})
records = [spawn("sleeper", ["sleep", "60"], log, bind_to_parent=True) for _ in range(20)]
Path({str(pid_file)!r}).write_text(" ".join(f"{{r.pid}}:{{r.start_ticks}}" for r in records))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    sleepers = [
        ProcessRecord("sleeper", int(pid), int(ticks), "")
        for pid, ticks in (item.split(":") for item in pid_file.read_text().split())
    ]
    assert len(sleepers) == 20
    deadline = time.monotonic() + 10
    while any(s.alive() for s in sleepers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(s.alive() for s in sleepers)


def test_a_process_whose_main_thread_exited_is_alive_until_its_threads_are_gone(
    tmp_path: Path,
) -> None:
    """A killed Go server's main thread turns zombie before its other threads let go of the
    listening socket: restarting on that port too early fails.  Reproduced with a main thread
    that calls pthread_exit while another thread keeps a socket listening."""
    port_file = tmp_path / "port"
    script = f"""
import ctypes, socket, threading, time
from pathlib import Path

def serve() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    written = Path({str(port_file)!r} + ".tmp")
    written.write_text(str(sock.getsockname()[1]))
    written.rename({str(port_file)!r})
    time.sleep(60)

threading.Thread(target=serve).start()
while not Path({str(port_file)!r}).exists():
    time.sleep(0.01)
ctypes.CDLL(None).pthread_exit(None)
"""
    record = spawn(
        "server", [sys.executable, "-c", script], tmp_path / "s.log", bind_to_parent=True
    )
    try:
        deadline = time.monotonic() + 10
        while (_stat_fields(record.pid) or ["gone"])[0] != "Z":
            assert time.monotonic() < deadline, "the main thread did not exit"
            time.sleep(0.01)
        assert record.alive(), "its other thread still holds the port"
        with pytest.raises(EnvironmentFailure, match="already in use"):
            check_port_free(int(port_file.read_text()))
    finally:
        record.stop(timeout=2)
    assert not record.alive()
    check_port_free(int(port_file.read_text()))
