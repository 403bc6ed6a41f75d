"""The example Solution's UI server, run locally from its source, and its page in a browser: the
contract the product relies on (full paths under the base path, config.json, /healthz, a
Kubernetes API forwarder that only reads the configured paths with the caller's credentials)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from .support import EXAMPLE, GROUP, background, free_port, wait_until

SOURCE = EXAMPLE / "ui" / "ui_server.py"
BASE = "/env/prod/prod/example-solution/"
PATHS = [
    f"/apis/{GROUP}/v1alpha1/namespaces/prod/versionservers",
    f"/apis/{GROUP}/v1beta1/namespaces/prod/versionservers",
]
CHROMIUM = Path("/usr/bin/chromium")


def ui_config(namespace: str = "prod", base: str = BASE) -> dict[str, Any]:
    """A configuration as the product mounts it."""
    return {
        "solution": "example-solution",
        "version": "2.0.0",
        "displayName": "Example Solution",
        "environment": "prod",
        "namespace": namespace,
        "basePath": base,
        "api": {"kubernetes": f"{base}api/kubernetes", "paths": PATHS},
    }


def ui_module() -> ModuleType:
    """``examples/example-solution/ui/ui_server.py``, imported once (for its pure functions)."""
    name = "example_solution_ui_server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SOURCE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass(frozen=True)
class RunningUi:
    url: str  # http://127.0.0.1:<port>
    config: Path
    process: subprocess.Popen[bytes]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUi]:
    work = tmp_path_factory.mktemp("ui")
    config = work / "config.json"
    config.write_text(json.dumps(ui_config()))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KUBERNETES_")}
    env |= {
        "SOLUTION_UI_CONFIG": str(config),
        "SOLUTION_UI_PORT": str(port),
        "SOLUTION_UI_LISTEN": "127.0.0.1",
    }
    with background([sys.executable, str(SOURCE)], work / "ui.log", env=env) as process:
        running = RunningUi(f"http://127.0.0.1:{port}", config, process)
        wait_until(lambda: running.get("/healthz").status_code == 200, "the UI server")
        yield running


def test_healthz_outside_the_base_path(ui: RunningUi) -> None:
    answer = ui.get("/healthz")
    assert (answer.status_code, answer.text) == (200, "ok\n")


def test_the_page_is_served_at_the_base_path_with_relative_urls(ui: RunningUi) -> None:
    page = ui.get(BASE)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="instances"' in page.text
    assert 'href="style.css"' in page.text
    assert 'src="app.js"' in page.text
    for absolute in ('href="/', 'src="/', "http://", "https://"):
        assert absolute not in page.text
    assert ui.get(f"{BASE}index.html").text == page.text
    script = ui.get(f"{BASE}app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "api/kubernetes" in script.text
    assert ui.get(f"{BASE}style.css").headers["content-type"] == "text/css; charset=utf-8"


def test_the_base_path_without_its_slash_redirects(ui: RunningUi) -> None:
    answer = ui.get(BASE.rstrip("/"))
    assert answer.status_code == 301
    assert answer.headers["location"] == BASE


def test_config_json_is_the_mounted_file(ui: RunningUi) -> None:
    answer = ui.get(f"{BASE}config.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == ui.config.read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/index.html",
        "/app.js",
        "/config.json",
        "/env/prod/prod/other/",
        f"{BASE}nope.js",
        f"{BASE}static/app.js",
        f"{BASE}../app.js",
    ],
)
def test_not_found_outside_the_page(ui: RunningUi, path: str) -> None:
    assert ui.get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/prod/secrets",
        f"/apis/{GROUP}/v1beta1/namespaces/other/versionservers",
        f"/apis/{GROUP}/v1beta1/namespaces/prod/versionserversx",
        f"/apis/{GROUP}/v1beta1/namespaces/prod/versionservers/../../../secrets",
        f"/apis/{GROUP}/v1beta1/namespaces/prod/versionservers/a/%2e%2e/b",
        f"/apis/{GROUP}/v1beta1/namespaces/prod/versionservers//x",
        "",
    ],
)
def test_api_paths_not_in_the_config_are_forbidden(ui: RunningUi, path: str) -> None:
    answer = httpx.get(
        f"{ui.url}{BASE}api/kubernetes{path}",
        headers={"Authorization": "Bearer t"},
        timeout=10,
    )
    assert answer.status_code == 403
    status = answer.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    assert "api.paths" in status["message"]


@pytest.mark.parametrize("suffix", ["", "?limit=10", "/vs-1", "/vs-1/status"])
def test_allowed_api_paths_need_the_callers_authorization(ui: RunningUi, suffix: str) -> None:
    answer = ui.get(f"{BASE}api/kubernetes{PATHS[1]}{suffix}")
    assert answer.status_code == 401
    status = answer.json()
    assert (status["reason"], status["code"]) == ("Unauthorized", 401)
    assert "no credentials of its own" in status["message"]


def test_outside_a_cluster_there_is_nothing_to_forward_to(ui: RunningUi) -> None:
    answer = ui.get(f"{BASE}api/kubernetes{PATHS[0]}", headers={"Authorization": "Bearer t"})
    assert answer.status_code == 503
    assert "KUBERNETES_SERVICE_HOST" in answer.json()["message"]


def test_only_get_and_head(ui: RunningUi) -> None:
    answer = httpx.post(f"{ui.url}{BASE}api/kubernetes{PATHS[1]}", json={}, timeout=10)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD"
    head = httpx.head(f"{ui.url}{BASE}", timeout=10)
    page = httpx.get(f"{ui.url}{BASE}", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(page.content))


def test_a_changed_config_is_reread_and_a_broken_one_ignored(ui: RunningUi) -> None:
    original = ui.config.read_bytes()
    try:
        changed = json.dumps(ui_config(namespace="staging")).encode()
        ui.config.write_bytes(changed)
        assert ui.get(f"{BASE}config.json").content == changed
        ui.config.write_text("{not json")
        assert ui.get(f"{BASE}config.json").content == changed
    finally:
        ui.config.write_bytes(original)
    assert ui.get(f"{BASE}config.json").content == original
    assert ui.process.poll() is None


def test_a_missing_or_invalid_config_stops_the_server(tmp_path: Path) -> None:
    def start(config: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SOLUTION_UI_CONFIG": str(config), "SOLUTION_UI_PORT": "1"}
        return subprocess.run(
            [sys.executable, str(SOURCE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    missing = start(tmp_path / "nope.json")
    assert missing.returncode == 1
    assert f"cannot read the configuration {tmp_path / 'nope.json'}" in missing.stderr
    invalid = tmp_path / "config.json"
    invalid.write_text(json.dumps({**ui_config(), "api": {"paths": "x"}}))
    result = start(invalid)
    assert result.returncode == 1
    assert "api.paths must be a list" in result.stderr


def test_the_base_path_from_the_environment_wins() -> None:
    module = ui_module()
    raw = json.dumps(ui_config()).encode()
    assert module.parse_config(raw).base_path == BASE
    assert module.parse_config(raw, "/elsewhere").base_path == "/elsewhere/"
    with pytest.raises(module.ConfigError, match="absolute path"):
        module.parse_config(raw, "relative/")


def test_api_target_keeps_the_query_and_checks_each_segment() -> None:
    module = ui_module()
    config = module.parse_config(json.dumps(ui_config()).encode())
    allowed = f"{PATHS[1]}?labelSelector=a%3Db&limit=5"
    assert module.api_target(config, allowed) == allowed
    assert module.api_target(config, f"{PATHS[0]}/vs-1.a_b") == f"{PATHS[0]}/vs-1.a_b"
    for refused in (f"{PATHS[0]}/.", f"{PATHS[0]}/-x", f"{PATHS[0]}/", f"{PATHS[0]}x"):
        assert module.api_target(config, refused) is None, refused


# --- the page, in Debian's Chromium, with the Kubernetes API answered by the test ------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        yield browser
        browser.close()


def version_server(name: str, version: str, replicas: int, ready: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "VersionServer",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {"version": version, "replicas": replicas},
    }
    if ready is not None:
        condition = {"type": "Ready", "status": str(ready == replicas), "reason": "Converged"}
        item["status"] = {"replicas": replicas, "readyReplicas": ready, "conditions": [condition]}
    return item


def test_the_page_lists_the_namespaces_version_servers(ui: RunningUi, browser: Any) -> None:
    requested: list[str] = []
    items = [version_server("web", "2.0.0", 2, 2), version_server("api", "1.1.0", 3, None)]
    answers = [
        (200, {"kind": "VersionServerList", "items": items}),
        (403, {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "nope"}),
    ]

    def answer(route: Any) -> None:
        requested.append(route.request.url)
        status, body = answers[0] if len(requested) == 1 else answers[1]
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page = browser.new_page()
    try:
        page.set_default_timeout(15_000)
        # Time stands still but for run_for: no refresh comes on its own, however slow we are.
        start = datetime.now(UTC)
        page.clock.install(time=start)
        page.clock.pause_at(start + timedelta(seconds=1))
        page.route("**/api/kubernetes/**", answer)
        page.goto(ui.url + BASE)
        # The page fills its header from config.json, then lists: wait for the list first.
        page.locator('#instances[data-state="ok"]').wait_for()
        assert page.locator("#solution-name").inner_text() == "Example Solution"
        assert page.locator("#solution-version").inner_text() == "2.0.0"
        assert page.locator("#environment").inner_text() == "prod"
        assert page.locator("#namespace").inner_text() == "prod"
        assert requested[0] == f"{ui.url}{BASE}api/kubernetes{PATHS[1]}", "the newest version"
        rows = page.locator("#instances tbody tr")
        assert [rows.nth(i).get_attribute("data-instance") for i in range(2)] == ["api", "web"]
        web = page.locator('tr[data-instance="web"]')
        assert web.get_attribute("data-ready") == "true"
        assert web.locator('[data-field="version"]').inner_text() == "2.0.0"
        assert web.locator('[data-field="replicas"]').inner_text() == "2"
        assert web.locator('[data-field="ready"]').inner_text() == "2/2"
        pending = page.locator('tr[data-instance="api"]')
        assert pending.get_attribute("data-ready") == "unknown"
        assert pending.locator('[data-field="status"]').inner_text() == "Pending"
        # The next refresh (every 5 s) is refused: a clear message, and no stale rows.
        page.clock.run_for(5_000)
        page.locator('#instances[data-state="error"]').wait_for()
        assert len(requested) == 2
        error = page.locator("#error")
        assert "you are not allowed to list VersionServers in prod" in error.inner_text()
        assert "HTTP 403: nope" in error.inner_text()
        assert page.locator("tr[data-instance]").count() == 0
    finally:
        page.close()


def test_the_page_works_under_any_base_path(tmp_path: Path, browser: Any) -> None:
    base = "/somewhere/else/"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ui_config(base="/ignored/", namespace="dev")))
    port = free_port()
    env = {
        **os.environ,
        "SOLUTION_UI_CONFIG": str(config),
        "SOLUTION_UI_PORT": str(port),
        "SOLUTION_UI_LISTEN": "127.0.0.1",
        "SOLUTION_UI_BASE_PATH": base,
    }
    with background([sys.executable, str(SOURCE)], tmp_path / "ui.log", env=env):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, "the UI server")
        page = browser.new_page()
        try:
            page.set_default_timeout(15_000)
            page.route(
                "**/api/kubernetes/**",
                lambda route: route.fulfill(
                    status=200, content_type="application/json", body='{"items": []}'
                ),
            )
            page.goto(url + base)
            page.locator('#instances[data-state="ok"]').wait_for()
            assert page.locator("#namespace").inner_text() == "dev"
            assert page.locator('[data-field="empty"]').inner_text() == "No VersionServer in dev."
        finally:
            page.close()
