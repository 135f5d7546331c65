"""The transports with the other policies: per-host breakers, Timeout, Cache and
Coalesce. Every case runs through the sync and the async transport."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

import resilient as rs
from resilient.stores.memory import MemoryStore
from resilient.testing import FakeClock
from tests.conftest import gather_all, run_threads
from tests.http.origin import Caller, Origin, Reply

MODES = ["sync", "async"]


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def caller(mode: str, policy: rs.Policy, **kwargs: Any) -> AsyncIterator[Caller]:
    c = Caller.make(mode, policy, **kwargs)
    try:
        yield c
    finally:
        await c.aclose()


class JSON:
    """A serializer that proves cached values are JSON-safe (as a Redis store needs)."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def json_cache(**kwargs: Any) -> rs.Cache:
    return rs.Cache(ttl=60, store=MemoryStore(serializer=JSON()), clock=FakeClock(), **kwargs)


# -- per-host isolation --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_breaker_opened_by_one_host_leaves_the_other_alone(mode: str) -> None:
    """Host A's failures open A's breaker only: A is refused without a call while B still answers."""
    router = respx.Router(assert_all_called=False)
    a = router.get("https://a.test/x").mock(return_value=httpx.Response(503))
    b = router.get("https://b.test/x").mock(return_value=httpx.Response(200))
    clock = FakeClock()
    per_host = rs.http.per_host(lambda: rs.CircuitBreaker(failure_threshold=2, on=rs.http.RETRYABLE, clock=clock))
    async with caller(mode, per_host, transport=httpx.MockTransport(router.handler)) as c:
        assert [(await c.get("https://a.test/x")).status_code for _ in range(2)] == [503, 503]
        with pytest.raises(rs.CircuitOpenError):
            await c.get("https://a.test/x")
        assert [(await c.get("https://b.test/x")).status_code for _ in range(3)] == [200, 200, 200]
    assert a.call_count == 2
    assert b.call_count == 3
    assert per_host.get("a.test").state == "open"  # type: ignore[union-attr]
    assert per_host.get("b.test").state == "closed"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_per_host_isolates_real_servers_by_port(mode: str) -> None:
    """Two loopback servers on two ports get two breakers: one failing server does not stop the other."""
    with contextlib.closing(Origin().start()) as bad, contextlib.closing(Origin().start()) as good:
        bad.script("/x", *[Reply(503)] * 5)
        per_host = rs.http.per_host(lambda: rs.CircuitBreaker(failure_threshold=1, on=rs.http.RETRYABLE))
        async with caller(mode, per_host) as c:
            assert (await c.get(f"{bad.url}/x")).status_code == 503
            with pytest.raises(rs.CircuitOpenError):
                await c.get(f"{bad.url}/x")
            assert (await c.get(f"{good.url}/x")).status_code == 200
    assert bad.hits["/x"] == 1
    assert sorted(per_host.keys()) == sorted(u.removeprefix("http://") for u in (bad.url, good.url))


