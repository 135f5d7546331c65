"""RedisStore with its server stopped, frozen or restarted: refusals, the background probe, the bounds."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.redis import RedisStore
from resilient.testing import capture_events
from tests.conftest import gather_all, run_threads
from tests.redis.conftest import async_client, bounded_sync_client, freeze, kill, sync_client, thaw, wait_until

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0
VALUE = Entry("v", NOW + 60, NOW + 120)


def test_a_failure_rests_the_store_and_calls_are_refused_without_the_network(redis_server: Any, redis_url: str) -> None:
    """After a failure, calls raise StoreUnavailable(refused=True) at once and tell no further errors."""
    client = sync_client(redis_url)
    store = RedisStore(client)
    try:
        store.set("k", VALUE, now=NOW)
        redis_server.stop()
        with capture_events() as events:
            with pytest.raises(rs.StoreUnavailable) as first:
                store.get("k")
            assert not first.value.refused
            assert not store.available
            started = time.monotonic()
            for _ in range(100):
                with pytest.raises(rs.StoreUnavailable) as caught:
                    store.lookup("k", now=NOW, lease_ttl=1)
                assert caught.value.refused
            elapsed = time.monotonic() - started
        errors = [e for e in events if e["event"] == "redis.error"]
        assert len(errors) == 1
        assert errors[0]["breaker_opened"] is True
        assert 0 < caught.value.remaining <= 0.2
        assert elapsed < 1.0  # 100 refusals without a single connection attempt (generous for a loaded box)
    finally:
        redis_server.start()
        store.close()
        client.close()


def test_the_probe_brings_the_store_back_without_any_caller(redis_server: Any, redis_url: str) -> None:
    """One background probe per process pings the server; once it answers the store is available again."""
    client = sync_client(redis_url)
    store = RedisStore(client)
    try:
        redis_server.stop()
        with capture_events() as events:
            with pytest.raises(rs.StoreUnavailable):
                store.get("k")
            redis_server.start()
            # The probe closes the breaker, then tells of it: wait for the telling, not the state
            # (a loaded machine can pause the probe thread between the two).
            wait_until(lambda: "redis.recovered" in [e["event"] for e in events])
        assert store.available
        assert store.set("k", VALUE, now=NOW)
        assert store.get("k") == VALUE
        assert [e["event"] for e in events] == ["redis.error", "redis.recovered"]
    finally:
        redis_server.start()
        store.close()
        client.close()


async def test_an_asyncio_only_store_probes_in_a_task(redis_server: Any, redis_url: str) -> None:
    """With only an asyncio client the probe is a task of the failing call's loop."""
    aclient = async_client(redis_url)
    store = RedisStore(aclient)
    try:
        redis_server.stop()
        with pytest.raises(rs.StoreUnavailable):
            await store.aget("k")
        assert not store.available
        await asyncio.to_thread(redis_server.start)
        await asyncio.to_thread(wait_until, lambda: store.available)  # the loop stays free for the probe task
        assert await store.aset("k", VALUE, now=NOW)
        assert await store.aget("k") == VALUE
    finally:
        redis_server.start()
        await store.aclose()
        await aclient.aclose()


def test_concurrent_failures_of_one_outage_tell_one_error(redis_server: Any, redis_url: str) -> None:
    """20 threads failing on the same dead server together open the breaker once and tell at most a few errors."""
    client = sync_client(redis_url)
    store = RedisStore(client, failure_threshold=3)
    try:
        for i in range(20):  # 20 pooled connections
            store.set(f"k{i}", VALUE, now=NOW)
        kill(redis_server)
        with capture_events() as events:

            def call(i: int) -> str:
                try:
                    store.get(f"k{i}")
                except rs.StoreUnavailable as exc:
                    return "refused" if exc.refused else "failed"
                return "ok"

            outcomes = run_threads(20, call)
        assert set(outcomes) <= {"failed", "refused"}
        errors = [e for e in events if e["event"] == "redis.error"]
        assert 1 <= len(errors) <= 3  # counted once per wave of calls begun before the last counted one
    finally:
        redis_server.start()
        store.close()
        client.close()


