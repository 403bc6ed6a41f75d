"""Helpers of the web tests (imported as ``web.support``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx

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

    def client(self, token: str | None = None, *, solution_ui: bool = False) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = self.solution_ui_url if solution_ui else self.url
        return httpx.Client(base_url=base, headers=headers, timeout=240)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"
