"""The resilient transports against a real loopback HTTP server: retries, the
connection pool, deadlines, bodies. Every case runs sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import resilient as rs
from resilient.core.context import current_deadline, replay_forbidden
from resilient.testing import FakeClock, capture_events
from tests.conftest import free_port, gather_all, run_threads
from tests.http.origin import Caller, Origin, Reply

MODES = ["sync", "async"]


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    try:
        yield server
    finally:
        server.stop()


def retry(**kwargs: Any) -> rs.Retry:
    kwargs.setdefault("on", rs.http.RETRYABLE)
    return rs.Retry(clock=FakeClock(), **kwargs)


@pytest.mark.parametrize("mode", MODES)
async def test_get_through_two_503s_reaches_the_origin_three_times(mode: str, origin: Origin) -> None:
    """GET answered 503, 503, 200 by a real server returns 200 after 3 hits."""
    origin.script("/items", Reply(503), Reply(503), Reply(200, b"fine"))
    c = Caller.make(mode, retry(), base_url=origin.url)
    try:
        response = await c.get("/items")
    finally:
        await c.aclose()
    assert response.status_code == 200
    assert response.text == "fine"
    assert origin.hits["/items"] == 3


@pytest.mark.parametrize("mode", MODES)
async def test_post_503_reaches_the_origin_once(mode: str, origin: Origin) -> None:
    """POST answered 503 by a real server is sent once and the 503 returned."""
    origin.script("/orders", Reply(503, b"busy"), Reply(201))
    c = Caller.make(mode, retry(), base_url=origin.url)
    try:
        response = await c.request("POST", "/orders", json={"n": 1})
    finally:
        await c.aclose()
    assert response.status_code == 503
    assert response.text == "busy"
    assert origin.hits["/orders"] == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("discarded", ["503", "rejected 200"])
async def test_one_connection_survives_fifty_requests_that_each_retry(
    mode: str, discarded: str, origin: Origin
) -> None:
    """With max_connections=1, 50 sequential GETs that each need one retry finish without a PoolTimeout."""
    first = Reply(503, b"x" * 10_000) if discarded == "503" else Reply(200, b"y" * 10_000, {"X-Stale": "1"})
    for i in range(50):
        origin.script(f"/r{i}", first, Reply(200, b"ok"))
    on = rs.http.RETRYABLE | rs.results(lambda r: r.headers.get("x-stale") == "1")
    c = Caller.make(
        mode,
        retry(on=on),
        base_url=origin.url,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        timeout=httpx.Timeout(5.0, pool=1.0),
    )
    try:
        statuses = [(await c.get(f"/r{i}")).status_code for i in range(50)]
    finally:
        await c.aclose()
    assert statuses == [200] * 50
    assert sum(origin.hits.values()) == 100


@pytest.mark.parametrize("mode", MODES)
async def test_a_deadline_bounds_a_slow_request(mode: str, origin: Origin) -> None:
    """Inside a 0.3 s deadline, a request the origin holds raises TimeoutExceeded from httpx's ReadTimeout."""
    origin.script("/slow", Reply(200, hold=True))
    c = Caller.make(mode, rs.Retry(on=rs.http.RETRYABLE), base_url=origin.url, timeout=30.0)
    started = time.monotonic()
    token = current_deadline.set(started + 0.3)
    try:
        with pytest.raises(rs.TimeoutExceeded) as info:
            await c.get("/slow")
    finally:
        current_deadline.reset(token)
        origin.release.set()
        await c.aclose()
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("mode", MODES)
async def test_a_read_error_body_keeps_its_encoding(mode: str, origin: Origin) -> None:
    """A gzip-encoded 503 body read by the transport still decodes for the caller."""
    busy = Reply(503, gzip.compress(b"come back later"), {"Content-Encoding": "gzip"})
    origin.script("/items", busy, busy)
    c = Caller.make(mode, retry(attempts=2), base_url=origin.url)
    try:
        response = await c.get("/items")
    finally:
        await c.aclose()
    assert response.status_code == 503
    assert response.text == "come back later"


