"""One event schema: docs/events.md lists every event and field; the code emits nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

import resilient as rs
from resilient.core import events as _events
from resilient.testing import FakeClock, capture_events

from ..events_table import DOC, TABLE, emit_sites, library_sites, parse, site_violations, violations
from ..http.origin import Origin, Reply


@pytest.fixture
def origin() -> Iterator[Origin]:
    with contextlib.closing(Origin().start()) as server:
        yield server


def test_every_emit_site_is_documented() -> None:
    """Each emit(...) call in resilient/ names a listed event and writes only its listed fields."""
    sites = library_sites()
    assert len(sites) > 30
    problems = [p for site in sites for p in site_violations(site)]
    assert problems == []


def test_the_static_walk_catches_an_undocumented_field_or_event() -> None:
    """An emit site writing a field or an event the table does not list is reported."""
    source = (
        "emit('retry.attempt', operation=op, attempt=1, delay=0.1, secret_token=t)\n"
        "emit('retry.teleported', operation=op)\n"
    )
    problems = [p for site in emit_sites(source, "x.py") for p in site_violations(site)]
    assert problems == [
        "x.py:1: retry.attempt writes 'secret_token', not listed in docs/events.md",
        "x.py:2: emits 'retry.teleported', not listed in docs/events.md",
    ]


def test_an_event_outside_the_schema_is_reported() -> None:
    """An emitted event with an unlisted field, a repr as error, or a query string is reported."""
    base = {"event": "retry.attempt", "policy": "retry", "operation": "GET h", "key": None}
    ok = {**base, "attempt": 1, "delay": 0.1, "retry_after": None, "error": "ValueError", "error_message": "x"}
    assert violations(ok) == []
    assert violations({**ok, "extra": 1}) == ["retry.attempt: field 'extra' is not listed in docs/events.md"]
    assert violations({**ok, "error": "ValueError('x')"}) == [
        "retry.attempt: error \"ValueError('x')\" is not an exception type name"
    ]
    assert violations({**ok, "operation": "GET h/p?token=1"}) == [
        "retry.attempt: operation holds a query string: 'GET h/p?token=1'"
    ]
    assert violations({"event": "nope.never"}) == ["event 'nope.never' is not listed in docs/events.md"]


def test_the_table_levels_are_the_code_levels() -> None:
    """The level each row states is the level the events module logs the event at."""
    warning = getattr(_events, "_WARNING", None)
    info = getattr(_events, "_INFO", None)
    if warning is None or info is None:
        pytest.skip("the events module no longer keeps its level sets under these names")
    for name, row in TABLE.items():
        code = "warning" if name in warning else "info" if name in info else "debug"
        assert row.level == code, name
    assert (warning | info) <= TABLE.keys()


def test_the_table_parses_and_refuses_duplicates() -> None:
    """The parser reads every row and refuses a duplicated event."""
    text = DOC.read_text(encoding="utf-8")
    rows, policies = parse(text)
    assert "retry.attempt" in rows and rows["retry.attempt"].failure
    assert {"retry", "breaker", "cache"} <= policies
    row = next(line for line in text.splitlines() if line.startswith("| `retry.attempt`"))
    with pytest.raises(ValueError, match="twice"):
        parse(text + "\n" + row + "\n")


def test_errors_are_a_type_name_and_a_message_cut_to_200() -> None:
    """A failure event carries the exception's type name and its text, cut to 200 characters."""
    retry = rs.Retry(attempts=2, backoff=rs.Constant(0), clock=FakeClock())

    @retry
    def failing() -> None:
        raise ValueError("x" * 500)

    with capture_events() as events, pytest.raises(ValueError):
        failing()
    [attempt, gave_up] = events
    assert attempt["error"] == gave_up["error"] == "ValueError"
    assert attempt["error_message"] == "x" * 200
    assert attempt["policy"] == "retry" and attempt["key"] is None


def test_messages_drop_query_strings_and_credentials() -> None:
    """A URL in an error's text loses its query and credentials."""
    fallback = rs.Fallback(value=None)

    @fallback
    def failing() -> None:
        raise RuntimeError("GET https://user:pw@api.test/v1/items?token=s3cret failed")

    with capture_events() as events:
        failing()
    assert events[0]["error_message"] == "GET https://api.test/v1/items failed"


async def test_http_status_failures_carry_status_and_per_host_key(origin: Origin) -> None:
    """Over HTTP, retry and per-host breaker events carry the status, the host as key, and METHOD host."""
    for _ in range(4):
        origin.script("/items/1", Reply(503))
    host = httpx.URL(origin.url).netloc.decode()
    policy = rs.pipeline(
        rs.Retry(attempts=2, backoff=rs.Constant(0), on=rs.http.statuses(503), clock=FakeClock()),
        rs.http.per_host(lambda: rs.CircuitBreaker(failure_threshold=2, on=rs.http.statuses(503))),
    )
    with rs.http.client(policy, base_url=origin.url) as client, capture_events() as events:
        client.get("/items/1?token=s3cret")
        with pytest.raises(rs.CircuitOpenError):
            client.get("/items/1")
    names = [e["event"] for e in events]
    assert names == ["retry.attempt", "breaker.opened", "retry.gave_up", "breaker.rejected"]
    attempt, opened, gave_up, rejected = events
    assert attempt["status"] == gave_up["status"] == opened["status"] == 503
    assert attempt["error"] is None and attempt["error_message"] is None
    assert opened["key"] == rejected["key"] == host  # the per-host breaker tells which host
    assert attempt["key"] is None  # the retry is outside the partition
    assert {e["operation"] for e in events} == {f"GET {host}"}
