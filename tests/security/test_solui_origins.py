"""One origin per Solution UI, the pure parts: host names, the base URL, tickets and sessions."""

from __future__ import annotations

import pytest

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.web.ui_origins import (
    UiBase,
    UiSessions,
    cookie_values,
    default_base,
    host_label,
    parse_base,
)

A = ("prod", "prod-a", "shop")
B = ("prod", "prod-b", "shop")


def test_each_ui_gets_its_own_dns_label() -> None:
    keys = (A, B, ("prod", "prod-a", "till"), ("prod-a", "prod", "shop"))
    labels = {host_label(*k) for k in keys}
    assert len(labels) == 4
    # names with '--' cannot be shuffled into another UI's label
    assert host_label("a--b", "c", "s") != host_label("a", "b--c", "s")
    longest = host_label("e" * 63, "n" * 63, "s" * 63)
    assert len(longest) <= 63 and longest[0].isalnum() and longest[-1].isalnum()


def test_a_request_is_for_a_ui_only_on_that_uis_host_name() -> None:
    base = UiBase("http", "localhost", 8081)
    host_a = base.host(A)
    assert base.origin(A) == f"http://{host_a}:8081"
    assert base.serves(f"{host_a}:8081", A)
    assert base.serves(f"{host_a.upper()}:9999", A)  # case and port aside
    for other in (base.host(B) + ":8081", "127.0.0.1:8081", "localhost:8081", f"x.{host_a}:8081"):
        assert not base.serves(other, A), other
    assert not base.serves(f"{host_a}.evil.example:8081", A)
    assert not base.serves("", A)


def test_the_base_url_names_a_domain_and_nothing_else() -> None:
    assert parse_base("https://Apps.Example.com:8443") == UiBase("https", "apps.example.com", 8443)
    assert parse_base("http://apps.example.com/") == UiBase("http", "apps.example.com", None)
    for bad in (
        "apps.example.com",
        "ftp://apps.example.com",
        "https://apps.example.com/ui",
        "https://10.0.0.1:8443",
        "https://[::1]:8443",
        "https://user@apps.example.com",
        "https://apps.example.com?x=1",
        "https://apps.example.com:99999",
    ):
        with pytest.raises(InvalidInput):
            parse_base(bad)


def test_localhost_subdomains_only_for_a_server_reached_on_loopback() -> None:
    assert default_base("http", "127.0.0.1", 8081) == UiBase("http", "localhost", 8081)
    assert default_base("http", "[::1]", 8081) == UiBase("http", "localhost", 8081)
    assert default_base("https", "localhost", 1) == UiBase("https", "localhost", 1)
    assert default_base("http", "solutions.example.com", 8081) is None
    assert default_base("http", "10.0.0.1", 8081) is None


def test_a_ticket_opens_one_ui_once() -> None:
    store = UiSessions()
    ticket = store.issue("parent-1", A)
    assert store.redeem(ticket, B) is None, "issued for A"
    assert store.redeem(ticket, A) is None, "spent by the attempt on B"
    ticket = store.issue("parent-1", A)
    session = store.redeem(ticket, A)
    assert session is not None and session.key == A
    assert store.redeem(ticket, A) is None, "one use"
    assert store.parent_of(session.id, A) == "parent-1"
    assert store.parent_of(session.id, B) is None
    assert store.parent_of("parent-1", A) is None, "the product's session id is no UI session"
    store.end("parent-1")
    assert store.parent_of(session.id, A) is None


def test_an_expired_ticket_opens_nothing() -> None:
    store = UiSessions(ticket_ttl=-1.0)
    assert store.redeem(store.issue("p", A), A) is None
    assert store.redeem("made-up", A) is None


def test_every_value_of_the_cookie_is_seen() -> None:
    header = 'solutions_ui=tossed; other=1; solutions_ui="mine"; solutions_uix=no'
    assert cookie_values(header, "solutions_ui") == ["tossed", "mine"]
    assert cookie_values("", "solutions_ui") == []


def test_an_idle_ui_session_ends() -> None:
    store = UiSessions(session_ttl=-1.0)
    session = store.redeem(store.issue("p", A), A)
    assert session is not None
    assert store.parent_of(session.id, A) is None
    assert len(store) == 0


def test_tickets_and_ui_sessions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A logged-in user looping issue/redeem cannot grow either table without bound."""
    from metalk8s_solutions.web import ui_origins  # noqa: PLC0415

    monkeypatch.setattr(ui_origins, "MAX_TICKETS", 5)
    monkeypatch.setattr(ui_origins, "MAX_UI_SESSIONS", 7)
    store = UiSessions()
    tickets = [store.issue("parent-1", A) for _ in range(20)]
    assert len(store._tickets) == 5
    assert store.redeem(tickets[0], A) is None, "the oldest went first"
    for _ in range(30):
        assert store.redeem(store.issue("parent-1", A), A) is not None
    assert len(store) == 7
