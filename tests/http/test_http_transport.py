"""The resilient transports with mocked origins (respx): replay rules, Retry-After,
closing, deadlines, keys. Every case runs through the sync and the async transport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
import respx

import resilient as rs
from resilient.core.context import Context, current_deadline
from resilient.testing import FakeClock, capture_events
from tests.http.origin import Caller

BASE = "https://api.test"
MODES = ["sync", "async"]


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_called=False)


@contextlib.asynccontextmanager
async def caller(mode: str, policy: rs.Policy, router: respx.Router, **kwargs: Any) -> AsyncIterator[Caller]:
    c = Caller.make(mode, policy, transport=httpx.MockTransport(router.handler), base_url=BASE, **kwargs)
    try:
        yield c
    finally:
        await c.aclose()


def retry(clock: FakeClock | None = None, **kwargs: Any) -> rs.Retry:
    kwargs.setdefault("attempts", 3)
    return rs.Retry(on=rs.http.RETRYABLE, clock=clock or FakeClock(), **kwargs)


class Spy(rs.Policy):
    """Records what the policy sees of each call."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...], str | None]] = []

    def bind(self, inner: Callable[[Context], Any]) -> Callable[[Context], Any]:
        def step(ctx: Context) -> Any:
            self.seen.append((ctx.operation, ctx.args, getattr(ctx, "key", None)))
            return inner(ctx)

        return step

    def abind(self, inner: Callable[[Context], Awaitable[Any]]) -> Callable[[Context], Awaitable[Any]]:
        async def step(ctx: Context) -> Any:
            self.seen.append((ctx.operation, ctx.args, getattr(ctx, "key", None)))
            return await inner(ctx)

        return step


class Tracked(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that records whether it was closed."""

    def __init__(self, body: bytes = b"body") -> None:
        self.body = body
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("mode", MODES)
async def test_get_is_retried_through_503s(mode: str, router: respx.Router) -> None:
    """GET answered 503, 503, 200 returns the 200 after three origin calls."""
    route = router.get("/items").mock(side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200)])
    async with caller(mode, retry(), router) as c:
        response = await c.get("/items")
    assert response.status_code == 200
    assert route.call_count == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_request_is_not_retried(mode: str, method: str, router: respx.Router) -> None:
    """POST/PATCH answered 503 is called once and its 503 returned."""
    route = router.route(method=method, path="/orders").mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    async with caller(mode, retry(), router) as c:
        with capture_events() as events:
            response = await c.request(method, "/orders", json={"n": 1})
    assert response.status_code == 503
    assert route.call_count == 1
    assert [e["reason"] for e in events if e["event"] == "retry.gave_up"] == ["not_replayable"]


@pytest.mark.parametrize("mode", MODES)
async def test_post_with_idempotency_key_is_retried(mode: str, router: respx.Router) -> None:
    """POST with an Idempotency-Key header is retried like a GET."""
    route = router.post("/orders").mock(side_effect=[httpx.Response(503), httpx.Response(201)])
    async with caller(mode, retry(), router) as c:
        response = await c.request("POST", "/orders", json={"n": 1}, headers={"Idempotency-Key": "order-1"})
    assert response.status_code == 201
    assert route.call_count == 2


@pytest.mark.parametrize("mode", MODES)
async def test_post_connect_error_is_raised_after_one_attempt(mode: str, router: respx.Router) -> None:
    """A POST whose attempt fails to connect raises the error without a second attempt."""
    route = router.post("/orders").mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(201)])
    async with caller(mode, retry(), router) as c:
        with pytest.raises(httpx.ConnectError):
            await c.request("POST", "/orders", content=b"x")
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_get_connect_error_is_retried(mode: str, router: respx.Router) -> None:
    """A GET whose first attempt fails to connect is retried."""
    route = router.get("/items").mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200)])
    async with caller(mode, retry(), router) as c:
        assert (await c.get("/items")).status_code == 200
    assert route.call_count == 2


@pytest.mark.parametrize("mode", MODES)
async def test_streaming_body_is_never_retried(mode: str, router: respx.Router) -> None:
    """A PUT whose body streams from a generator is sent once, even with an Idempotency-Key."""
    route = router.put("/blob").mock(side_effect=[httpx.Response(503), httpx.Response(200)])

    def chunks() -> Iterator[bytes]:
        yield b"part"

    async def achunks() -> AsyncIterator[bytes]:
        yield b"part"

    async with caller(mode, retry(), router) as c:
        body = chunks() if mode == "sync" else achunks()
        response = await c.request("PUT", "/blob", content=body, headers={"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_replaces_the_backoff(mode: str, status: int, router: respx.Router) -> None:
    """Retry-After: 1 on a 429/503 makes the retry wait 1 s, not the backoff's 30 s."""
    clock = FakeClock()
    router.get("/items").mock(side_effect=[httpx.Response(status, headers={"Retry-After": "1"}), httpx.Response(200)])
    async with caller(mode, retry(clock, backoff=rs.Constant(30)), router) as c:
        assert (await c.get("/items")).status_code == 200
    assert clock.monotonic() == pytest.approx(1.0)


@pytest.mark.parametrize("mode", MODES)
async def test_retry_after_http_date_is_read_against_the_wall_clock(mode: str, router: respx.Router) -> None:
    """Retry-After as an HTTP date waits until that date."""
    clock = FakeClock()
    when = formatdate(clock.time() + 7, usegmt=True)
    router.get("/items").mock(side_effect=[httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200)])
    async with caller(mode, retry(clock, backoff=rs.Constant(30)), router) as c:
        assert (await c.get("/items")).status_code == 200
    assert clock.monotonic() == pytest.approx(7.0)


