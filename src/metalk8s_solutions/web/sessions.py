"""Server-side sessions: a random id in the cookie, the user's credentials only in memory.

The cookie holds nothing but an unguessable session id; the bearer token stays in the store
(never in a cookie value, a URL or a log line).  Both the store and the way a user proves who
they are are :class:`Protocol` s, so that OIDC (a later issue) plugs in beside bearer tokens
without touching the pages.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol

COOKIE = "solutions_session"
DEFAULT_TTL = 8 * 3600.0  # idle timeout
DEFAULT_LIFETIME = 12 * 3600.0  # absolute: from login, however busy the session
MAX_SESSIONS = 10_000  # beyond that, the oldest sessions end first


@dataclass
class Session:
    """A logged-in user: who, their API credentials, and the CSRF token of their forms."""

    id: str
    user: str
    groups: tuple[str, ...]
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float


class SessionStore(Protocol):
    """Where sessions live; the in-memory store suits the single ``solutions ui`` process."""

    def create(self, user: str, groups: tuple[str, ...], token: str) -> Session: ...

    def get(self, session_id: str) -> Session | None: ...

    def delete(self, session_id: str) -> None: ...


class MemorySessionStore:
    """Sessions in a dict, dropped after ``ttl`` seconds without a request, or ``lifetime``
    seconds after login, whichever comes first; at most ``max_sessions`` (oldest out first)."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        lifetime: float = DEFAULT_LIFETIME,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.ttl = ttl
        self.lifetime = lifetime
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, groups: tuple[str, ...], token: str) -> Session:
        now = time.monotonic()
        self._expire(now)
        session = Session(
            id=secrets.token_urlsafe(32),
            user=user,
            groups=groups,
            token=token,
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
        )
        self._sessions[session.id] = session
        while len(self._sessions) > self.max_sessions:  # dicts keep creation order
            self._sessions.pop(next(iter(self._sessions)))
        return session

    def get(self, session_id: str) -> Session | None:
        now = time.monotonic()
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if self._ended(session, now):
            self._sessions.pop(session_id, None)
            return None
        session.seen = now
        return session

    def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _ended(self, session: Session, now: float) -> bool:
        return now - session.seen > self.ttl or now - session.created > self.lifetime

    def _expire(self, now: float) -> None:
        for sid in [s.id for s in self._sessions.values() if self._ended(s, now)]:
            self._sessions.pop(sid, None)


@dataclass(frozen=True)
class Identity:
    """Who a credential belongs to, as the API server sees it."""

    user: str
    groups: tuple[str, ...] = ()


class Authenticator(Protocol):
    """Turns what the login form posted into an identity and the token to act with."""

    async def authenticate(self, credential: str) -> tuple[Identity, str]: ...