def test_a_frozen_server_holds_no_sync_caller_past_the_socket_timeout(redis_server: Any, redis_url: str) -> None:
    """SIGSTOP: a bounded sync client fails within its socket timeout (0.25 s + 0.5 s slack), then refusals."""
    client = bounded_sync_client(redis_url, 0.25)
    store = RedisStore(client, timeout=0.25)
    try:
        store.set("k", VALUE, now=NOW)
        freeze(redis_server)
        started = time.monotonic()
        with pytest.raises(rs.StoreUnavailable):
            store.get("k")
        assert time.monotonic() - started < 0.75
        with pytest.raises(rs.StoreUnavailable) as caught:
            store.get("k")
        assert caught.value.refused
    finally:
        thaw(redis_server)
        store.close()
        client.close()


async def test_a_frozen_server_holds_no_async_caller_past_the_store_timeout(redis_server: Any, redis_url: str) -> None:
    """SIGSTOP: an asyncio client with no socket timeout at all is cut at the store's timeout."""
    aclient = redis.asyncio.Redis.from_url(redis_url, retry=AsyncRetry(NoBackoff(), 0))  # no socket_timeout
    store = RedisStore(aclient, timeout=0.25)
    try:
        await store.aset("k", VALUE, now=NOW)
        freeze(redis_server)
        started = time.monotonic()

        async def get() -> object:
            try:
                return await store.aget("k")
            except rs.StoreUnavailable as exc:
                return exc

        results = await gather_all(*(get() for _ in range(20)))
        assert time.monotonic() - started < 0.75
        assert all(isinstance(r, rs.StoreUnavailable) for r in results)
    finally:
        thaw(redis_server)
        await store.aclose()
        await aclient.aclose()


async def test_stale_pooled_connections_after_a_restart_are_retried_not_counted(
    redis_server: Any, redis_url: str
) -> None:
    """20 concurrent GETs after kill + restart all answer, and no redis.error is told."""
    aclient = async_client(redis_url)
    store = RedisStore(aclient, timeout=5.0)  # generous: this is about closed connections, not slowness
    try:
        await gather_all(*(store.aset(f"k{i}", VALUE, now=NOW) for i in range(20)))  # 20 pooled connections
        kill(redis_server)
        redis_server.start()
        with capture_events() as events:
            results = await gather_all(*(store.aget(f"k{i}") for i in range(20)))
        assert results == [None] * 20  # the restarted server is empty; every call was answered
        assert [e for e in events if e["event"] == "redis.error"] == []
        assert store.available
    finally:
        await store.aclose()
        await aclient.aclose()


def test_a_client_that_could_block_longer_is_reported_at_construction(redis_url: str) -> None:
    """A sync client with a longer socket timeout or its own retries gets a RuntimeWarning naming the setting."""
    loose = redis.Redis.from_url(redis_url, socket_timeout=5)
    bounded = bounded_sync_client(redis_url, 0.25)
    try:
        with pytest.warns(RuntimeWarning, match=r"socket_timeout=5.*retry="):
            RedisStore(loose, timeout=0.25)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            RedisStore(bounded, timeout=0.25).close()
            RedisStore.from_url(redis_url).close()
    finally:
        loose.close()
        bounded.close()


def test_a_command_error_is_not_a_store_failure(client: Any) -> None:
    """An error answered by the server (wrong key type) propagates and does not count in the breaker."""
    store = RedisStore(client, failure_threshold=1)
    client.hset("resilient:{k}:v", "x", "y")
    for _ in range(3):
        with pytest.raises(Exception, match="WRONGTYPE"):
            store.get("k")
    assert repr(store) == "RedisStore(prefix='resilient:', breaker='closed')"
