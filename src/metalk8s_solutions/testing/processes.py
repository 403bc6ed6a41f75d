"""Start, watch and stop the long-running local components (etcd, API server, registry...).

Each component runs in its own session (process group) with its output in a log file, so that it
survives the command that started it (``solutions dev cluster up``) or, in tests, dies with the
test process (``bind_to_parent``: the kernel sends SIGKILL when the parent goes, so an interrupted
run leaves no orphan).  Stopping checks the process is still the one we started before signalling.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metalk8s_solutions.errors import ComponentFailure, EnvironmentFailure


def _bound_to_parent(argv: list[str]) -> list[str]:
    """``argv`` run through ``setpriv --pdeathsig KILL``: the kernel kills it when we go.

    Not a ``preexec_fn``: Python code between fork and exec can deadlock when other threads hold
    a lock at fork time (the loader's, in a ``getaddrinfo`` or import), and the child then hangs
    forever before it even becomes the component.  ``setpriv`` (util-linux) sets the signal and
    execs, so the component keeps the pid we record.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise EnvironmentFailure(
            "setpriv is missing: install util-linux (it binds test components to their parent)"
        )
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now on ``host``, outside the kernel's ephemeral range.

    A component binds the port a moment later; a port from the ephemeral range (what binding
    port 0 gives) may meanwhile become the local end of any outgoing connection on the machine,
    and the component then fails with "address already in use".
    """
    low, high = _ephemeral_range()
    choices = [p for p in range(10_000, 65_536) if not low <= p <= high]
    for port in random.sample(choices, min(200, len(choices))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: let it choose
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def check_port_free(port: int, host: str = "127.0.0.1", *, what: str = "the service") -> None:
    """Fail with a clear message when ``host:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise EnvironmentFailure(
                    f"port {port} on {host} is already in use, so {what} cannot listen there",
                    hint="stop what uses it (see 'ss -ltnp') or choose another port",
                ) from err
            raise EnvironmentFailure(f"cannot bind {host}:{port} for {what}: {err}") from err


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def _start_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else -1  # field 22 of stat: start time in clock ticks


@dataclass(frozen=True)
class ProcessRecord:
    """What we need to find and stop a component later, from any shell.

    A process is identified by its pid *and* its start time, so a recycled pid is never taken
    for ours (and never signalled).
    """

    name: str
    pid: int
    start_ticks: int
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=str(data["log"]),
        )

    def alive(self) -> bool:
        """True while the process we started runs (not exited, not a recycled pid)."""
        fields = _stat_fields(self.pid)
        if fields is None or int(fields[19]) != self.start_ticks:
            return False
        if fields[0] == "Z":
            # The main thread has exited (and is not yet reaped).  The others may still be
            # tearing down, holding the process's files and listening sockets: a component
            # restarted now on the same port would fail with "address already in use".
            return _threads_left(self.pid)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what remains after ``timeout``."""
        if not self.alive():
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap(self.pid)
                if not self.alive():
                    return
                time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    name: str,
    argv: list[str],
    log: Path,
    *,
    bind_to_parent: bool,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    # Checked here: behind setpriv, a missing program would only be an exit code.
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=path)
    where = Path(cwd or Path.cwd()) / (program or argv[0])
    if program is None or where.is_dir() or not os.access(where, os.X_OK):
        raise ComponentFailure(name, f"cannot start {argv[0]}: no such executable file")
    command = [program, *argv[1:]]
    with log.open("ab") as out:
        try:
            proc = subprocess.Popen(
                _bound_to_parent(command) if bind_to_parent else command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
        except OSError as err:
            raise ComponentFailure(name, f"cannot start {argv[0]}: {err.strerror}") from err
    # The Popen object is dropped on purpose: the component outlives it.  Mark it reaped so
    # Python does not warn; the record's pid is what we track from now on.
    proc.returncode = 0
    return ProcessRecord(name=name, pid=proc.pid, start_ticks=_start_ticks(proc.pid), log=str(log))


def wait_until(
    record: ProcessRecord,
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str = "become ready",
) -> None:
    """Poll ``ready`` until true; fail clearly if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if not record.alive():
            raise ComponentFailure(
                record.name,
                f"exited before it could {what}: {_last_line(record.log)}",
                log=record.log,
            )
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() > deadline:
            raise ComponentFailure(
                record.name, f"did not {what} within {timeout:.0f}s", log=record.log
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _threads_left(pid: int) -> bool:
    """True while threads other than the (exited) main one remain in process ``pid``."""
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir())) > 1
    except OSError:
        return False


def _last_line(log: str) -> str:
    try:
        lines = [ln for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"
