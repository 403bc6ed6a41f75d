"""The configuration lock never blocks the web server's event loop (issue #16, finding 3).

A CLI command holds the SolutionsConfiguration lock while it works (hashing a large archive for
minutes); web requests that need the lock wait for it without stopping every other request, and
concurrent web operations queue for it instead of deadlocking the server.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalk8s_solutions.api.config import SolutionsConfiguration
from metalk8s_solutions.engine.config_store import ConfigStore
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from security.webconc_support import ui_process
from web.conftest import admin_token  # noqa: F401 - a fixture

HOLD = """
import sys, time
from pathlib import Path
from metalk8s_solutions.engine.config_store import ConfigStore
with ConfigStore(Path(sys.argv[1])).locked():
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@contextmanager
def held_by_another_process(config: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """The configuration lock held the CLI's way (a blocking flock) by another process."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(config), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.wait(timeout=seconds + 30)


# -- the store itself (no cluster) ------------------------------------------------------------


async def test_waiting_for_the_lock_leaves_the_event_loop_running(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "solutions.yaml")
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.05)

    async def add(path: str) -> None:
        async with store.edit_async() as edit:
            await asyncio.sleep(0.1)  # holds the lock across awaits, as the engine does
            edit.config = edit.config.with_archive(path)

    with held_by_another_process(store.path, 1.5):
        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.gather(*(add(f"/srv/a{i}.iso") for i in range(8)))
        waited = time.monotonic() - started
        stop.set()
        await tick_task
    assert waited >= 1.0, "the edits did not wait for the other process's lock"
    assert ticks >= 15, f"the event loop stalled while waiting for the lock ({ticks} ticks)"
    assert sorted(store.read().archives) == sorted(f"/srv/a{i}.iso" for i in range(8))


async def test_a_cancelled_waiter_does_not_keep_the_lock(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "solutions.yaml")
    with held_by_another_process(store.path, 1.0):

        async def wait_forever() -> None:
            async with store.edit_async():
                await asyncio.sleep(3600)

        waiter = asyncio.create_task(wait_forever())
        await asyncio.sleep(0.3)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    async with asyncio.timeout(5):
        async with store.edit_async() as edit:
            edit.config = SolutionsConfiguration().with_archive("/srv/b.iso")
    assert store.read().archives == ("/srv/b.iso",)
    # The blocking (CLI) path gets the lock too: nothing was left holding it.
    with store.locked():
        pass


# -- the web server, against the real control plane ------------------------------------------


def _probe(url: str, token: str, until: float, slow: list[str]) -> None:
    """GET the login page and the session API until ``until``; note any answer over 1 s."""
    with httpx.Client(base_url=url, timeout=1.0) as http:
        while time.monotonic() < until:
            for path, headers in (
                ("/login", {}),
                ("/api/session", {"Authorization": f"Bearer {token}"}),
            ):
                started = time.monotonic()
                try:
                    status = http.get(path, headers=headers).status_code
                except httpx.TimeoutException:
                    slow.append(f"{path}: no answer within 1 s")
                    return
                took = time.monotonic() - started
                if status != 200 or took > 1.0:
                    slow.append(f"{path}: {status} after {took:.2f} s")
            time.sleep(0.2)


def _in_threads(*calls: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            results[i] = call()
        except Exception as err:  # reported by the assertions below
            results[i] = err

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    return results


@pytest.mark.cluster
def test_pages_answer_during_concurrent_imports_and_a_cli_holding_the_lock(
    local_cluster: LocalCluster,
    admin_token: str,  # noqa: F811 - the fixture
    built_archive: Callable[[], Path],
    tmp_path: Path,
) -> None:
    archive = built_archive()
    config = tmp_path / "etc" / "solutions.yaml"
    with ui_process(config, local_cluster.kubeconfig, tmp_path / "uploads") as ui:

        def dry_run_import() -> httpx.Response:
            with httpx.Client(base_url=ui.url, timeout=120) as http:
                return http.post(
                    "/api/solutions/import",
                    json={"archives": [str(archive)], "dryRun": True},
                    headers={"Authorization": f"Bearer {admin_token}"},
                )

        # Warm up (first imports, templates, TLS contexts): the test is about waiting, not that.
        assert dry_run_import().status_code == 200
        _probe(ui.url, admin_token, time.monotonic() + 0.5, [])

        slow: list[str] = []
        with held_by_another_process(config, 3.0):
            results = _in_threads(
                dry_run_import,
                dry_run_import,
                dry_run_import,
                lambda: _probe(ui.url, admin_token, time.monotonic() + 6.0, slow),
            )
        assert slow == [], f"pages stopped answering: {slow}"
        for answer in results[:3]:
            assert isinstance(answer, httpx.Response), answer
            assert answer.status_code == 200, answer.text
            assert answer.json()["dryRun"] is True
        assert not config.exists(), "a dry run wrote the configuration"

        # The three again, with nobody else holding the lock: they queue, and pages answer.
        slow = []
        results = _in_threads(
            dry_run_import,
            dry_run_import,
            dry_run_import,
            lambda: _probe(ui.url, admin_token, time.monotonic() + 3.0, slow),
        )
        assert slow == [], f"pages stopped answering: {slow}"
        assert [getattr(r, "status_code", r) for r in results[:3]] == [200, 200, 200]
