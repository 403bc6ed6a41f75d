"""The whole journey in Debian's Chromium (Playwright, system browser, headless), as an admin, and
a read-only user who sees everything but can change nothing.  Screenshots of every page go to
``build/screenshots/`` for review.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from web.support import SHOTS, RunningUi, unique

pytestmark = pytest.mark.cluster


class Ui:
    """A logged-in page with the few gestures the journey repeats."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.page.set_default_timeout(60_000)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def login(self, token: str) -> None:
        self.go("/login")
        self.page.get_by_label("Bearer token").fill(token)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/solutions")

    def confirm(self, shot: str, typed: str | None = None, words: str | None = None) -> None:
        """On a plan page: check it (its summary says ``words``), confirm, and wait until the
        job succeeds."""
        self.page.wait_for_url("**/ops/*/plan")
        assert self.page.locator(".error").count() == 0, self.page.locator(".error").inner_text()
        if words is not None:
            assert words in self.page.locator("#plan-summary").inner_text()
            # The Kubernetes objects are there, on request only.
            objects = self.page.locator("#plan-objects")
            assert objects.get_attribute("open") is None
            assert not objects.locator("table").is_visible()
        self.shot(f"{shot}-plan")
        if typed is not None:
            self.page.get_by_label("to confirm").fill(typed)
        self.page.get_by_role("button", name="Confirm").click()
        self.page.wait_for_url("**/jobs/*")
        # The page follows the job and reloads itself when it ends; the page the server renders
        # for an ended job no longer follows it (no data-job).  Clicking before that reload
        # could land in the document being replaced.
        self.page.locator("#job-log:not([data-job])").wait_for(timeout=240_000)
        self.page.wait_for_load_state()
        state = self.page.locator("#job-state")
        self.shot(f"{shot}-done")
        errors = self.page.locator(".error")
        assert state.inner_text() == "succeeded", errors.all_inner_texts()
        self.page.get_by_role("link", name="Continue").click()
        self.page.wait_for_url(lambda url: "/jobs/" not in url)  # and its load event


def test_admin_journey(
    browser: Any, ui_server: RunningUi, admin_token: str, example_archives: Any
) -> None:
    isos = example_archives.isos
    env = unique("web")
    sol = "example-solution"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    ui = Ui(context.new_page(), ui_server.url)
    ui.login(admin_token)
    page = ui.page
    ui.shot("01-solutions-empty")

    # Import the three versions by path, then activate 1.1.0.
    page.get_by_label("Archive path(s)").fill("\n".join(str(isos[v]) for v in isos))
    page.get_by_role("button", name="Plan import…").click()
    ui.confirm("02-import")
    page.wait_for_url("**/solutions")
    rows = page.locator(f"#versions-{sol} tbody tr")
    assert rows.count() == 3
    ui.shot("03-solutions")
    page.locator(f'#versions-{sol} tr[data-version="1.1.0"]').get_by_role(
        "button", name="Activate"
    ).click()
    ui.confirm("04-activate")
    assert (
        "1.1.0" in page.locator(f"section[aria-labelledby=sol-{sol}] .badge.ok").first.inner_text()
    )

    # Create an environment (a bad name is refused with the engine's message first).
    ui.go("/environments")
    page.locator("#env-name").fill(env)
    page.get_by_label("Description").fill("Browser journey")
    page.get_by_role("button", name="Plan creation…").click()
    ui.confirm("05-env-create")
    page.wait_for_url(f"**/environments/{env}")

    # Add 1.0.0, create an instance from the form, scale it.
    page.get_by_label(f"{sol} version").select_option("1.0.0")
    page.get_by_role("button", name="Plan add…").click()
    ui.confirm("06-add", words=f"Install {sol} 1.0.0 (its operator) in {env}; no instance yet")
    ui.shot("07-environment")
    page.get_by_role("link", name=f"Instances of {sol}").click()
    page.get_by_role("link", name="New VersionServer").click()
    ui.shot("08-instance-form")
    page.locator("#f-name").fill("web")
    page.locator("#f-version").fill("1.0.0")
    page.locator("#f-replicas").fill("1000")
    page.get_by_role("button", name="Create", exact=True).click()
    assert "must be at most 100" in page.locator(".field-error").inner_text()
    ui.shot("09-instance-form-error")
    page.locator("#f-replicas").fill("1")
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url("**/instances?*")
    assert "Created VersionServer web" in page.locator("#flash").inner_text()
    assert page.locator("#instances th", has_text="Ready").count() == 1
    row = page.locator('#instances tr[data-name="web"]')
    assert row.count() == 1
    row.get_by_role("link", name="Edit").click()
    page.locator("#f-replicas").fill("3")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/instances?*")
    assert "Saved VersionServer web" in page.locator("#flash").inner_text()
    assert "3" in page.locator('#instances tr[data-name="web"]').inner_text()
    ui.shot("10-instances")

    # The instance in detail: no pod and no log on fake nodes, said plainly.
    page.locator('#instances tr[data-name="web"]').get_by_role("link", name="Details").click()
    assert "no readiness reported" in page.locator("#instance-ready").inner_text()
    assert "no log available" in page.locator("#operator-log").inner_text()
    assert page.locator("#no-pods").is_visible()
    ui.shot("10b-instance-details")

    # Health covers the instance: not "healthy" while it reports nothing.
    ui.go(f"/environments/{env}")
    assert page.locator("#env-health").inner_text() == "unknown"
    problem = page.locator("#env-problem").inner_text()
    assert "no readiness reported by 1 of 1 instances (VersionServer web)" in problem

    # Upgrade, then downgrade; the history shows both.
    ui.go(f"/environments/{env}")
    page.get_by_label("Change version").select_option("1.1.0")
    page.get_by_role("button", name="Plan change…").click()
    ui.confirm(
        "11-upgrade",
        words=f"Upgrade {sol} 1.0.0 → 1.1.0 in {env}; 1 instance keeps running: VersionServer web",
    )
    # The instance still asks for 1.0.0: pointed out, with the way to follow.
    page.get_by_role("link", name=f"Instances of {sol}").click()
    pointer = page.locator("#follow").inner_text()
    assert "VersionServer web runs 1.0.0; the operator is 1.1.0 — edit to follow" in pointer
    ui.shot("11b-instances-behind")
    ui.go(f"/environments/{env}")
    page.get_by_label("Change version").select_option("1.0.0")
    page.get_by_role("button", name="Plan change…").click()
    ui.confirm("12-downgrade")
    assert page.locator("#history tbody tr").count() >= 3
    ui.shot("13-environment-history")

    # Narrow window: still readable (no horizontal scroll of the page itself).
    page.set_viewport_size({"width": 420, "height": 800})
    ui.shot("14-environment-narrow")
    assert page.evaluate("document.documentElement.scrollWidth") <= 440
    page.set_viewport_size({"width": 1280, "height": 800})

    # Remove (with its instances), delete the environment (typed), deactivate, unimport.
    # A page that does not exist leads back.
    ui.go("/environments/no-such-env")
    assert page.get_by_role("heading", name="Not found").is_visible()
    page.get_by_role("link", name="Back to the environments list").click()
    page.wait_for_url("**/environments")
    ui.go(f"/environments/{env}")

    page.get_by_label("also delete its instances").check()
    page.get_by_role("button", name="Plan removal…").click()
    ui.confirm(
        "15-remove",
        words=f"Remove {sol} 1.0.0 from {env}; its instance VersionServer web is deleted, and "
        "its data is lost",
    )
    page.get_by_role("button", name="Plan deletion…").click()
    ui.confirm("16-env-delete", typed=env)
    ui.go("/solutions")
    page.get_by_role("button", name="Deactivate").click()
    ui.confirm("17-deactivate")
    for version in isos:
        page.locator(f'#versions-{sol} tr[data-version="{version}"]').get_by_role(
            "button", name="Unimport"
        ).click()
        ui.confirm(f"18-unimport-{version}")
    assert urlsplit(page.url).path == "/solutions"
    assert page.locator(f"#versions-{sol}").count() == 0
    context.close()


