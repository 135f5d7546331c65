"""The response cache by RFC 9111 (hishel decides), against a real loopback origin.

No cross-user sharing first (sync and async, Memory and Redis stores), then
freshness, revalidation and undecodable records.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.memory import MemoryStore
from resilient.testing import FakeClock, capture_events

from .origin import Caller, Origin, Reply

MODES = ["sync", "async"]
STORES = ["memory", "redis"]


class JSON:
    """A serializer that proves records are JSON-safe (as a Redis store needs)."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def make_store(kind: str, mode: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if kind == "memory":
        yield MemoryStore(serializer=JSON())
        return
    redis_url = request.getfixturevalue("redis_url")
    from resilient.stores.redis import RedisStore

    from ..redis.conftest import async_client, sync_client

    client = sync_client(redis_url) if mode == "sync" else async_client(redis_url)
    try:
        yield RedisStore(client)
    finally:
        if mode == "sync":
            client.close()
        else:
            await client.aclose()  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def caller(mode: str, policy: rs.Policy, **kwargs: Any) -> AsyncIterator[Caller]:
    c = Caller.make(mode, policy, **kwargs)
    try:
        yield c
    finally:
        await c.aclose()
        cache = policy if isinstance(policy, rs.Cache) else None
        if cache is not None:
            if mode == "sync":
                cache.close()
            else:
                await cache.aclose()


def cache_on(store: Any, **kwargs: Any) -> rs.Cache:
    kwargs.setdefault("clock", FakeClock())
    return rs.Cache(ttl=60, store=store, **kwargs)


# -- no cross-user sharing --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_set_cookie_response_reaches_only_its_caller(
    mode: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """A response carrying Set-Cookie for anonymous user 1 is never served to user 2."""
    origin.script(
        "/home",
        Reply(200, b"hello 1", {"Set-Cookie": "session=sess-of-caller-1", "Cache-Control": "max-age=60"}),
        Reply(200, b"hello 2", {"Set-Cookie": "session=sess-of-caller-2", "Cache-Control": "max-age=60"}),
    )
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        one = await c.get("/home")
        two = await c.get("/home")
    assert one.headers["set-cookie"] == "session=sess-of-caller-1"
    assert two.headers["set-cookie"] == "session=sess-of-caller-2"
    assert origin.hits["/home"] == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("header", ["Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key"])
