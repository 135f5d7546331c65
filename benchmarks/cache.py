"""Cache hit cost and stampede protection: resilient.Cache beside its peers, in one run.

Hit path: the cost of one cache hit for a function of one int argument, sync
(a bare ``cachetools.TTLCache`` lookup, ``cachetools.cached``, dogpile.cache's
``get_or_create``) and async (cashews and aiocache memory backends), printed in
nanoseconds and as ratios to ``cachetools.cached``. The candidates take turns
within each timing round, so a busy spell on a shared machine hits them alike.

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


Candidate = tuple[bool, Callable[[], Any]]  # (is_async, fn)


def _loop_ns(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


async def _aloop_ns(fn: Callable[[], Awaitable[Any]], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        await fn()
    return time.perf_counter() - start


async def measure(candidates: dict[str, Candidate]) -> dict[str, float]:
    """ns per call for each candidate: best of REPEAT rounds, the candidates taking turns
    within each round (so a busy spell on a shared machine hits them all alike)."""
    numbers: dict[str, int] = {}
    for name, (is_async, fn) in candidates.items():
        took = await _aloop_ns(fn, 200) if is_async else _loop_ns(fn, 200)
        numbers[name] = max(200, min(MAX_NUMBER, int(ROUND / max(took / 200, 1e-9))))
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(REPEAT):
        for name, (is_async, fn) in candidates.items():
            n = numbers[name]
            took = await _aloop_ns(fn, n) if is_async else _loop_ns(fn, n)
            best[name] = min(best[name], took / n * 1e9)
    return best


async def hits() -> dict[str, float]:
    """Hit cost of every cache, each primed with one entry for the argument 1."""
    c: dict[str, Candidate] = {}

    ttl_cache: cachetools.TTLCache[int, int] = cachetools.TTLCache(1000, 60)
    ttl_cache[1] = 1
    c["cachetools.TTLCache[k] (bare lookup)"] = (False, lambda: ttl_cache[1])

    @cachetools.cached(cachetools.TTLCache(1000, 60))
    def ct(x: int) -> int:
        return x

    c["cachetools.cached"] = (False, lambda: ct(1))

    @rs.Cache(ttl=60)
    def ours(x: int) -> int:
        return x

    c["resilient.Cache (sync)"] = (False, lambda: ours(1))

    @rs.Cache(ttl=60, key="item:{x}")
    def ours_t(x: int) -> int:
        return x

    c["resilient.Cache key='item:{x}' (sync)"] = (False, lambda: ours_t(1))

    @rs.Cache(ttl=60, early_recompute=rs.XFetch())
    def ours_x(x: int) -> int:
        return x

    c["resilient.Cache +XFetch (sync)"] = (False, lambda: ours_x(1))

    @rs.pipeline(rs.Cache(ttl=60), rs.Retry())
    def ours_p(x: int) -> int:
        return x

    c["rs.pipeline(Cache, Retry) (Context path)"] = (False, lambda: ours_p(1))

    from dogpile.cache import make_region

    region = make_region().configure("dogpile.cache.memory", expiration_time=60)
    c["dogpile.cache get_or_create"] = (False, lambda: region.get_or_create("k:1", lambda: 1))

    @rs.Cache(ttl=60)
    async def ours_async(x: int) -> int:
        return x

    c["resilient.Cache (async)"] = (True, lambda: ours_async(1))

    from cashews import cache as cashews

    cashews.setup("mem://")

    @cashews(ttl=60)
    async def cw(x: int) -> int:
        return x

    c["cashews @cache (mem://)"] = (True, lambda: cw(1))

    @cashews(ttl=60, protected=False)
    async def cw_bare(x: int) -> int:
        return x

    c["cashews @cache(protected=False)"] = (True, lambda: cw_bare(1))

    from aiocache import cached as aio_cached

    @aio_cached(ttl=60)
    async def aio(x: int) -> int:
        return x

    c["aiocache @cached (memory)"] = (True, lambda: aio(1))

    for is_async, fn in c.values():  # prime every cache
        if is_async:
            await fn()
        else:
            fn()
    try:
        return await measure(c)
    finally:
        await cashews.close()


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
    hit_ns = asyncio.run(hits())
    reference = hit_ns["cachetools.cached"]
    print(f"Hit path: ns per hit (best of {REPEAT}), and ratio to cachetools.cached (lower is faster)")
    for name, ns in hit_ns.items():
        print(f"  {name:42s} {ns:9.0f} ns   x{ns / reference:5.2f}")
    ours_sync, ours_async = hit_ns["resilient.Cache (sync)"], hit_ns["resilient.Cache (async)"]
    print(f"  ours (sync) / cachetools.cached  = {ours_sync / reference:.2f}  (goal <= 2)")
    print(f"  ours (async) / cachetools.cached = {ours_async / reference:.2f}")
    for peer in ("dogpile.cache get_or_create",):
        print(f"  {peer} / ours (sync) = {hit_ns[peer] / ours_sync:.2f}  (> 1: ours faster)")
    for peer in ("cashews @cache (mem://)", "cashews @cache(protected=False)", "aiocache @cached (memory)"):
        print(f"  {peer} / ours (async) = {hit_ns[peer] / ours_async:.2f}  (> 1: ours faster)")

    herd = sync_stampede()
    herd.update(asyncio.run(async_stampede()))
    print(
        f"\nStampede: origin calls for {CALLERS} concurrent cold callers of one key "
        f"({ORIGIN_SECONDS * 1000:.0f} ms origin)"
    )
    for name, calls in herd.items():
        print(f"  {name:46s} {calls:6d}")
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return {"hits_ns": hit_ns, "stampede_origin_calls": herd}


if __name__ == "__main__":
    main()
