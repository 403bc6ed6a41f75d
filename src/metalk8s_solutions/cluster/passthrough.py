"""Forward one HTTP request to the API server as it is: bytes in, bytes out.

The web UI's route to a Solution's own UI (``web/solution_ui.py``) needs the API server's answer
unchanged — an HTML page, a script, a JSON list — whatever its status, so that the browser sees
what the Solution's UI (through the service proxy) or the Kubernetes API sent.  Only connection
problems become errors here; every HTTP status is the caller's to interpret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from metalk8s_solutions.cluster.kube import Kube

#: Response headers passed back to the browser; the rest (hop-by-hop, cookies, the API server's
#: own audit and priority headers) stay behind.
KEPT_HEADERS = (
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "expires",
    "content-disposition",
    "location",
    "retry-after",
)
#: Request headers passed on; the caller's credentials are never among them (the connection
#: carries the logged-in user's token).
FORWARDED_HEADERS = ("accept", "content-type", "if-none-match", "if-modified-since", "range")


@dataclass(frozen=True)
class Forwarded:
    status: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


async def forward(
    kube: Kube,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    action: str,
) -> Forwarded:
    """Send ``method path?query`` with ``body``; the answer whatever its status."""
    sent = {k: v for k, v in (headers or {}).items() if k.lower() in FORWARDED_HEADERS}
    sent["accept-encoding"] = "identity"  # pass the bytes through as they are
    url = path + (f"?{query}" if query else "")
    with kube.errors(action):
        response = await kube.http.request(
            method, url, content=body or None, headers=sent, follow_redirects=False
        )
    kept = {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS}
    return Forwarded(response.status_code, response.content, kept)


__all__ = ["FORWARDED_HEADERS", "KEPT_HEADERS", "Forwarded", "forward"]
