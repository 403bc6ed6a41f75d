"""base-server, run locally from its source: every endpoint answers as documented."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from .support import EXAMPLE, background, example_build, free_port, wait_until

SOURCE = EXAMPLE / "base-server" / "base_server.py"


def test_answers_version_healthz_and_time(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, str(SOURCE), "--host=127.0.0.1", f"--port={port}"]
    with background(command, tmp_path / "server.log") as process:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, "base-server")
        assert httpx.get(f"{base}/healthz").text == "ok\n"
        version = httpx.get(f"{base}/version")
        assert version.headers["content-type"] == "application/json"
        assert version.json() == {"version": "0.0.0+dev"}  # unstamped source
        now = datetime.fromisoformat(httpx.get(f"{base}/time").json()["time"])
        assert abs((now - datetime.now(UTC)).total_seconds()) < 5
        missing = httpx.get(f"{base}/nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": "no such endpoint: /nope"}
        process.terminate()  # SIGTERM: handled, clean exit
        assert process.wait(timeout=10) == 0


def test_self_test_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(SOURCE), "--self-test"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "base-server 0.0.0+dev: self-test passed\n"


def test_the_build_stamps_the_version_once() -> None:
    build = example_build()
    source = SOURCE.read_text()
    stamped = build.stamp(source, r'^__version__ = ".*"$', '__version__ = "2.0.0"')
    assert '__version__ = "2.0.0"' in stamped
    assert '__version__ = "0.0.0+dev"' not in stamped
