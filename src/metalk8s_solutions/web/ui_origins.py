"""One origin per Solution UI: its host name, the one-time handoff tickets and its sessions.

Every Solution UI served by ``solutions ui`` gets its own host name, ``<label>.<domain>``
(:func:`host_label`; the domain is ``localhost`` for a server reached on a loopback address,
else the one of ``--solution-ui-url``, which needs a wildcard DNS record).  Browsers keep origins
apart, so a UI's scripts can read neither another UI's pages nor the product's.

No cookie is shared across origins: the product's session cookie is host-only on the product's
host and never taken on a UI's origin.  Opening a UI goes through the product's origin, which
hands the session over with a one-time ticket bound to that UI (:class:`UiSessions`); the UI's
origin redeems it and sets its own host-only cookie, naming a session that is valid for that UI
only and ends with the product's session.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from metalk8s_solutions.errors import InvalidInput

#: the Solution UI being addressed: environment, namespace, solution
UiKey = tuple[str, str, str]
HANDOFF_PATH = "/.solutions/handoff"
TICKET_TTL = 60.0
SESSION_TTL = 8 * 3600.0  # without a request; the product's session must be alive too
UI_COOKIE = "solutions_ui"
SECURE_UI_COOKIE = "__Host-solutions_ui"  # with TLS: no Domain, Path=/, Secure, by the browser
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def host_label(env: str, namespace: str, solution: str) -> str:
    """The first DNS label of the UI's host name: the solution, and a digest of the three names.

    Unambiguous (``a--b`` names cannot collide) and at most 57 characters (a label holds 63).
    """
    digest = hashlib.sha256(f"{env}/{namespace}/{solution}".encode()).hexdigest()[:16]
    return f"{solution[:40]}-{digest}"


@dataclass(frozen=True)
class UiBase:
    """Where browsers reach Solution UIs: ``scheme://<label>.<domain>[:port]``."""

    scheme: str
    domain: str
    port: int | None = None

    def host(self, key: UiKey) -> str:
        return f"{host_label(*key)}.{self.domain}"

    def origin(self, key: UiKey) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host(key)}{port}"

    def serves(self, host_header: str, key: UiKey) -> bool:
        """True when a request's ``Host`` (port aside) is the host name of ``key``'s UI."""
        name = urlsplit(f"//{host_header}").hostname or ""
        return name.lower().rstrip(".") == self.host(key)


def parse_base(url: str, option: str = "--solution-ui-url") -> UiBase:
    """``http(s)://DOMAIN[:PORT]``: each Solution UI is then at ``<label>.DOMAIN[:PORT]``."""
    parts = urlsplit(url.strip())
    hint = "e.g. https://apps.example.com:8443 with a wildcard DNS record *.apps.example.com"
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidInput(f"{option} {url!r} has an invalid port", hint=hint) from err
    domain = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("http", "https") or not domain or parts.path.strip("/"):
        raise InvalidInput(
            f"{option} {url!r} is not scheme://DOMAIN[:PORT] (Solution UIs are served on "
            "host names under DOMAIN, one each)",
            hint=hint,
        )
    if parts.query or parts.fragment or parts.username or _is_address(domain):
        raise InvalidInput(f"{option} {url!r} must name a DNS domain and nothing else", hint=hint)
    return UiBase(parts.scheme, domain.lower(), port)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def default_base(scheme: str, request_host: str, port: int) -> UiBase | None:
    """``localhost`` sub-domains (browsers resolve them to loopback) for a loopback server."""
    name = request_host.lower().strip("[]")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return UiBase(scheme, "localhost", port)
    return None


def cookie_name(secure: bool) -> str:
    return SECURE_UI_COOKIE if secure else UI_COOKIE


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a ``Cookie`` header (a sibling may toss in others)."""
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            values.append(value.strip('"'))
    return values


@dataclass
class _Ticket:
    key: UiKey
    parent: str
    expires: float


@dataclass
class UiSession:
    """A session of one Solution UI's origin, standing for the product session ``parent``."""

    id: str
    key: UiKey
    parent: str = field(repr=False)
    seen: float = 0.0


#: handoff tickets kept at most (each is issued to a logged-in user and lives a minute)
MAX_TICKETS = 10_000
#: Solution UI sessions kept at most (as many as the product keeps sessions)
MAX_UI_SESSIONS = 10_000


class UiSessions:
    """Handoff tickets and the sessions of Solution UI origins (in memory, like the sessions)."""

    def __init__(self, ticket_ttl: float = TICKET_TTL, session_ttl: float = SESSION_TTL) -> None:
        self.ticket_ttl = ticket_ttl
        self.session_ttl = session_ttl
        self._tickets: dict[str, _Ticket] = {}
        self._sessions: dict[str, UiSession] = {}

    def issue(self, parent: str, key: UiKey) -> str:
        """A ticket for opening ``key``'s UI as product session ``parent``: once, shortly."""
        now = time.monotonic()
        for stale in [t for t, v in self._tickets.items() if v.expires < now]:
            self._tickets.pop(stale, None)
        for idle in [i for i, v in self._sessions.items() if now - v.seen > self.session_ttl]:
            self._sessions.pop(idle, None)
        while len(self._tickets) >= MAX_TICKETS:  # oldest first: dicts keep insertion order
            self._tickets.pop(next(iter(self._tickets)))
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = _Ticket(key, parent, now + self.ticket_ttl)
        return ticket

    def redeem(self, ticket: str, key: UiKey) -> UiSession | None:
        """The new session of ``key``'s UI; None when the ticket is unknown, spent, expired or
        was issued for another UI (it is spent all the same)."""
        found = self._tickets.pop(ticket, None)
        if found is None or found.expires < time.monotonic() or found.key != key:
            return None
        now = time.monotonic()
        for idle in [i for i, v in self._sessions.items() if now - v.seen > self.session_ttl]:
            self._sessions.pop(idle, None)
        while len(self._sessions) >= MAX_UI_SESSIONS:  # the oldest first
            self._sessions.pop(next(iter(self._sessions)))
        session = UiSession(secrets.token_urlsafe(32), key, found.parent, now)
        self._sessions[session.id] = session
        return session

    def parent_of(self, session_id: str, key: UiKey) -> str | None:
        """The product session behind ``session_id``, if it was handed over for ``key``."""
        session = self._sessions.get(session_id)
        if session is None or session.key != key:
            return None
        now = time.monotonic()
        if now - session.seen > self.session_ttl:
            self._sessions.pop(session_id, None)
            return None
        session.seen = now
        return session.parent

    def live(self, session_id: str) -> bool:
        """Is ``session_id`` a UI session not yet idle too long (for whichever UI)?"""
        session = self._sessions.get(session_id)
        return session is not None and time.monotonic() - session.seen <= self.session_ttl

    def end(self, parent: str) -> None:
        """Forget every UI session of product session ``parent`` (logout, expiry)."""
        for sid in [s.id for s in self._sessions.values() if s.parent == parent]:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)


__all__ = [
    "HANDOFF_PATH",
    "UiBase",
    "UiKey",
    "UiSession",
    "UiSessions",
    "cookie_name",
    "cookie_values",
    "default_base",
    "host_label",
    "parse_base",
]