async def test_differing_credentials_never_share(
    mode: str, header: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """Requests differing only in a credential header get their own responses; the same one again is a hit."""
    origin.script("/me", Reply(200, b"for=alice-key"), Reply(200, b"for=bob-key"))
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        alice = await c.get("/me", headers={header: "alice-key"})
        bob = await c.get("/me", headers={header: "bob-key"})
        alice_again = await c.get("/me", headers={header: "alice-key"})
        anonymous = await c.get("/me")
    assert (alice.content, bob.content, alice_again.content) == (b"for=alice-key", b"for=bob-key", b"for=alice-key")
    assert anonymous.content == b"ok"
    assert origin.hits["/me"] == 3


@pytest.mark.parametrize("mode", MODES)
async def test_vary_keeps_variants_apart(
    mode: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """Vary: Accept-Language: the French user gets French, the English user English; each is then cached."""
    vary = {"Vary": "Accept-Language", "Cache-Control": "max-age=60"}
    origin.script("/greet", Reply(200, b"bonjour", vary), Reply(200, b"hello", vary))
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        fr = await c.get("/greet", headers={"Accept-Language": "fr"})
        en = await c.get("/greet", headers={"Accept-Language": "en"})
        again = [(await c.get("/greet", headers={"Accept-Language": lang})).content for lang in ("fr", "en", "fr")]
    assert (fr.content, en.content) == (b"bonjour", b"hello")
    assert again == [b"bonjour", b"hello", b"bonjour"]
    assert origin.hits["/greet"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_vary_on_a_credential_header_keeps_callers_apart(
    mode: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """Vary: X-Api-Key (or Authorization): bob never gets alice's response, and no record holds a key."""
    vary = {"Vary": "X-Api-Key, Authorization", "Cache-Control": "public, max-age=60"}
    origin.script("/v", Reply(200, b"for=alice", vary), Reply(200, b"for=bob", vary))
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        a = await c.get("/v", headers={"X-Api-Key": "alice-SECRET", "Authorization": "Bearer alice-SECRET"})
        b = await c.get("/v", headers={"X-Api-Key": "bob-SECRET", "Authorization": "Bearer bob-SECRET"})
        a2 = await c.get("/v", headers={"X-Api-Key": "alice-SECRET", "Authorization": "Bearer alice-SECRET"})
        dump = await stored_text(store, mode)
    assert (a.content, b.content, a2.content) == (b"for=alice", b"for=bob", b"for=alice")
    assert origin.hits["/v"] == 2
    assert "SECRET" not in dump


@pytest.mark.parametrize("mode", MODES)
async def test_vary_star_is_never_shared(
    mode: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """A response with Vary: * is neither stored nor handed to another caller."""
    origin.script(
        "/star", *[Reply(200, f"n{i}".encode(), {"Vary": "*", "Cache-Control": "max-age=60"}) for i in range(3)]
    )
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        bodies = [(await c.get("/star")).content for _ in range(3)]
    assert bodies == [b"n0", b"n1", b"n2"]
    assert origin.hits["/star"] == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("directive", ["no-store", "private, max-age=60"])
async def test_no_store_and_private_are_never_stored(
    mode: str, directive: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """no-store and private responses reach their caller and are not stored."""
    origin.script(
        "/p", Reply(200, b"one", {"Cache-Control": directive}), Reply(200, b"two", {"Cache-Control": directive})
    )
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        bodies = [(await c.get("/p")).content for _ in range(2)]
    assert bodies == [b"one", b"two"]


async def stored_text(store: Any, mode: str) -> str:
    """Everything a store holds (keys and records), as text."""
    if isinstance(store, MemoryStore):
        return repr(store._data)  # test-only look inside
    client = store._client if mode == "sync" else store._aclient  # test-only look inside
    parts: list[str] = []
    if mode == "sync":
        for key in client.scan_iter("*"):
            parts.append(repr(key))
            if client.type(key) == b"string":
                parts.append(repr(client.get(key)))
    else:
        async for key in client.scan_iter("*"):
            parts.append(repr(key))
            if await client.type(key) == b"string":
                parts.append(repr(await client.get(key)))
    return "\n".join(parts)


@pytest.mark.parametrize("mode", MODES)
async def test_no_query_string_or_credential_in_keys_records_or_events(
    mode: str, store_kind: str, origin: Origin, request: pytest.FixtureRequest
) -> None:
    """Query-string and header credentials appear in no event, store key or stored record."""
    origin.script("/me7", Reply(200, b"profile", {"Cache-Control": "max-age=60", "ETag": '"e1"'}))
    async with make_store(store_kind, mode, request) as store, caller(mode, cache_on(store), base_url=origin.url) as c:
        with capture_events() as events:
            for _ in range(2):
                await c.get("/me7?api_key=alice-SECRET", headers={"Authorization": "Basic YWxpY2U6U0VDUkVU"})
        dump = await stored_text(store, mode)
    assert origin.hits["/me7"] == 1
    assert events, "the cache emitted its events"
    text = repr(events) + dump
    assert "SECRET" not in text
    assert "api_key" not in text
    assert "YWxpY2U6U0VDUkVU" not in text


async def test_coalesced_waiters_never_get_a_set_cookie_response(origin: Origin) -> None:
    """Concurrent anonymous callers coalesced on one miss each send their own request when it sets a cookie."""
    origin.script("/login", Reply(200, b"first", {"Set-Cookie": "session=one"}, hold=True))
    cache = cache_on(MemoryStore(serializer=JSON()))
    joined = asyncio.Event()
    count = 0

    def listener(event: dict[str, Any]) -> None:
        nonlocal count
        if event["event"] == "coalesce.joined":
            count += 1
            if count == 4:
                joined.set()

    rs.add_listener(listener)
    try:
        async with caller("async", cache, base_url=origin.url) as c:
            tasks = [asyncio.ensure_future(c.get("/login")) for _ in range(5)]
            try:
                await asyncio.wait_for(joined.wait(), 10)
                origin.release.set()
                responses = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        rs.remove_listener(listener)
    cookies = [r.headers.get("set-cookie") for r in responses]
    assert cookies.count("session=one") == 1
    assert origin.hits["/login"] == 5


@pytest.mark.parametrize("mode", MODES)
async def test_coalesce_never_shares_across_vary(mode: str, origin: Origin) -> None:
    """Coalesce too: a waiter whose Vary'd header differs from the leader's sends its own request."""
    vary = {"Vary": "Accept-Language"}
    origin.script("/c", Reply(200, b"bonjour", vary), Reply(200, b"hello", vary))
    async with caller(mode, rs.Coalesce(), base_url=origin.url) as c:
        fr = await c.get("/c", headers={"Accept-Language": "fr"})
        en = await c.get("/c", headers={"Accept-Language": "en"})
    assert (fr.content, en.content) == (b"bonjour", b"hello")


# -- freshness by RFC 9111 -----------------------------------------------------------------


def strict_cache(clock: FakeClock, **kwargs: Any) -> rs.Cache:
    """No policy stale window: what the response says decides."""
    kwargs.setdefault("stale_ttl", 0)
    return rs.Cache(ttl=60, ttl_jitter=0, store=MemoryStore(serializer=JSON()), clock=clock, **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "headers",
    [
        {"Cache-Control": "max-age=5"},
        {"Cache-Control": "s-maxage=5, max-age=600"},
        {"Expires": "in 5 s"},
    ],
)
async def test_the_response_sets_its_freshness(mode: str, headers: dict[str, str], origin: Origin) -> None:
    """max-age, s-maxage (winning over max-age) and Expires decide freshness, not the cache's ttl."""
    if "Expires" in headers:
        headers = {"Expires": email.utils.formatdate(time.time() + 5, usegmt=True)}
    origin.script("/f", Reply(200, b"v0", headers), Reply(200, b"v1", headers))
    clock = FakeClock()
    async with caller(mode, strict_cache(clock), base_url=origin.url) as c:
        assert (await c.get("/f")).content == b"v0"
        clock.advance(3)
        assert (await c.get("/f")).content == b"v0"
        clock.advance(3)
        assert (await c.get("/f")).content == b"v1"
    assert origin.hits["/f"] == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        ({"Cache-Control": "no-cache", "ETag": '"e1"'}, ("If-None-Match", '"e1"')),
        (
            {"Cache-Control": "max-age=0", "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"},
            ("If-Modified-Since", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ),
    ],
)
async def test_no_cache_and_max_age_0_are_revalidated(
    mode: str, headers: dict[str, str], sent: tuple[str, str], origin: Origin
) -> None:
    """Every use of a no-cache / max-age=0 response asks the origin, conditionally; a 304 serves the stored body."""
    origin.script("/r", Reply(200, b"body-1", headers), Reply(304, b"", {}), Reply(304, b"", {}))
    async with caller(mode, strict_cache(FakeClock()), base_url=origin.url) as c:
        bodies = [(await c.get("/r")) for _ in range(3)]
    assert [(r.status_code, r.content) for r in bodies] == [(200, b"body-1")] * 3
    assert origin.hits["/r"] == 3
    seen = [{k.lower(): v for k, v in h.items()} for h in origin.headers_seen]
    conditional = [h for h in seen if sent[0].lower() in h]
    assert len(conditional) == 2
    assert all(h[sent[0].lower()] == sent[1] for h in conditional)
    assert all(sent[0] not in r.request.headers for r in bodies)  # the caller's request is left as it was


@pytest.mark.parametrize("mode", MODES)
async def test_an_etag_revalidation_refreshes_the_entry(mode: str, origin: Origin) -> None:
    """Past max-age, the next use sends If-None-Match; the 304 makes the stored body fresh again."""
    origin.script(
        "/e",
        Reply(200, b"v0", {"Cache-Control": "max-age=1", "ETag": '"e0"'}),
        Reply(304, b"", {"Cache-Control": "max-age=10", "ETag": '"e0"'}),
    )
    clock = FakeClock()
    async with caller(mode, strict_cache(clock), base_url=origin.url) as c:
        assert (await c.get("/e")).content == b"v0"
        clock.advance(2)
        refreshed = await c.get("/e")
        clock.advance(5)
        again = await c.get("/e")
    assert (refreshed.status_code, refreshed.content, again.content) == (200, b"v0", b"v0")
    assert refreshed.headers["cache-control"] == "max-age=10"
    assert origin.hits["/e"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_must_revalidate_is_not_served_stale(mode: str, origin: Origin) -> None:
    """Even with a stale window and serve_stale, a must-revalidate response past its age goes to the origin."""
    origin.script(
        "/m",
        Reply(200, b"v0", {"Cache-Control": "max-age=1, must-revalidate"}),
        Reply(200, b"v1", {"Cache-Control": "max-age=1"}),
    )
    clock = FakeClock()
    async with caller(mode, strict_cache(clock, stale_ttl=60), base_url=origin.url) as c:
        assert (await c.get("/m")).content == b"v0"
        clock.advance(2)
        assert (await c.get("/m")).content == b"v1"


@pytest.mark.parametrize("mode", MODES)
async def test_the_responses_stale_while_revalidate_is_honoured(mode: str, origin: Origin) -> None:
    """stale-while-revalidate=30 in the response: past max-age, the stale body is served while it refreshes."""
    origin.script("/s", Reply(200, b"v0", {"Cache-Control": "max-age=1, stale-while-revalidate=30"}), Reply(200, b"v1"))
    clock = FakeClock()
    cache = strict_cache(clock)
    async with caller(mode, cache, base_url=origin.url) as c:
        assert (await c.get("/s")).content == b"v0"
        clock.advance(2)
        assert (await c.get("/s")).content == b"v0"
    assert cache.stats()["stale_served"] == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("heuristic", [False, True])
async def test_heuristic_freshness_only_when_asked(mode: str, heuristic: bool, origin: Origin) -> None:
    """A Last-Modified-only response is fresh for the cache's ttl, or by RFC 9111's heuristic with heuristic=True."""
    old = email.utils.formatdate(time.time() - 100 * 86400, usegmt=True)  # heuristic: 10 days fresh
    origin.script("/h", Reply(200, b"v0", {"Last-Modified": old}), Reply(200, b"v1", {"Last-Modified": old}))
    clock = FakeClock()
    async with caller(mode, strict_cache(clock), base_url=origin.url, heuristic=heuristic) as c:
        assert (await c.get("/h")).content == b"v0"
        clock.advance(120)  # past the cache's ttl of 60
        second = await c.get("/h")
    assert second.content == (b"v0" if heuristic else b"v1")


@pytest.mark.parametrize("mode", MODES)
async def test_max_ttl_bounds_a_long_max_age(mode: str, origin: Origin) -> None:
    """With max_ttl=10, a max-age=3600 response is fresh for 10 s only."""
    origin.script("/x", Reply(200, b"v0", {"Cache-Control": "max-age=3600"}), Reply(200, b"v1"))
    clock = FakeClock()
    async with caller(mode, strict_cache(clock), base_url=origin.url, max_ttl=10) as c:
        assert (await c.get("/x")).content == b"v0"
        clock.advance(11)
        assert (await c.get("/x")).content == b"v1"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"status": 200, "headers": "x", "body": ""},
        {"status": 200, "headers": [["X-Bad", "caf\u20ac"]], "body": ""},
        {"status": "x", "headers": [], "body": ""},
        {"status": 99999, "headers": [], "body": ""},
        {"status": 200, "headers": [], "body": "@@not base64@@"},
    ],
)
async def test_a_malformed_record_is_a_miss(mode: str, bad: Any, origin: Origin) -> None:
    """A stored record that does not decode is a miss (event cache.decode_error), never an error to the caller."""
    store = MemoryStore(serializer=JSON())
    clock = FakeClock()
    cache = rs.Cache(ttl=60, store=store, clock=clock)
    key = rs.http.request_key(httpx.Request("GET", origin.url + "/bad"))
    now = clock.time()
    store.set(key, Entry(bad, now + 60, now + 120), now=now)
    async with caller(mode, cache, base_url=origin.url) as c:
        with capture_events() as events:
            first = await c.get("/bad")
        second = await c.get("/bad")
    assert (first.status_code, first.content, second.content) == (200, b"ok", b"ok")
    assert [e["event"] for e in events].count("cache.decode_error") == 1
    assert origin.hits["/bad"] == 1
