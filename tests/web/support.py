"""Helpers of the web tests (imported as ``web.support``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from metalk8s_solutions.web.ui_origins import host_label

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class RunningUi:
    url: str
    config: Path
    uploads: Path
    solution_ui_url: str = ""  # the other origin, of Solutions' own UIs

    def client(
        self, token: str | None = None, *, solution_ui: tuple[str, str, str] | None = None
    ) -> httpx.Client:
        """A client of the product, or of the Solution UI ``(env, namespace, solution)`` on its
        own host name (sent to the Solution UI socket, as a browser resolving it would)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = self.url
        if solution_ui is not None:
            base = self.solution_ui_url
            headers["Host"] = self.solution_ui_origin(solution_ui).split("://", 1)[1]
        return httpx.Client(base_url=base, headers=headers, timeout=240)

    def solution_ui_origin(self, key: tuple[str, str, str]) -> str:
        """The origin of one Solution UI: its own host name under ``localhost``."""
        port = urlsplit(self.solution_ui_url).port
        return f"http://{host_label(*key)}.localhost:{port}"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"
