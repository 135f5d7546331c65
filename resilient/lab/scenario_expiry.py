"""``expiry``: the founding scenario — one hot key expires under 5,000 requests/s.

A fleet of app instances (20 by default) serves 5,000 requests/s for one key
from a shared cache. The origin answers in 200 ms and holds 500 queries at
once; beyond that they queue, so its latency grows with its queue. Clients
time out after 1 s and retry. The key is written once before the load starts
(its TTL 2 s) and expires mid-run, once. Each strategy is the library's real
policies, configured as a user would:

* ``naive``: cache-aside on the shared cache, fixed TTL, immediate retries.
* ``jitter``: the same with a jittered TTL and full-jitter retries.
* ``coalesce``: naive plus ``rs.Coalesce`` in each instance (one call per instance).
* ``lock-stale``: ``rs.Cache`` on the shared store (lease + stale while refreshing).
* ``xfetch``: ``rs.Cache`` with ``early_recompute=rs.XFetch()``, no stale serving.
* ``combined``: ``rs.Cache`` (TTL jitter, lease, stale, XFetch) around a loader
  guarded by ``rs.Retry`` with a ``rs.RetryBudget`` and a ``rs.CircuitBreaker``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin, open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "run_expiry"]

STRATEGIES = ("naive", "jitter", "coalesce", "lock-stale", "xfetch", "combined")
TIMEOUT = 1.0
KEY = "hot"
LATENCY, CAPACITY = 0.2, 500

Get = Callable[[int], Awaitable[Any]]


class _AsideCache:
    """The naive shared cache of cache-aside (a dict standing for memcached/Redis GET/SET)."""

    def __init__(self, clock: rs.Clock) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[Any, float]] = {}

    def get(self, key: str) -> Any:
        entry = self.entries.get(key)
        if entry is None or entry[1] <= self.clock.monotonic():
            return None
        return entry[0]

    def set(self, key: str, value: Any, ttl: float) -> None:
        self.entries[key] = (value, self.clock.monotonic() + ttl)


def _build(name: str, *, origin: SimOrigin, clock: rs.Clock, rng: random.Random, instances: int, ttl: float) -> Get:
    """One ``get(instance)`` coroutine function per strategy, each instance with its own policies."""

    async def fetch(name: str) -> int:
        return await origin.fetch()

    if name in ("naive", "jitter", "coalesce"):
        aside = _AsideCache(clock)
        jitter = name == "jitter"
        backoff = rs.FullJitter(0.05, 1.0) if jitter else rs.Constant(0)

        def loader() -> Callable[[str], Awaitable[int]]:
            policies: list[rs.Policy] = [rs.Coalesce(key="item:{name}")] if name == "coalesce" else []
            policies += [rs.Retry(attempts=3, backoff=backoff, clock=clock, rng=rng), rs.Timeout(TIMEOUT, clock=clock)]
            return rs.pipeline(*policies)(fetch)

        loaders = [loader() for _ in range(instances)]

        async def get_aside(instance: int) -> Any:
            value = aside.get(KEY)
            if value is None:
                value = await loaders[instance](KEY)
                aside.set(KEY, value, rs.jittered(ttl, ttl / 10, rng=rng) if jitter else ttl)
            return value

        return get_aside

    store = rs.MemoryStore()  # shared by the fleet, as Redis would be
    budget = rs.RetryBudget(ratio=0.1, clock=clock)

    def cached() -> Callable[[str], Awaitable[int]]:
        options: dict[str, Any] = {"ttl": ttl, "store": store, "key": "item:{name}", "clock": clock, "rng": rng}
        guard: list[rs.Policy] = [rs.Timeout(TIMEOUT, clock=clock)]
        if name == "lock-stale":
            options.update(ttl_jitter=0, serve_stale=True)
        elif name == "xfetch":
            options.update(ttl_jitter=0, serve_stale=False, early_recompute=rs.XFetch(beta=1.0))
        else:  # combined
            options.update(serve_stale=True, early_recompute=rs.XFetch(beta=1.0))
            retry = rs.Retry(attempts=3, backoff=rs.FullJitter(0.05, 1.0), budget=budget, clock=clock, rng=rng)
            breaker = rs.CircuitBreaker(failure_threshold=5, reset_timeout=5, clock=clock)
            guard = [retry, breaker, *guard]
        return rs.pipeline(rs.Cache(**options), *guard)(fetch)

    getters = [cached() for _ in range(instances)]

    async def get_cached(instance: int) -> Any:
        return await getters[instance](KEY)

    return get_cached


async def _run_one(name: str, *, rate: float, ttl: float, instances: int, seed: int) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    rng = random.Random(f"{seed}:expiry:{name}")
    origin = SimOrigin(Recorder(loop.time), latency=LATENCY, capacity=CAPACITY)
    get = _build(name, origin=origin, clock=clock, rng=rng, instances=instances, ttl=ttl)
    await get(0)  # warm the key: written once, it expires mid-run
    recorder = origin.recorder = Recorder(loop.time)
    stale = 0

    def listen(event: dict[str, Any]) -> None:
        nonlocal stale
        if event["event"] == "cache.stale_served":
            stale += 1

    counter = 0

    async def request() -> None:
        nonlocal counter
        counter += 1
        await get(counter % instances)

    rs.add_listener(listen)
    try:
        duration = 1.5 * ttl
        await open_loop(recorder, request, rate=rate, duration=duration, drain=10 * TIMEOUT)
    finally:
        rs.remove_listener(listen)
    recorder.stale_served = stale
    refreshes = recorder.refreshes
    extra = {"refreshes": refreshes, "calls_per_refresh": round(recorder.origin_calls / max(1, refreshes), 1)}
    return recorder.result(name, until=loop.time(), extra=extra)


def run_expiry(
    *,
    rate: float = 5000,
    ttl: float = 2.0,
    instances: int = 20,
    strategies: tuple[str, ...] = STRATEGIES,
    seed: int = 1,
) -> ScenarioResult:
    """Run each strategy on a fresh virtual loop; one row each, plus the naive/combined ratio."""
    rows: list[StrategyResult] = []
    for name in strategies:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, rate=rate, ttl=ttl, instances=instances, seed=seed)

        rows.append(run_virtual(one))
    summary = []
    by_name = {r.name: r for r in rows}
    naive, combined = by_name.get("naive"), by_name.get("combined")
    if naive is not None and combined is not None:
        ratio = naive.origin_calls / max(1, combined.origin_calls)
        per_refresh = naive.extra["calls_per_refresh"] / max(1.0, combined.extra["calls_per_refresh"])
        summary.append(
            f"origin calls naive/combined: {naive.origin_calls:,} / {combined.origin_calls:,} = {ratio:,.0f}x"
            f" ({naive.extra['calls_per_refresh']:,.0f} vs {combined.extra['calls_per_refresh']:,.1f} per refresh:"
            f" {per_refresh:,.0f}x)"
        )
    if naive is not None:
        load = naive.peak_origin_concurrency / CAPACITY
        summary.append(
            f"naive{' overloads the origin' if load > 1 else ''}: {naive.peak_origin_concurrency:,} queries in flight"
            f" for its {CAPACITY} slots ({load:.1f}x), p99 {naive.p99_ms:,.0f} ms against a hit's 0 ms"
        )
    jitter = by_name.get("jitter")
    if naive is not None and jitter is not None and jitter.origin_calls > naive.origin_calls / 2:
        summary.append("jitter spreads the expiries of many keys and the retries; one hot key still stampedes")
    summary.append(
        f"{rate:,.0f} requests/s on one key across {instances} instances; origin 200 ms, 500 at once;"
        f" TTL {ttl:g} s (one expiry in the run; XFetch refreshes early, so more often)"
    )
    summary.append("a refresh = an origin call begun while none was in flight; calls begun meanwhile join it")
    return ScenarioResult(
        name="expiry",
        title=f"expiry: one hot key expires under {rate:,.0f} requests/s (origin 200 ms, 500 concurrent)",
        strategies=rows,
        summary=summary,
        plot_log=True,
    )