async def test_a_successful_response_still_streams(origin: Origin) -> None:
    """A 200 is handed over unread, so client.stream() streams it."""
    origin.script("/big", Reply(200, b"z" * 100_000), Reply(200, b"z" * 100_000))
    client = rs.http.async_client(retry(), base_url=origin.url)
    async with client, client.stream("GET", "/big") as response:
        assert not response.is_stream_consumed
        size = sum([len(chunk) async for chunk in response.aiter_bytes()])
    assert size == 100_000
    sync_client = rs.http.client(retry(), base_url=origin.url)
    with sync_client, sync_client.stream("GET", "/big") as sync_response:
        assert not sync_response.is_stream_consumed
        assert sum(len(chunk) for chunk in sync_response.iter_bytes()) == 100_000


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("method", "attempts"), [("GET", 3), ("POST", 1)])
async def test_connection_refused_is_retried_only_when_replayable(mode: str, method: str, attempts: int) -> None:
    """A refused connection is retried for GET and raised at once for POST."""
    url = f"http://127.0.0.1:{free_port()}/items"
    c = Caller.make(mode, retry(attempts=3))
    try:
        with capture_events() as events, pytest.raises(httpx.ConnectError) as info:
            await c.request(method, url)
    finally:
        await c.aclose()
    assert info.value.request.url == url
    assert len([e for e in events if e["event"] == "retry.attempt"]) == attempts - 1
    assert {e["operation"] for e in events} == {f"{method} {httpx.URL(url).netloc.decode()}"}


def test_threads_retry_their_own_requests_only() -> None:
    """Concurrent GETs and POSTs in 20 threads: every GET retries through its 503, no POST is retried."""
    with contextlib.closing(Origin().start()) as origin:
        for i in range(20):
            origin.script(f"/t{i}", Reply(503), Reply(200))
        with rs.http.client(retry(), base_url=origin.url) as client:
            barrier = threading.Barrier(20)

            def one(i: int) -> int:
                barrier.wait(10)
                method = "GET" if i % 2 == 0 else "POST"
                return client.request(method, f"/t{i}", content=b"x").status_code

            statuses = run_threads(20, one)
            assert replay_forbidden.get() is None
    assert statuses == [200 if i % 2 == 0 else 503 for i in range(20)]
    assert [origin.hits[f"/t{i}"] for i in range(20)] == [2 if i % 2 == 0 else 1 for i in range(20)]


async def test_tasks_retry_their_own_requests_only(origin: Origin) -> None:
    """Concurrent GETs and POSTs in 20 tasks: every GET retries through its 503, no POST is retried."""
    for i in range(20):
        origin.script(f"/t{i}", Reply(503), Reply(200))
    async with rs.http.async_client(retry(), base_url=origin.url) as client:

        async def one(i: int) -> int:
            method = "GET" if i % 2 == 0 else "POST"
            return (await client.request(method, f"/t{i}", content=b"x")).status_code

        statuses = await gather_all(*(one(i) for i in range(20)))
    assert statuses == [200 if i % 2 == 0 else 503 for i in range(20)]
    assert [origin.hits[f"/t{i}"] for i in range(20)] == [2 if i % 2 == 0 else 1 for i in range(20)]


async def test_a_cancelled_request_leaves_nothing_behind(origin: Origin) -> None:
    """A POST cancelled mid-flight resets the replay guard, and the single pooled connection serves on."""
    origin.script("/slow", Reply(200, hold=True))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with rs.http.async_client(retry(), base_url=origin.url, limits=limits, timeout=5.0) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.post("/slow", content=b"x")
        assert replay_forbidden.get() is None
        origin.release.set()
        assert (await client.get("/after")).status_code == 200


def test_a_failed_post_resets_the_replay_guard() -> None:
    """After a POST that raised, the calling context may retry again."""
    with rs.http.client(retry()) as client, pytest.raises(httpx.ConnectError):
        client.post(f"http://127.0.0.1:{free_port()}/x", content=b"x")
    assert replay_forbidden.get() is None
