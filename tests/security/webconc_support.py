"""Helpers of the web concurrency and request-body tests (imported as ``security.webconc_support``).

The UI runs as a real ``solutions ui`` process, so that its memory can be measured on its own
(``/proc/PID/status``) and a second process (the CLI) can hold the configuration lock.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from env_support import SOLUTIONS

URL_LINE = re.compile(r"Solutions UI on (http://\S+)")


@dataclass(frozen=True)
class UiProcess:
    url: str
    process: subprocess.Popen[bytes]
    config: Path
    uploads: Path
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname and parts.port
        return parts.hostname, parts.port

    def _status(self, field: str) -> int:
        """A ``/proc/PID/status`` field in bytes (VmRSS, VmHWM)."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)
        assert found, text
        return int(found.group(1)) * 1024

    def reset_peak(self) -> None:
        """Reset the peak resident size (VmHWM) to the current one."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def peak_growth(self, baseline: int) -> int:
        return self._status("VmHWM") - baseline

    def rss(self) -> int:
        return self._status("VmRSS")


@contextmanager
def ui_process(config: Path, kubeconfig: Path, uploads: Path, *extra: str) -> Iterator[UiProcess]:
    """``solutions ui`` on a free loopback port, stopped at the end."""
    log = config.parent / "ui.log"
    config.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                SOLUTIONS,
                "--config",
                str(config),
                "--kubeconfig",
                str(kubeconfig),
                "ui",
                "--listen",
                "127.0.0.1:0",
                "--solution-ui-listen",
                "127.0.0.1:0",
                "--upload-dir",
                str(uploads),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            found = URL_LINE.search(log.read_text())
            if found:
                url = found.group(1)
            elif process.poll() is not None:
                raise AssertionError(f"solutions ui exited: {log.read_text()}")
            else:
                time.sleep(0.05)
        assert url, f"solutions ui did not start: {log.read_text()}"
        _wait_listening(url)
        yield UiProcess(url, process, config, uploads, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_listening(url: str) -> None:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {url}")


@dataclass(frozen=True)
class RawAnswer:
    status: int | None  # None: no answer within the timeout
    head: bytes
    seconds: float


def send_headers_only(
    address: tuple[str, int],
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    body_prefix: bytes = b"",
    timeout: float = 3.0,
) -> RawAnswer:
    """Send a request's head (and at most ``body_prefix`` of its body), then wait for an answer.

    A server that authenticates and checks sizes before reading the body answers at once; one
    that reads the body first waits for bytes that never come, and ``status`` is None.
    """
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address[0]}:{address[1]}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(head + body_prefix)
        received = b""
        try:
            while chunk := sock.recv(65536):  # the answer, up to the server closing
                received += chunk
        except TimeoutError:
            if b"\r\n\r\n" not in received:
                return RawAnswer(None, received, time.monotonic() - started)
        except ConnectionResetError:
            pass
    status_line = received.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 else None
    return RawAnswer(status, received, time.monotonic() - started)


def multipart_head(boundary: str, name: str, filename: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def multipart_field(boundary: str, name: str, value: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def multipart_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()
