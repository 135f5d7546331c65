"""RedisStore with its server stopped: fast StoreUnavailable behind the breaker, recovery after restart."""

from __future__ import annotations

import time
from typing import Any

import pytest

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock, capture_events
from tests.redis.conftest import async_client, sync_client

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
VALUE = Entry("v", NOW + 60, NOW + 120)


def test_stopped_server_opens_the_breaker_then_calls_fail_fast(redis_server: Any, redis_url: str) -> None:
    """After failure_threshold failures, calls raise StoreUnavailable at once and emit no further errors."""
    clock = FakeClock()
    client = sync_client(redis_url)
    store = RedisStore(client, failure_threshold=2, reset_timeout=2.0, clock=clock)
    try:
        store.set("k", VALUE, now=NOW)
        redis_server.stop()
        with capture_events() as events:
            for _ in range(2):
                with pytest.raises(rs.StoreUnavailable):
                    store.get("k")
            started = time.monotonic()
            for _ in range(100):
                with pytest.raises(rs.StoreUnavailable) as caught:
                    store.lookup("k", now=NOW, lease_ttl=1)
            elapsed = time.monotonic() - started
        errors = [e for e in events if e["event"] == "redis.error"]
        assert len(errors) == 2
        assert errors[-1]["breaker_opened"] is True
        assert caught.value.remaining == pytest.approx(2.0)
        assert elapsed < 0.5  # 100 refusals without a single connection attempt
    finally:
        redis_server.start()
        client.close()


def test_store_is_probed_after_reset_timeout_and_resumes_after_restart(redis_server: Any, redis_url: str) -> None:
    """A failed probe keeps the breaker open; once the server is back, the next probe closes it."""
    clock = FakeClock()
    client = sync_client(redis_url)
    store = RedisStore(client, failure_threshold=1, reset_timeout=2.0, clock=clock)
    try:
        redis_server.stop()
        with capture_events() as events:
            with pytest.raises(rs.StoreUnavailable):
                store.get("k")
            clock.advance(2.0)
            with pytest.raises(rs.StoreUnavailable):  # the probe, still refused
                store.get("k")
            with pytest.raises(rs.StoreUnavailable) as caught:  # open again, no network
                store.get("k")
            assert caught.value.remaining == pytest.approx(2.0)
            redis_server.start()
            with pytest.raises(rs.StoreUnavailable):  # restarted, but not yet probed
                store.get("k")
            clock.advance(2.0)
            assert store.set("k", VALUE, now=NOW)
            assert store.get("k") == VALUE
        names = [e["event"] for e in events]
        assert names == ["redis.error", "redis.error", "redis.recovered"]
    finally:
        redis_server.start()
        client.close()


async def test_async_twins_share_the_breaker(redis_server: Any, redis_url: str) -> None:
    """The async path counts failures in the same breaker and recovers the same way."""
    clock = FakeClock()
    client, aclient = sync_client(redis_url), async_client(redis_url)
    store = RedisStore(client, aclient=aclient, failure_threshold=1, reset_timeout=1.0, clock=clock)
    try:
        redis_server.stop()
        with pytest.raises(rs.StoreUnavailable):
            await store.aget("k")
        with pytest.raises(rs.StoreUnavailable) as caught:
            store.get("k")
        assert caught.value.remaining == pytest.approx(1.0)
        redis_server.start()
        clock.advance(1.0)
        assert await store.alookup("k", now=NOW, lease_ttl=1) is not None
        assert store.get("k") is None
    finally:
        redis_server.start()
        client.close()
        await aclient.aclose()


def test_a_command_error_is_not_a_store_failure(client: Any) -> None:
    """An error answered by the server (wrong key type) propagates and does not count in the breaker."""
    store = RedisStore(client, failure_threshold=1)
    client.hset("resilient:{k}:v", "x", "y")
    for _ in range(3):
        with pytest.raises(Exception, match="WRONGTYPE"):
            store.get("k")
    assert repr(store) == "RedisStore(prefix='resilient:', breaker='closed')"
