"""One worker process of ``resilient herd --real``: a share of the load, through httpx."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

import resilient as rs

from .vloop import quiet_logs

__all__ = ["run_worker"]

TIMEOUT = 1.0
#: The combined strategy refreshes in the background while clients get the cached or
#: stale value, so its origin call can wait longer than a client would: a slow answer
#: (a loaded machine) is not cut off and retried, which would double the refresh.
REFRESH_TIMEOUT = 5.0


async def _naive(
    client: httpx.AsyncClient, redis_url: str | None, prefix: str, ttl: float
) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """Cache-aside: GET the shared cache, on a miss fetch (3 immediate tries) and SET with a fixed TTL."""
    retry = rs.Retry(attempts=3, backoff=rs.Constant(0))
    key = prefix + "naive:hot"

    @retry
    async def fetch() -> bytes:
        response = await client.get("/item/hot")
        response.raise_for_status()
        return response.content

    if redis_url is not None:
        import redis.asyncio as aioredis

        shared = aioredis.from_url(redis_url)

        async def get_shared() -> Any:
            value = await shared.get(key)
            if value is None:
                value = await fetch()
                await shared.set(key, value, px=int(ttl * 1000))
            return value

        return get_shared, shared.aclose

    local: dict[str, tuple[bytes, float]] = {}

    async def get_local() -> Any:
        entry = local.get(key)
        if entry is None or entry[1] <= time.monotonic():
            entry = (await fetch(), time.monotonic() + ttl)
            local[key] = entry
        return entry[0]

    async def nothing() -> None:
        return None

    return get_local, nothing


async def _combined(
    client: httpx.AsyncClient, redis_url: str | None, prefix: str, ttl: float
) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """rs.Cache (shared on Redis when given) with stale serving and XFetch, around a budgeted Retry."""
    store: rs.MemoryStore | rs.RedisStore
    if redis_url is not None:
        # 1 s, not the default 0.25 s: the lab measures coalescing, and its loop is busy enough on a loaded
        # machine for a healthy Redis to answer late (a store timeout would send that call to the origin)
        store = rs.RedisStore.from_url(redis_url, prefix=prefix, timeout=1.0)
        closer = store.aclose
    else:
        store = rs.MemoryStore()

        async def nothing() -> None:
            return None

        closer = nothing
    retry = rs.Retry(attempts=3, backoff=rs.FullJitter(0.05, 1.0), budget=rs.RetryBudget())
    cache = rs.Cache(ttl=ttl, store=store, key="item:{name}", serve_stale=True, early_recompute=rs.XFetch())

    async def load(name: str) -> Any:
        response = await client.get(f"/item/{name}", timeout=REFRESH_TIMEOUT)
        response.raise_for_status()
        return response.json()

    fetch = rs.pipeline(cache, retry)(load)

    async def get() -> Any:
        return await fetch("hot")

    async def close() -> None:
        # Background refreshes finish before the store closes: one whose Redis client is
        # closed under it falls back to an in-process cache and calls the origin a second
        # time, beside another process's refresh (the herd this strategy claims to stop).
        await _settle(REFRESH_TIMEOUT + 2 * TIMEOUT)
        await cache.aclose()
        await closer()

    return get, close


async def _settle(bound: float) -> None:
    """Wait (at most ``bound`` s) for this loop's other tasks: the cache's background refreshes."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=bound)


async def run_worker(
    strategy: str, url: str, redis_url: str | None, prefix: str, rate: float, duration: float, ttl: float, start: float
) -> dict[str, Any]:
    """Send ``rate`` requests/s for ``duration`` s from wall time ``start``; report latencies and errors."""
    with quiet_logs():
        return await _load(strategy, url, redis_url, prefix, rate, duration, ttl, start)


async def _load(
    strategy: str, url: str, redis_url: str | None, prefix: str, rate: float, duration: float, ttl: float, start: float
) -> dict[str, Any]:
    stale = 0

    def listen(event: dict[str, Any]) -> None:
        nonlocal stale
        if event["event"] == "cache.stale_served":
            stale += 1

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
        build = _naive if strategy == "naive" else _combined
        get, close = await build(client, redis_url, prefix, ttl)
        rs.add_listener(listen)
        try:
            await asyncio.sleep(max(0.0, start - time.time()))

            async def one() -> None:
                nonlocal errors
                began = time.monotonic()
                try:
                    await get()
                except Exception:
                    errors += 1
                latencies.append(time.monotonic() - began)

            tasks: set[asyncio.Task[None]] = set()
            interval = 1.0 / rate
            began = time.monotonic()
            next_at = began + random.uniform(0, interval)
            while next_at < began + duration:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_at += interval
            if tasks:
                _, pending = await asyncio.wait(set(tasks), timeout=REFRESH_TIMEOUT + 2 * TIMEOUT)
                for task in pending:
                    task.cancel()
                errors += len(pending)
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            rs.remove_listener(listen)
            await close()
    return {"latencies": latencies, "errors": errors, "stale": stale}
