"""One Cache for sync and async on Redis: from_url builds both clients; a sync-only store says how to fix it."""

from __future__ import annotations

import time

import pytest
import redis

import resilient as rs
from resilient.stores.redis import RedisStore

from ..conftest import free_port

pytestmark = pytest.mark.redis


async def test_a_sync_only_store_under_an_async_function_names_aclient_and_from_url(client: redis.Redis) -> None:
    """The error names aclient= and RedisStore.from_url, not a method the user never called."""
    cache = rs.Cache(ttl=60, store=RedisStore(client, prefix="one:"))

    @cache
    async def price(n: int) -> int:
        return n

    with pytest.raises(TypeError) as caught:
        await price(1)
    message = str(caught.value)
    assert "aclient=" in message and "RedisStore.from_url" in message
    assert "alookup" not in message and "aget" not in message


async def test_from_url_serves_sync_and_async_functions_with_one_cache(redis_url: str) -> None:
    """A store from from_url caches a sync and an async function through the same Cache."""
    store = RedisStore.from_url(redis_url, prefix="both:")
    cache = rs.Cache(ttl=60, store=store)
    calls: list[str] = []

    @cache
    def sync_price(n: int) -> int:
        calls.append("sync")
        return n

    @cache
    async def async_price(n: int) -> int:
        calls.append("async")
        return n

    try:
        assert [sync_price(1), sync_price(1), await async_price(2), await async_price(2)] == [1, 1, 2, 2]
    finally:
        await store.aclose()
    assert calls == ["sync", "async"]


def test_from_url_fails_fast_on_a_dead_server() -> None:
    """Nothing listening: a store from from_url raises within a few seconds (no 10 retries with backoff)."""
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", prefix="dead:")
    started = time.monotonic()
    with pytest.raises(rs.StoreUnavailable):
        store.get("k")
    store.close()
    assert time.monotonic() - started < 5.0
