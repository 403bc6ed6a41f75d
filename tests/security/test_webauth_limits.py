"""The bounds behind finding 9, as pure logic: size and age of caches, the login token bucket,
the sessions' idle timeout and absolute lifetime."""

from __future__ import annotations

from metalk8s_solutions.web.limits import BoundedCache, RateLimiter
from metalk8s_solutions.web.sessions import MemorySessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_keeps_at_most_max_entries_newest_first() -> None:
    cache: BoundedCache[int, str] = BoundedCache(3, 60.0)
    for n in range(10):
        cache.put(n, str(n))
    assert len(cache) == 3 and list(cache) == [7, 8, 9]
    assert cache.get(0) is None and cache[9] == "9"


def test_cache_forgets_entries_older_than_ttl() -> None:
    clock = Clock()
    cache: BoundedCache[str, int] = BoundedCache(100, 10.0, clock)
    cache.put("old", 1)
    clock.now += 6
    cache.put("new", 2)
    clock.now += 5  # "old" is 11 s old, "new" 5 s
    assert "old" not in cache and cache.get("new") == 2 and len(cache) == 1
    clock.now += 6
    assert len(cache) == 0


def test_rate_limiter_allows_a_burst_then_a_steady_rate_per_client() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 0.5, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after("a") == 2
    assert limiter.allow("b")  # another client has its own bucket
    clock.now += 2  # one more attempt
    assert limiter.allow("a") and not limiter.allow("a")
    clock.now += 60  # refilled buckets are dropped: the table does not grow with clients
    assert len(limiter) == 0


def test_rate_limiter_table_is_bounded() -> None:
    limiter = RateLimiter(5, 0.1, max_clients=100)
    for n in range(1000):
        limiter.allow(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 100


def test_sessions_end_at_their_lifetime_even_when_busy() -> None:
    store = MemorySessionStore(ttl=60, lifetime=100)
    session = store.create("alice", (), "token")
    session.created -= 99  # logged in 99 s ago, used a moment ago
    assert store.get(session.id) is session
    session.created -= 2
    assert store.get(session.id) is None and len(store) == 0


def test_sessions_are_bounded_in_number() -> None:
    store = MemorySessionStore(max_sessions=5)
    ids = [store.create(f"u{n}", (), "t").id for n in range(8)]
    assert len(store) == 5 and store.get(ids[0]) is None and store.get(ids[-1]) is not None