def test_per_host_checks_its_arguments() -> None:
    """per_host() names a factory that is not callable and a bad maxsize."""
    with pytest.raises(TypeError, match="factory"):
        rs.http.per_host(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxsize"):
        rs.http.per_host(lambda: rs.Bulkhead(1), maxsize=0)


# -- Timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_timeout_cuts_the_attempts_timeouts(mode: str) -> None:
    """Inside rs.Timeout(2.5), an attempt's httpx timeouts are cut from 30 s to 2.5 s."""
    clock = FakeClock()
    seen: list[dict[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200)

    policy = rs.pipeline(rs.Timeout(2.5, clock=clock), rs.Retry(clock=clock))
    async with caller(mode, policy, transport=httpx.MockTransport(answer), clock=clock, timeout=30.0) as c:
        assert (await c.get("https://a.test/x")).status_code == 200
    assert seen == [dict.fromkeys(("connect", "read", "write", "pool"), 2.5)]


@pytest.mark.parametrize("mode", MODES)
async def test_timeout_bounds_a_request_the_origin_holds(mode: str, origin: Origin) -> None:
    """rs.Timeout(0.3) around a request the origin holds raises TimeoutExceeded in well under its 30 s timeout."""
    origin.script("/slow", Reply(200, hold=True), Reply(200, hold=True))
    policy = rs.pipeline(rs.Timeout(0.3), rs.Retry(on=rs.http.RETRYABLE))
    started = time.monotonic()
    async with caller(mode, policy, base_url=origin.url, timeout=30.0) as c:
        with pytest.raises(rs.TimeoutExceeded) as info:
            await c.get("/slow")
        origin.release.set()
    assert time.monotonic() - started < 5.0
    if mode == "sync":
        assert isinstance(info.value.__cause__, httpx.ReadTimeout)


# -- Cache ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_cache_serves_a_get_from_one_origin_call(mode: str, origin: Origin) -> None:
    """Three GETs through a Cache reach the origin once and each get its own equal response."""
    origin.script("/item", Reply(200, b'{"id": 1}', {"Content-Type": "application/json", "X-Tag": "v1"}))
    cache = json_cache()
    async with caller(mode, rs.pipeline(cache, rs.Retry()), base_url=origin.url) as c:
        responses = [await c.get("/item") for _ in range(3)]
    assert origin.hits["/item"] == 1
    assert [r.json() for r in responses] == [{"id": 1}] * 3
    assert [r.headers["x-tag"] for r in responses] == ["v1"] * 3
    assert len({id(r) for r in responses}) == 3
    assert cache.stats()["hits"] == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (Reply(503, b"busy"), "an error status"),
        (Reply(200, b"mine", {"Cache-Control": "private, max-age=60"}), "private"),
        (Reply(200, b"secret", {"Cache-Control": "no-store"}), "no-store"),
    ],
)
async def test_cache_stores_only_storable_responses(mode: str, first: Reply, reason: str, origin: Origin) -> None:
    """A 503, a private or a no-store response is returned but not stored; the next GET goes to the origin."""
    origin.script("/item", first, Reply(200, b"fresh"))
    async with caller(mode, json_cache(stale_if_error=False), base_url=origin.url) as c:
        assert (await c.get("/item")).content == first.body, reason
        assert (await c.get("/item")).content == b"fresh"
        assert (await c.get("/item")).content == b"fresh"
    assert origin.hits["/item"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_cache_statuses_are_configurable(mode: str, origin: Origin) -> None:
    """Wrapped in SharedResponses(statuses=...), a cache stores a 404 too."""
    origin.script("/gone", Reply(404, b"no such item"))
    policy = rs.http.SharedResponses(json_cache(), statuses=[200, 404])
    async with caller(mode, policy, base_url=origin.url) as c:
        assert [(await c.get("/gone")).status_code for _ in range(2)] == [404, 404]
    assert origin.hits["/gone"] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cache_keeps_users_apart(mode: str, origin: Origin) -> None:
    """Responses are cached per credentials: two users, two origin calls; the same user again, none."""
    async with caller(mode, json_cache(), base_url=origin.url) as c:
        for token in ("alice", "bob", "alice", "bob"):
            await c.get("/me", headers={"Authorization": f"Bearer {token}"})
        await c.get("/me", headers={"Cookie": "session=carol"})
    assert origin.hits["/me"] == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_cache_never_stores_other_methods(mode: str, method: str, origin: Origin) -> None:
    """Requests other than GET and HEAD pass the cache by."""
    async with caller(mode, json_cache(), base_url=origin.url) as c:
        for _ in range(2):
            await c.request(method, "/item", content=b"x")
    assert origin.hits["/item"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_request_no_cache_skips_the_cache(mode: str, origin: Origin) -> None:
    """A request with Cache-Control: no-cache goes to the origin even when a value is cached."""
    async with caller(mode, json_cache(), base_url=origin.url) as c:
        await c.get("/item")
        await c.get("/item", headers={"Cache-Control": "no-cache"})
        await c.get("/item")
    assert origin.hits["/item"] == 2


# -- 200 concurrent identical GETs ----------------------------------------------------


def _release_after(origin: Origin, joined: int) -> Any:
    """A listener that lets the origin answer once ``joined`` callers joined a shared call."""
    count = 0
    lock = threading.Lock()

    def listener(event: dict[str, Any]) -> None:
        nonlocal count
        if event["event"] == "coalesce.joined":
            with lock:
                count += 1
                if count == joined:
                    origin.release.set()

    return listener


@pytest.mark.parametrize("sharing", ["cache", "coalesce"])
@pytest.mark.parametrize("users", [1, 2])
def test_200_threads_reach_the_origin_once_per_user(sharing: str, users: int, origin: Origin) -> None:
    """200 threads GETting one URL through Cache or Coalesce make one origin call per distinct Authorization."""
    origin.script("/hot", *[Reply(200, b"hot", hold=True)] * users)
    policy = json_cache() if sharing == "cache" else rs.Coalesce()
    listener = _release_after(origin, 200 - users)
    rs.add_listener(listener)
    try:
        with rs.http.client(policy, base_url=origin.url, timeout=30.0) as client:

            def one(i: int) -> tuple[int, str]:
                response = client.get("/hot", headers={"Authorization": f"Bearer user-{i % users}"})
                return response.status_code, response.text

            results = run_threads(200, one, timeout=60)
    finally:
        rs.remove_listener(listener)
    assert results == [(200, "hot")] * 200
    assert origin.hits["/hot"] == users


@pytest.mark.parametrize("sharing", ["cache", "coalesce"])
@pytest.mark.parametrize("users", [1, 2])
async def test_200_tasks_reach_the_origin_once_per_user(sharing: str, users: int, origin: Origin) -> None:
    """200 tasks GETting one URL through Cache or Coalesce make one origin call per distinct Authorization."""
    origin.script("/hot", *[Reply(200, b"hot", hold=True)] * users)
    policy = json_cache() if sharing == "cache" else rs.Coalesce()
    listener = _release_after(origin, 200 - users)
    rs.add_listener(listener)
    try:
        async with rs.http.async_client(policy, base_url=origin.url, timeout=30.0) as client:

            async def one(i: int) -> tuple[int, str]:
                response = await client.get("/hot", headers={"Authorization": f"Bearer user-{i % users}"})
                return response.status_code, response.text

            results = await gather_all(*(one(i) for i in range(200)))
    finally:
        rs.remove_listener(listener)
    assert results == [(200, "hot")] * 200
    assert origin.hits["/hot"] == users


@pytest.mark.parametrize("mode", MODES)
async def test_request_of_gives_custom_keys_the_request(mode: str) -> None:
    """rs.http.request_of(ctx) lets a PerKey key requests by path; host_key and request_of pass other calls by."""
    router = respx.Router(assert_all_called=False)
    router.get(url__regex=r"https://a\.test/.*").mock(return_value=httpx.Response(200))

    def path_of(ctx: rs.Context) -> str:
        request = rs.http.request_of(ctx)
        assert request is not None
        return request.url.path

    per_path = rs.PerKey(lambda: rs.Bulkhead(5), key=path_of)
    async with caller(mode, per_path, transport=httpx.MockTransport(router.handler)) as c:
        for path in ("/a", "/b", "/a"):
            await c.get(f"https://a.test{path}")
    assert per_path.keys() == ["/b", "/a"]
    plain = rs.Context("tasks.compute", len, ("x",))
    assert rs.http.request_of(plain) is None
    assert rs.http.host_key(plain) == "tasks.compute"


@pytest.mark.parametrize("mode", MODES)
async def test_cache_serves_stale_when_the_origin_answers_an_error(mode: str, origin: Origin) -> None:
    """An expired entry whose refresh gets a 503 is served stale (stale-if-error), and the 503 is not stored."""
    clock = FakeClock()
    origin.script("/item", Reply(200, b"v1"), Reply(503, b"busy"), Reply(200, b"v2"))
    cache = rs.Cache(ttl=10, ttl_jitter=0, serve_stale=False, store=MemoryStore(serializer=JSON()), clock=clock)
    async with caller(mode, cache, base_url=origin.url) as c:
        assert (await c.get("/item")).text == "v1"
        clock.advance(11)
        stale = await c.get("/item")
        assert (stale.status_code, stale.text) == (200, "v1")
        assert (await c.get("/item")).text == "v2"
    assert origin.hits["/item"] == 3
    assert cache.stats()["stale_served"] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cache_refreshes_a_stale_response_in_the_background(mode: str, origin: Origin) -> None:
    """An expired entry is served at once while the request is sent again in the background; then the new one."""
    clock = FakeClock()
    origin.script("/item", Reply(200, b"v1"), Reply(200, b"v2"))
    cache = rs.Cache(ttl=10, ttl_jitter=0, store=MemoryStore(serializer=JSON()), clock=clock)
    outcomes: list[str] = []
    done = threading.Event()

    def listener(event: dict[str, Any]) -> None:
        if event["event"] in ("cache.refreshed", "cache.refresh_failed"):
            outcomes.append(event["event"])
            done.set()

    rs.add_listener(listener)
    try:
        async with caller(mode, cache, base_url=origin.url) as c:
            assert (await c.get("/item")).text == "v1"
            clock.advance(11)
            assert (await c.get("/item")).text == "v1"
            if mode == "sync":
                assert done.wait(10)
            else:
                assert await asyncio.to_thread(done.wait, 10)
            assert (await c.get("/item")).text == "v2"
    finally:
        rs.remove_listener(listener)
        if mode == "sync":
            cache.close()
        else:
            await cache.aclose()  # no refresh task outlives the test
    assert outcomes == ["cache.refreshed"]
    assert origin.hits["/item"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_the_documented_recipe_works_end_to_end(mode: str, origin: Origin) -> None:
    """The rs.http recipe (cache, timeout, retry, per-host breaker and bulkhead) recovers, caches and isolates."""
    origin.script("/item", Reply(503, headers={"Retry-After": "0"}), Reply(200, b"ok"))
    per_host = rs.http.per_host(lambda: rs.pipeline(rs.CircuitBreaker(on=rs.http.RETRYABLE), rs.Bulkhead(20)))
    policy = rs.pipeline(
        json_cache(),
        rs.Timeout(10),
        rs.Retry(attempts=4, on=rs.http.RETRYABLE, budget=rs.RetryBudget(), clock=FakeClock()),
        per_host,
    )
    async with caller(mode, policy, base_url=origin.url) as c:
        assert [(await c.get("/item")).text for _ in range(3)] == ["ok"] * 3
    assert origin.hits["/item"] == 2
    assert per_host.keys() == [origin.url.removeprefix("http://")]
    stats = policy.stats()
    assert stats["cache"]["hits"] == 2
    assert stats["retry"]["recovered"] == 1
