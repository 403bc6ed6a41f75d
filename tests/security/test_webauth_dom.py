"""Finding 16, in the browser (Debian's Chromium): what ``static/app.js`` puts into the page
with ``innerHTML`` (live updates) shows error text as text, never as markup; sort buttons move
header nodes instead of re-parsing their HTML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from security.webauth_support import admin_token, running_ui
from web.support import BROWSER_ARGS, CHROMIUM

APP_JS = Path(__file__).resolve().parents[2] / "src/metalk8s_solutions/web/static/app.js"
MARKUP = '<img src=x id=injected onerror="window.pwned=1">'
TABLE = """<table class="sortable"><thead><tr>
<th id="name">&lt;img src=x onerror="window.pwned=1"&gt;</th><th data-type="number">Version</th>
</tr></thead><tbody>
<tr><td>b</td><td data-sort="2">1.10.0</td></tr><tr><td>a</td><td data-sort="1">1.9.0</td></tr>
<tr><td>c</td><td data-sort="0">1.2.0</td></tr>
</tbody></table>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: apt-get install chromium")
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.mark.cluster
def test_live_error_text_is_not_markup(
    browser: Any, local_cluster: LocalCluster, tmp_path: Path
) -> None:
    token = admin_token(local_cluster)
    with running_ui(local_cluster, tmp_path) as served:
        page = browser.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(served.ui.url + "/login")  # the real form, with its CSRF token
            page.get_by_label("Bearer token").fill(token)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/solutions")
            # a live region like the environment page's, fed by an update that is an error
            page.evaluate(
                """(name) => {
                    const region = document.createElement("div");
                    region.id = "probe";
                    region.dataset.live = "/environments/" + encodeURIComponent(name) + "/live";
                    document.body.appendChild(region);
                    followLive(region);
                }""",
                MARKUP,
            )
            page.locator("#probe .error").wait_for()
            assert page.locator("#probe img, #injected").count() == 0
            assert MARKUP in page.locator("#probe .error").inner_text()
        finally:
            page.close()


def test_sort_buttons_keep_header_text_as_text(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.set_content(f"<!doctype html><html><body>{TABLE}</body></html>")
        page.add_script_tag(content=APP_JS.read_text())
        page.evaluate("enhance(document)")
        assert page.locator("#name button.sort img").count() == 0
        assert page.locator("#name button.sort").inner_text() == (
            '<img src=x onerror="window.pwned=1">'
        )
        page.locator("th:nth-child(2) button.sort").click()
        versions = page.locator("tbody td:nth-child(2)").all_inner_texts()
        assert versions == ["1.2.0", "1.9.0", "1.10.0"]
        assert page.evaluate("window.pwned") is None
    finally:
        page.close()