@pytest.mark.parametrize("mode", MODES)
async def test_operation_and_key_are_the_requests(mode: str, router: respx.Router) -> None:
    """The policy sees "METHOD host" as operation, no arguments, and the request key as ctx.key."""
    router.get("/items").mock(return_value=httpx.Response(200))
    spy = Spy()
    async with caller(mode, spy, router) as c:
        await c.get("/items?page=2", headers={"Authorization": "Bearer secret"})
    [(operation, args, key)] = spy.seen
    assert operation == "GET api.test"
    assert args == ()
    assert key is not None
    assert key.startswith("GET api.test/items ~")
    assert " #" in key
    assert "secret" not in key
    assert "page" not in key


@pytest.mark.parametrize("mode", MODES)
async def test_a_response_discarded_by_a_retry_is_closed_first(mode: str, router: respx.Router) -> None:
    """A 200 that the predicate rejects is closed before the next attempt is sent."""
    first, second = Tracked(), Tracked()
    streams = iter([first, second])
    closed_before_retry: list[bool] = []

    def answer(request: httpx.Request) -> httpx.Response:
        stream = next(streams)
        if stream is second:
            closed_before_retry.append(first.closed)
        return httpx.Response(200, headers={"X-Stale": "1"} if stream is first else {}, stream=stream)

    router.get("/items").mock(side_effect=answer)
    stale = rs.results(lambda r: r.headers.get("x-stale") == "1")
    async with caller(mode, rs.Retry(on=stale, clock=FakeClock()), router) as c:
        response = await c.get("/items")
        assert response.text == "body"
    assert closed_before_retry == [True]


class SleepSpy(FakeClock):
    """A fake clock that runs a check whenever a policy sleeps on it."""

    def __init__(self, check: Callable[[], Any]) -> None:
        super().__init__()
        self.check = check
        self.seen: list[Any] = []

    def sleep(self, seconds: float) -> None:
        self.seen.append(self.check())
        super().sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self.seen.append(self.check())
        await super().asleep(seconds)


@pytest.mark.parametrize("mode", MODES)
async def test_an_error_response_is_read_and_closed_before_the_backoff(mode: str, router: respx.Router) -> None:
    """A 503's body is read and its stream closed before the backoff sleep; the last one stays readable."""
    streams = [Tracked(b"busy-1"), Tracked(b"busy-2")]
    router.get("/items").mock(side_effect=[httpx.Response(503, stream=s) for s in streams])
    clock = SleepSpy(lambda: streams[0].closed)
    async with caller(mode, rs.Retry(attempts=2, on=rs.http.RETRYABLE, clock=clock), router) as c:
        response = await c.get("/items")
    assert clock.seen == [True]
    assert all(s.closed for s in streams)
    assert response.status_code == 503
    assert response.text == "busy-2"


@pytest.mark.parametrize("mode", MODES)
async def test_a_pipeline_that_raises_closes_the_last_response(mode: str, router: respx.Router) -> None:
    """When a policy raises after an attempt, the attempt's response is closed."""
    body = Tracked()
    router.get("/items").mock(return_value=httpx.Response(200, stream=body))

    class Boom(Spy):
        def bind(self, inner: Callable[[Context], Any]) -> Callable[[Context], Any]:
            def step(ctx: Context) -> Any:
                inner(ctx)
                raise LookupError("policy failed")

            return step

        def abind(self, inner: Callable[[Context], Awaitable[Any]]) -> Callable[[Context], Awaitable[Any]]:
            async def step(ctx: Context) -> Any:
                await inner(ctx)
                raise LookupError("policy failed")

            return step

    async with caller(mode, Boom(), router) as c:
        with pytest.raises(LookupError):
            await c.get("/items")
    assert body.closed


@pytest.mark.parametrize("mode", MODES)
async def test_a_policy_returning_a_non_response_is_a_type_error(mode: str, router: respx.Router) -> None:
    """A policy that replaces the response with another value fails loudly."""
    router.get("/items").mock(return_value=httpx.Response(200))
    async with caller(mode, rs.Retry(), router) as c:

        class Replace(Spy):
            def bind(self, inner: Callable[[Context], Any]) -> Callable[[Context], Any]:
                return lambda ctx: "not a response"

            def abind(self, inner: Callable[[Context], Awaitable[Any]]) -> Callable[[Context], Awaitable[Any]]:
                async def step(ctx: Context) -> Any:
                    return "not a response"

                return step

        bad = Caller.make(mode, Replace(), transport=httpx.MockTransport(router.handler), base_url=BASE)
        try:
            with pytest.raises(TypeError, match="returned str"):
                await bad.get("/items")
        finally:
            await bad.aclose()
        assert (await c.get("/items")).status_code == 200


