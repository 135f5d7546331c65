"""Every fleet policy degrades alike when Redis fails: RateLimiter and TokenProvider against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock, capture_events
from tests.redis.conftest import async_client, sync_client, wait_until

pytestmark = pytest.mark.redis


def admitted(limiter: rs.RateLimiter) -> bool:
    try:
        limiter.call(lambda: None)
    except rs.RateLimitedError:
        return False
    return True


@pytest.fixture
def down(redis_server: Any, redis_url: str) -> Iterator[RedisStore]:
    """A RedisStore whose server is stopped (restarted afterwards)."""
    client = sync_client(redis_url)
    store = RedisStore(client)
    redis_server.stop()
    try:
        yield store
    finally:
        redis_server.start()
        store.close()
        client.close()


def test_rate_limiter_with_redis_down_falls_back_to_a_local_bucket(down: RedisStore) -> None:
    """Default on_store_error="local": no exception but RateLimitedError, and at most rate·t + burst grants."""
    clock = FakeClock()
    limiter = rs.RateLimiter(10, burst=5, store=down, key="api", clock=clock)
    with capture_events() as events:
        granted = sum(admitted(limiter) for _ in range(100))
        clock.advance(0.3)
        granted += sum(admitted(limiter) for _ in range(100))
    assert granted == 5 + 3  # burst, then rate · 0.3 s
    assert granted <= 10 * 0.3 + 5
    assert limiter.stats()["store_errors"] == 200
    told = [e for e in events if e["event"] == "ratelimit.store_error"]
    assert len(told) == 1  # the failure; the resting store's refusals are not told again


@pytest.mark.parametrize(("choice", "granted"), [("allow", 100), ("deny", 0)])
def test_rate_limiter_allow_and_deny_when_the_store_fails(down: RedisStore, choice: str, granted: int) -> None:
    """ "allow" lets every call through; "deny" raises RateLimitedError for every call."""
    limiter = rs.RateLimiter(10, burst=5, store=down, key="api", on_store_error=choice)
    assert sum(admitted(limiter) for _ in range(100)) == granted


async def test_async_rate_limiter_with_redis_down_uses_the_local_bucket(redis_server: Any, redis_url: str) -> None:
    """The async twin degrades the same way (no StoreUnavailable, no redis-py error)."""
    aclient = async_client(redis_url)
    store = RedisStore(aclient)
    clock = FakeClock()
    limiter = rs.RateLimiter(10, burst=3, store=store, key="api", clock=clock)

    async def ok() -> str:
        return "ok"

    redis_server.stop()
    try:
        results = []
        for _ in range(10):
            try:
                results.append(await limiter.acall(ok))
            except rs.RateLimitedError:
                results.append("limited")
        assert results == ["ok"] * 3 + ["limited"] * 7
    finally:
        redis_server.start()
        await store.aclose()
        await aclient.aclose()


def test_rate_limiter_with_a_user_without_eval_is_no_raw_redis_error(client: redis.Redis, redis_url: str) -> None:
    """An ACL user who may not EVAL gets the local bucket, never redis-py's NoPermissionError."""
    client.acl_setuser("noeval", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-eval", "-evalsha"])
    limited = redis.Redis.from_url(redis_url.replace("redis://", "redis://noeval:pw@"), socket_timeout=2)
    store = RedisStore(limited)
    try:
        limiter = rs.RateLimiter(10, burst=2, store=store, key="api", clock=FakeClock())
        assert [admitted(limiter) for _ in range(4)] == [True, True, False, False]
        assert store.available  # an answer about this command, not an outage
    finally:
        limited.close()
        client.acl_deluser("noeval")


def test_rate_limiter_returns_to_the_shared_bucket_when_redis_is_back(redis_server: Any, redis_url: str) -> None:
    """After the probe sees Redis again, grants come from the shared bucket (one limit for the fleet again)."""

    client = sync_client(redis_url)
    store = RedisStore(client)
    clock = FakeClock()
    limiter = rs.RateLimiter(10, burst=2, store=store, key="api", clock=clock)
    try:
        redis_server.stop()
        assert admitted(limiter)
        redis_server.start()
        wait_until(lambda: store.available)
        assert [admitted(limiter) for _ in range(3)] == [True, True, False]
        assert client.exists("resilient:{api}:b")
    finally:
        redis_server.start()
        store.close()
        client.close()


def test_a_non_token_record_at_the_key_is_overwritten_under_a_lease(client: redis.Redis) -> None:
    """JSON that is no token at the provider's key: a token in < 1 s (not 2 x lease_ttl), then shared."""
    store = RedisStore(client, timeout=5.0)
    now = time.time()
    store.set("auth", Entry({"not": "a token"}, now + 3600, now + 7200), now=now)
    fetches = 0

    def fetch() -> rs.Token:
        nonlocal fetches
        fetches += 1
        return rs.Token(f"t{fetches}", time.time() + 3600)

    first = rs.TokenProvider(fetch, store=store, key="auth", lease_ttl=10)
    started = time.monotonic()
    assert first.get() == "t1"
    assert time.monotonic() - started < 1.0
    second = rs.TokenProvider(fetch, store=RedisStore(client, timeout=5.0), key="auth", lease_ttl=10)
    assert second.get() == "t1"  # shared: it was written
    assert fetches == 1


async def test_async_non_token_record_is_overwritten(aclient: Any) -> None:
    """The async twin: a token at once, then shared."""
    store = RedisStore(aclient, timeout=5.0)
    now = time.time()
    await store.aset("auth", Entry([1, 2, 3], now + 3600, now + 7200), now=now)
    fetches = 0

    async def fetch() -> rs.Token:
        nonlocal fetches
        fetches += 1
        return rs.Token(f"t{fetches}", time.time() + 3600)

    started = time.monotonic()
    assert await rs.TokenProvider(fetch, store=store, key="auth", lease_ttl=10).aget() == "t1"
    assert time.monotonic() - started < 1.0
    assert await rs.TokenProvider(fetch, store=store, key="auth", lease_ttl=10).aget() == "t1"
    assert fetches == 1


def test_token_provider_with_redis_down_fetches_for_itself(down: RedisStore) -> None:
    """No store error reaches the caller: the provider fetches in this process, at once."""
    fetches = 0

    def fetch() -> rs.Token:
        nonlocal fetches
        fetches += 1
        return rs.Token(f"t{fetches}", time.time() + 3600)

    provider = rs.TokenProvider(fetch, store=down, key="auth")
    started = time.monotonic()
    assert [provider.get() for _ in range(5)] == ["t1"] * 5
    assert time.monotonic() - started < 1.0
    assert fetches == 1
