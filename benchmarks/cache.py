"""Cache hit cost and stampede protection: resilient.Cache beside its peers, in one run.

Hit path: the cost of one cache hit for a function of one int argument, sync
(a bare ``cachetools.TTLCache`` lookup, ``cachetools.cached``, dogpile.cache's
``get_or_create``) and async (cashews and aiocache memory backends), printed in
nanoseconds and as ratios to ``cachetools.cached``.

Stampede: origin calls caused by 1,000 concurrent cold callers of one key
(a 100 ms origin): asyncio tasks for async caches, threads for sync ones.

Run: ``python -m benchmarks.cache`` (about 30 s). The machine may be shared:
run it twice and compare ratios, not absolute figures.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

import cachetools
import structlog

import resilient as rs

CALLERS = 1_000
ORIGIN_SECONDS = 0.1
ROUND = 0.15  # seconds per timing run
MAX_NUMBER = 50_000
REPEAT = 7


def quiet() -> None:
    """Events at debug level would be printed by structlog's default config: keep warnings only."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("cashews").setLevel(logging.ERROR)


# -- hit path ---------------------------------------------------------------------------------


def best_ns(fn: Callable[[], Any]) -> float:
    """Best of REPEAT runs of about ROUND seconds each, in ns per call."""
    per_call = timeit.timeit(fn, number=200) / 200
    number = max(200, min(MAX_NUMBER, int(ROUND / per_call)))
    return min(timeit.repeat(fn, number=number, repeat=REPEAT)) / number * 1e9


async def abest_ns(fn: Callable[[], Awaitable[Any]]) -> float:
    """The async twin of :func:`best_ns`."""
    start = time.perf_counter()
    for _ in range(200):
        await fn()
    number = max(200, min(MAX_NUMBER, int(ROUND / ((time.perf_counter() - start) / 200))))
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e9


def sync_hits() -> dict[str, float]:
    out: dict[str, float] = {}

    ttl_cache: cachetools.TTLCache[int, int] = cachetools.TTLCache(1000, 60)
    ttl_cache[1] = 1
    out["cachetools.TTLCache[k] (bare lookup)"] = best_ns(lambda: ttl_cache[1])

    @cachetools.cached(cachetools.TTLCache(1000, 60))
    def ct(x: int) -> int:
        return x

    ct(1)
    out["cachetools.cached"] = best_ns(lambda: ct(1))

    @rs.Cache(ttl=60)
    def ours(x: int) -> int:
        return x

    ours(1)
    out["resilient.Cache (sync)"] = best_ns(lambda: ours(1))

    @rs.Cache(ttl=60, key="item:{x}")
    def ours_t(x: int) -> int:
        return x

    ours_t(1)
    out["resilient.Cache key='item:{x}' (sync)"] = best_ns(lambda: ours_t(1))

    x_cache = rs.Cache(ttl=60, early_recompute=rs.XFetch())

    @x_cache
    def ours_x(x: int) -> int:
        return x

    ours_x(1)
    out["resilient.Cache +XFetch (sync)"] = best_ns(lambda: ours_x(1))

    from dogpile.cache import make_region

    region = make_region().configure("dogpile.cache.memory", expiration_time=60)
    region.get_or_create("k:1", lambda: 1)
    out["dogpile.cache get_or_create"] = best_ns(lambda: region.get_or_create("k:1", lambda: 1))
    return out


async def async_hits() -> dict[str, float]:
    out: dict[str, float] = {}

    cache = rs.Cache(ttl=60)

    @cache
    async def ours(x: int) -> int:
        return x

    await ours(1)
    out["resilient.Cache (async)"] = await abest_ns(lambda: ours(1))

    from cashews import cache as cashews

    cashews.setup("mem://")

    @cashews(ttl=60)
    async def cw(x: int) -> int:
        return x

    await cw(1)
    out["cashews @cache (mem://)"] = await abest_ns(lambda: cw(1))

    from aiocache import cached as aio_cached

    @aio_cached(ttl=60)
    async def aio(x: int) -> int:
        return x

    await aio(1)
    out["aiocache @cached (memory)"] = await abest_ns(lambda: aio(1))
    await cashews.close()
    return out


# -- stampede ---------------------------------------------------------------------------------


class Counted:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def sync(self, x: int) -> int:
        with self._lock:
            self.calls += 1
        time.sleep(ORIGIN_SECONDS)
        return x

    async def coro(self, x: int) -> int:
        self.calls += 1
        await asyncio.sleep(ORIGIN_SECONDS)
        return x


