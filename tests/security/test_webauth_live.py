"""Finding 16: live updates are HTML put into the page (``innerHTML``); error text in them must be
escaped, like everything the templates render."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from security.webauth_support import admin_token, running_ui

pytestmark = pytest.mark.cluster

MARKUP = '<img src=x onerror="alert(1)">'


def first_event(http: httpx.Client, path: str) -> str:
    """The data of the stream's first event (the first fragment the page would show)."""
    data: list[str] = []
    with http.stream("GET", path) as answer:
        assert answer.status_code == 200, answer.read()
        for line in answer.iter_lines():
            if line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif not line and data:
                break
    return "\n".join(data)


def test_error_text_in_live_updates_is_escaped(local_cluster: LocalCluster, tmp_path: Path) -> None:
    token = admin_token(local_cluster)
    with running_ui(local_cluster, tmp_path) as served, served.ui.client(token) as http:
        for path in (
            f"/environments/{quote(MARKUP, safe='')}/live",
            f"/environments/{quote(MARKUP, safe='')}/solutions/x/instances-live",
        ):
            fragment = first_event(http, path)
            assert 'class="error"' in fragment, fragment
            assert "<img" not in fragment, fragment
            assert "&lt;img" in fragment, fragment