async def timeouts_seen(mode: str, router: respx.Router, *, deadline: float, attempt_takes: float) -> list[Any]:
    """The httpx timeouts each of two attempts carried (a 503, then a 200; httpx's own 5 s),
    inside a deadline ``deadline`` s away, each attempt taking ``attempt_takes`` s on a FakeClock."""
    clock = FakeClock()
    seen: list[dict[str, float | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        clock.advance(attempt_takes)
        return httpx.Response(503 if len(seen) == 1 else 200)

    router.get("/items").mock(side_effect=answer)
    token = current_deadline.set(clock.monotonic() + deadline)
    try:
        async with caller(mode, retry(clock, backoff=rs.Constant(0.5)), router, clock=clock, timeout=5.0) as c:
            assert (await c.get("/items")).status_code == 200
    finally:
        current_deadline.reset(token)
    return seen


@pytest.mark.parametrize("mode", MODES)
async def test_the_deadline_cuts_each_attempts_timeouts(mode: str, router: respx.Router) -> None:
    """Inside a deadline, every httpx timeout of the attempt is cut to the time left."""
    seen = await timeouts_seen(mode, router, deadline=2.5, attempt_takes=1.0)
    assert seen == [dict.fromkeys(("connect", "read", "write", "pool"), 2.5), dict.fromkeys(seen[1], 1.0)]


@pytest.mark.parametrize("mode", MODES)
async def test_timeouts_that_end_before_the_deadline_are_left_as_they_are(mode: str, router: respx.Router) -> None:
    """A far deadline leaves the attempt's own timeouts untouched; once the time left is
    shorter than them, a later attempt's are cut from the request's own (not the earlier cut)."""
    seen = await timeouts_seen(mode, router, deadline=10.0, attempt_takes=8.0)
    assert seen == [dict.fromkeys(("connect", "read", "write", "pool"), 5.0), dict.fromkeys(seen[0], 1.5)]


@pytest.mark.parametrize("mode", MODES)
async def test_a_passed_deadline_sends_nothing(mode: str, router: respx.Router) -> None:
    """With the deadline already passed, the request raises TimeoutExceeded without reaching the origin."""
    clock = FakeClock()
    route = router.get("/items").mock(return_value=httpx.Response(200))
    token = current_deadline.set(clock.monotonic())
    try:
        async with caller(mode, rs.Retry(clock=clock), router, clock=clock) as c:
            with pytest.raises(rs.TimeoutExceeded):
                await c.get("/items")
    finally:
        current_deadline.reset(token)
    assert route.call_count == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("deadline", "raised"), [(2.0, rs.TimeoutExceeded), (100.0, httpx.ReadTimeout)])
async def test_a_timeout_caused_by_the_deadline_is_timeout_exceeded(
    mode: str, deadline: float, raised: type[Exception], router: respx.Router
) -> None:
    """A read timeout the deadline shortened raises TimeoutExceeded from it; one it did not stays httpx's."""
    clock = FakeClock()
    router.get("/items").mock(side_effect=httpx.ReadTimeout("slow"))
    token = current_deadline.set(clock.monotonic() + deadline)
    try:
        async with caller(mode, rs.Retry(attempts=1, clock=clock), router, clock=clock, timeout=5.0) as c:
            with pytest.raises(raised) as info:
                await c.get("/items")
    finally:
        current_deadline.reset(token)
    if raised is rs.TimeoutExceeded:
        assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_arguments_are_checked() -> None:
    """Wrong policy, transport or clock types raise TypeError naming the argument."""
    with pytest.raises(TypeError, match="policy"):
        rs.ResilientTransport(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="transport"):
        rs.ResilientTransport(rs.Retry(), transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="transport"):
        rs.AsyncResilientTransport(rs.Retry(), transport=httpx.HTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        rs.ResilientTransport(rs.Retry(), clock=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limits"):
        rs.http.client(rs.Retry(), transport=httpx.HTTPTransport(), limits=httpx.Limits())


def test_the_client_builds_its_inner_transport_from_transport_options() -> None:
    """client() hands limits and friends to the inner transport it wraps."""
    with rs.http.client(rs.Retry(), limits=httpx.Limits(max_connections=3), base_url=BASE) as c:
        transport = c._transport
        assert isinstance(transport, rs.ResilientTransport)
        assert isinstance(transport.transport, httpx.HTTPTransport)
        assert transport.transport._pool._max_connections == 3
        assert str(c.base_url) == BASE


async def test_closing_the_transports_closes_the_inner_ones() -> None:
    """Closing a resilient transport closes the transport it wraps."""
    closed: list[str] = []

    class Inner(httpx.MockTransport):
        def close(self) -> None:
            closed.append("sync")

        async def aclose(self) -> None:
            closed.append("async")

    handler = respx.Router().handler
    rs.ResilientTransport(rs.Retry(), Inner(handler)).close()
    await rs.AsyncResilientTransport(rs.Retry(), Inner(handler)).aclose()
    assert closed == ["sync", "async"]