def test_viewer_sees_but_cannot_change(
    browser: Any, ui_server: RunningUi, admin_token: str, viewer_token: str, built_archive: Any
) -> None:
    env = unique("ro")
    archive = built_archive()
    with ui_server.client(admin_token) as http:
        http.post("/api/solutions/import", json={"archives": [str(archive)]}).raise_for_status()
        http.post("/api/environments", json={"name": env}).raise_for_status()
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        ui = Ui(context.new_page(), ui_server.url)
        ui.login(viewer_token)
        page = ui.page
        assert page.locator("#versions-example-solution tbody tr").count() == 1
        assert page.get_by_role("button", name="Plan import…").is_disabled()
        assert page.get_by_role("button", name="Activate").is_disabled()
        assert page.get_by_role("button", name="Unimport").is_disabled()
        ui.shot("20-viewer-solutions")
        ui.go("/environments")
        assert page.get_by_role("link", name=env).count() == 1
        assert page.get_by_role("button", name="Plan creation…").is_disabled()
        ui.go(f"/environments/{env}")
        assert page.get_by_role("button", name="Plan deletion…").is_disabled()
        ui.shot("21-viewer-environment")
        # Forcing the form anyway: the API server refuses, and the page says so.
        page.evaluate("document.querySelectorAll('[disabled]').forEach(e => e.disabled = false)")
        page.get_by_role("button", name="Plan deletion…").click()
        assert "permission denied" in page.locator(".error").inner_text()
        ui.shot("22-viewer-refused")
        context.close()
    finally:
        with ui_server.client(admin_token) as http:
            http.post(f"/api/environments/{env}/delete", json={"confirm": env})
            http.post("/api/solutions/unimport", json={"refs": [str(archive)]})


def test_docs_screenshots_exist() -> None:
    """Keep docs/img in step with the journey (copied when the journey produced them)."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "img"
    wanted = [
        "03-solutions",
        "04-activate-plan",
        "07-environment",
        "08-instance-form",
        "10-instances",
        "13-environment-history",
        "20-viewer-solutions",
    ]
    # Refresh them only on request, so a test run never changes tracked files.
    if os.environ.get("SOLUTIONS_UPDATE_DOCS_SCREENSHOTS") == "1":
        assert all((SHOTS / f"{n}.png").exists() for n in wanted), "run the journey first"
        for name in wanted:
            shutil.copyfile(SHOTS / f"{name}.png", docs / f"ui-{name}.png")
    for name in wanted:
        assert (docs / f"ui-{name}.png").stat().st_size > 0, name
