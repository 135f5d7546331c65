"""rs.Cache on a RedisStore, end to end: a fleet of processes, a killed lease holder, a Redis outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import resilient as rs
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock, capture_events
from tests.redis.conftest import async_client, sync_client, wait_until

from ..conftest import run_threads

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def start_workers(url: str, mode: str, n: int, lock_ttl: float = 5.0) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.redis.fleet_worker", url, mode, repr(lock_ttl)]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def reap(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for stream in (p.stdin, p.stdout):
            if stream is not None:
                stream.close()


def test_four_processes_of_25_threads_make_one_origin_call(redis_url: str) -> None:
    """100 callers in 4 processes on one cold key cause 1 origin call, and all get its value."""
    procs = start_workers(redis_url, "herd", 4)
    try:
        outs = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in procs]
    finally:
        reap(procs)
    assert sum(o["calls"] for o in outs) == 1
    values = [v for o in outs for v in o["values"]]
    assert len(values) == 100
    assert len(set(values)) == 1
    assert values[0].startswith("value-from-")


def test_a_sigkilled_lease_holder_delays_the_others_by_about_lock_ttl(redis_url: str) -> None:
    """When the lease holder dies mid-fetch, one waiter refreshes once its lease expires."""
    lock_ttl = 0.5
    [holder] = start_workers(redis_url, "hold", 1, lock_ttl)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "fetching"  # it holds the lease now
        started = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    finally:
        reap([holder])
    calls = 0
    client = sync_client(redis_url)
    cache = rs.Cache(ttl=60, lock_ttl=lock_ttl, lock_wait=5, store=RedisStore(client), key=lambda: "cold")

    @cache
    def origin() -> str:
        nonlocal calls
        calls += 1
        return "fresh"

    try:
        barrier = threading.Barrier(10)

        def call(_: int) -> object:
            barrier.wait()
            return origin()

        results = run_threads(10, call)
        waited = time.monotonic() - started
    finally:
        client.close()
    assert results == ["fresh"] * 10
    assert calls == 1
    assert lock_ttl / 2 <= waited < lock_ttl + 1.0  # they waited for the lease, and not much longer


def test_an_invalidation_during_a_slow_refresh_keeps_its_older_value_out(redis_url: str) -> None:
    """A refresh that began before invalidate() cannot write its value afterwards."""
    client = sync_client(redis_url)
    cache = rs.Cache(ttl=60, store=RedisStore(client), key=lambda: "k")
    in_origin, release = threading.Event(), threading.Event()
    version = "old"

    @cache
    def origin() -> str:
        value = version
        in_origin.set()
        assert release.wait(10)
        return value

    try:
        with capture_events() as events:
            slow = threading.Thread(target=origin)
            slow.start()
            assert in_origin.wait(10)
            version = "new"
            cache.invalidate("k")
            release.set()
            slow.join(10)
        assert "cache.write_refused" in [e["event"] for e in events]
        assert client.get("resilient:{k}:v") is None
        assert origin() == "new"
    finally:
        release.set()
        client.close()


def test_warm_hits_through_the_cache_cost_one_get_each(redis_url: str) -> None:
    """1,000 cache hits on a warm key cost at most 1,000 Redis commands, all GETs."""
    client = sync_client(redis_url)
    cache = rs.Cache(ttl=60, store=RedisStore(client), key="item:{n}")
    cached = cache(lambda n: {"n": n})
    try:
        assert cached(1) == {"n": 1}
        client.config_resetstat()
        for _ in range(1000):
            assert cached(1) == {"n": 1}
        stats = client.info("commandstats")
        counted = {k: v["calls"] for k, v in stats.items() if "info" not in k and "config" not in k}
        assert counted == {"cmdstat_get": 1000}
    finally:
        client.close()


async def test_async_warm_hits_through_the_cache_cost_one_get_each(redis_url: str) -> None:
    """Async cache hits over redis.asyncio also cost one GET each."""
    client, aclient = sync_client(redis_url), async_client(redis_url)
    cache = rs.Cache(ttl=60, store=RedisStore(aclient), key="item:{n}")

    @cache
    async def cached(n: int) -> dict[str, int]:
        return {"n": n}

    try:
        assert await cached(1) == {"n": 1}
        client.config_resetstat()
        for _ in range(300):
            assert await cached(1) == {"n": 1}
        stats = client.info("commandstats")
        counted = {k: v["calls"] for k, v in stats.items() if "info" not in k and "config" not in k}
        assert counted == {"cmdstat_get": 300}
    finally:
        await cache.aclose()
        client.close()
        await aclient.aclose()


def test_redis_stopped_mid_run_then_restarted(redis_server: Any, redis_url: str) -> None:
    """With Redis down calls return origin values and raise nothing; after a restart caching resumes."""
    clock = FakeClock()
    client = sync_client(redis_url)
    store = RedisStore(client, clock=clock)
    cache = rs.Cache(ttl=60, store=store, clock=clock, key="item:{n}")
    calls = 0

    @cache
    def origin(n: int) -> str:
        nonlocal calls
        calls += 1
        return f"v{n}"

    try:
        assert origin(1) == "v1"
        redis_server.stop()
        with capture_events() as events:
            assert [origin(n) for n in range(2, 12)] == [f"v{n}" for n in range(2, 12)]
            assert [origin(n) for n in range(2, 12)] == [f"v{n}" for n in range(2, 12)]
        assert "cache.store_error" in [e["event"] for e in events]
        redis_server.start()
        wait_until(lambda: store.available)  # the store's own probe saw the restart
        clock.advance(1.0)  # past the cache's short cool-off after the last failure (the store's timeout)
        for n in range(20, 25):
            assert origin(n) == f"v{n}"
        assert client.get("resilient:{item:24}:v") is not None
        before = calls
        assert origin(24) == "v24"
        assert calls == before
    finally:
        redis_server.start()
        store.close()
        client.close()


def test_sets_and_tuples_are_cached_and_an_unencodable_value_is_a_clear_error(redis_url: str) -> None:
    """A set or tuple is cached on Redis as itself; a value it cannot hold raises TypeError at the first write."""
    client = sync_client(redis_url)
    cache = rs.Cache(ttl=60, store=RedisStore(client), key="item:{n}")
    calls = 0

    @cache
    def origin(n: int) -> object:
        nonlocal calls
        calls += 1
        return {n} if n == 1 else (n, "x") if n == 2 else object()

    try:
        with capture_events() as events:
            assert [origin(1), origin(1)] == [{1}, {1}]
            assert [origin(2), origin(2)] == [(2, "x"), (2, "x")]
            with pytest.raises(TypeError, match=r"cannot store a object under key 'item:3'"):
                origin(3)
        names = [e["event"] for e in events]
        assert "cache.encode_error" in names
        assert "cache.store_error" not in names
        assert calls == 3
    finally:
        client.close()
