"""HTTP responses cached on a RedisStore: JSON-safe snapshots that a fleet shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import resilient as rs
from resilient.stores.redis import RedisStore
from tests.http.origin import Origin, Reply
from tests.redis.conftest import async_client, sync_client

pytestmark = pytest.mark.redis

BODY = b'{"price": 42}'
HEADERS = {"Content-Type": "application/json", "ETag": '"v1"'}


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin().start()
    try:
        yield server
    finally:
        server.stop()


def test_two_sync_members_share_one_cached_response(redis_url: str, origin: Origin) -> None:
    """A response cached by one client on Redis is served to another client's cache without an origin call."""
    origin.script("/price", Reply(200, BODY, HEADERS))
    a_redis, b_redis = sync_client(redis_url), sync_client(redis_url)
    a, b = rs.Cache(ttl=60, store=RedisStore(a_redis)), rs.Cache(ttl=60, store=RedisStore(b_redis))
    try:
        with rs.http.client(a, base_url=origin.url) as first, rs.http.client(b, base_url=origin.url) as second:
            one = first.get("/price")
            two = second.get("/price")
    finally:
        a_redis.close()
        b_redis.close()
    assert origin.hits["/price"] == 1
    assert (two.status_code, two.content, two.headers["etag"]) == (one.status_code, BODY, '"v1"')
    assert a.stats()["store_errors"] == b.stats()["store_errors"] == 0


async def test_two_async_members_share_one_cached_response(redis_url: str, origin: Origin) -> None:
    """The same through the async transport and redis.asyncio clients."""
    origin.script("/price", Reply(200, BODY, HEADERS))
    a_redis, b_redis = async_client(redis_url), async_client(redis_url)
    a, b = rs.Cache(ttl=60, store=RedisStore(a_redis)), rs.Cache(ttl=60, store=RedisStore(b_redis))
    try:
        async with rs.http.async_client(a, base_url=origin.url) as first:
            one = await first.get("/price")
        async with rs.http.async_client(b, base_url=origin.url) as second:
            two = await second.get("/price")
    finally:
        await a_redis.aclose()
        await b_redis.aclose()
    assert origin.hits["/price"] == 1
    assert (two.status_code, two.content, two.json()) == (one.status_code, BODY, {"price": 42})
    assert a.stats()["store_errors"] == b.stats()["store_errors"] == 0
