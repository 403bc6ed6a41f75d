"""Bounded memory for what callers can make the server remember, and login rate limits.

Whatever a request can add to the server's memory (cached permission answers, pending OIDC
logins, rate-limit buckets) lives in a :class:`BoundedCache`: at most ``max_entries`` entries
(the oldest go first) and none older than ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Clock = Callable[[], float]


class BoundedCache(Generic[K, V]):
    """A mapping with a size bound (oldest entry out first) and an age bound (``ttl``)."""

    def __init__(self, max_entries: int, ttl: float, clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (stamp, _) = next(iter(self._entries.items()))
            if now - stamp <= self.ttl:
                break
            del self._entries[key]

    def get(self, key: K) -> V | None:
        self._expire(self.clock())
        found = self._entries.get(key)
        return None if found is None else found[1]

    def put(self, key: K, value: V) -> None:
        now = self.clock()
        self._expire(now)
        self._entries.pop(key, None)  # a new value starts a new age
        self._entries[key] = (now, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        self._expire(self.clock())
        found = self._entries.pop(key, None)
        return None if found is None else found[1]

    def __iter__(self) -> Iterator[K]:
        self._expire(self.clock())
        return iter(list(self._entries))

    def __getitem__(self, key: K) -> V:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __len__(self) -> int:
        self._expire(self.clock())
        return len(self._entries)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per client: ``burst`` attempts at once, then ``per_second`` more.

    The table of buckets is bounded too: a bucket refilled to ``burst`` is dropped (it is the
    same as no bucket), and beyond ``max_clients`` the oldest buckets go first.
    """

    def __init__(
        self,
        burst: int,
        per_second: float,
        max_clients: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self.clock = clock
        full = burst / per_second if per_second > 0 else float("inf")
        self._buckets: BoundedCache[str, _Bucket] = BoundedCache(max_clients, full, clock)

    def allow(self, client: str) -> bool:
        """Take one attempt from ``client``'s bucket; False when it is empty."""
        now = self.clock()
        bucket = self._buckets.get(client) or _Bucket(float(self.burst), now)
        tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.per_second)
        if tokens < 1:
            return False
        self._buckets.put(client, _Bucket(tokens - 1, now))
        return True

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (at least 1)."""
        bucket = self._buckets.get(client)
        if bucket is None or self.per_second <= 0:
            return 1
        missing = 1 - bucket.tokens
        return max(1, int(missing / self.per_second + 0.999))

    def __len__(self) -> int:
        return len(self._buckets)