def thread_herd(fn: Callable[[int], Any]) -> None:
    start = threading.Barrier(CALLERS)

    def run() -> None:
        start.wait()
        fn(7)

    threads = [threading.Thread(target=run) for _ in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def sync_stampede() -> dict[str, int]:
    out: dict[str, int] = {}

    origin = Counted()
    cache = rs.Cache(ttl=60, key="k:{x}")
    thread_herd(cache(origin.sync))
    out["resilient.Cache (threads)"] = origin.calls

    origin = Counted()
    thread_herd(cachetools.cached(cachetools.TTLCache(1000, 60), lock=threading.Lock())(origin.sync))
    out["cachetools.cached(lock=)"] = origin.calls

    origin = Counted()
    lock = threading.Lock()
    cond = threading.Condition(lock)
    thread_herd(cachetools.cached(cachetools.TTLCache(1000, 60), lock=lock, condition=cond)(origin.sync))
    out["cachetools.cached(condition=)"] = origin.calls

    from dogpile.cache import make_region

    origin = Counted()
    region = make_region().configure("dogpile.cache.memory", expiration_time=60)
    thread_herd(lambda x: region.get_or_create(f"k:{x}", lambda: origin.sync(x)))
    out["dogpile.cache get_or_create"] = origin.calls
    return out


async def async_stampede() -> dict[str, int]:
    out: dict[str, int] = {}

    origin = Counted()
    cache = rs.Cache(ttl=60, key="k:{x}")
    ours = cache(origin.coro)
    await asyncio.gather(*(ours(7) for _ in range(CALLERS)))
    out["resilient.Cache (tasks)"] = origin.calls

    from cashews import cache as cashews

    cashews.setup("mem://")
    for lock, protected in ((False, False), (False, True), (True, True)):
        origin = Counted()
        cw = cashews(ttl=60, lock=lock, protected=protected, key=f"cw{lock}{protected}:{{x}}")(origin.coro)
        await asyncio.gather(*(cw(7) for _ in range(CALLERS)))
        out[f"cashews @cache(lock={lock}, protected={protected})"] = origin.calls
    await cashews.close()

    from aiocache import cached as aio_cached
    from aiocache import cached_stampede

    origin = Counted()
    aio = aio_cached(ttl=60)(origin.coro)
    await asyncio.gather(*(aio(7) for _ in range(CALLERS)))
    out["aiocache @cached"] = origin.calls

    origin = Counted()
    aio_s = cached_stampede(ttl=60, lease=2)(origin.coro)
    await asyncio.gather(*(aio_s(7) for _ in range(CALLERS)))
    out["aiocache @cached_stampede"] = origin.calls
    return out


# -- report -----------------------------------------------------------------------------------


def main() -> dict[str, Any]:
    quiet()
    started = time.perf_counter()
    hits = sync_hits()
    hits.update(asyncio.run(async_hits()))
    reference = hits["cachetools.cached"]
    print(f"Hit path: ns per hit (best of {REPEAT}), and ratio to cachetools.cached (lower is faster)")
    for name, ns in hits.items():
        print(f"  {name:42s} {ns:9.0f} ns   x{ns / reference:5.2f}")
    ours_sync, ours_async = hits["resilient.Cache (sync)"], hits["resilient.Cache (async)"]
    print(f"  ours (sync) / cachetools.cached          = {ours_sync / reference:.2f}  (goal <= 2)")
    for peer in ("dogpile.cache get_or_create",):
        print(f"  {peer} / ours (sync){'':9s}= {hits[peer] / ours_sync:.2f}  (> 1: ours faster)")
    for peer in ("cashews @cache (mem://)", "aiocache @cached (memory)"):
        print(f"  {peer} / ours (async){'':1s}= {hits[peer] / ours_async:.2f}  (> 1: ours faster)")

    herd = sync_stampede()
    herd.update(asyncio.run(async_stampede()))
    print(
        f"\nStampede: origin calls for {CALLERS} concurrent cold callers of one key "
        f"({ORIGIN_SECONDS * 1000:.0f} ms origin)"
    )
    for name, calls in herd.items():
        print(f"  {name:46s} {calls:6d}")
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return {"hits_ns": hits, "stampede_origin_calls": herd}


if __name__ == "__main__":
    main()
