"""``restart``: 50 instances restart at once with empty local caches and warm the same keys.

A deploy restarts the whole fleet in the same second. Each of the 50 instances
warms its cache with the 50 hottest of the 200 keys (a preload at start), while they
serve 5,000 requests/s over those keys (Zipf-popular: a few hot, a long tail),
each starting with nothing in memory. The origin answers in 200 ms and holds 500
queries at once (then it queues); callers time out after 1 s. The shared
cache is empty too (a new cache version ships with the deploy). Each
strategy is the library's real policies:

* ``naive``: each instance keeps its own cache (a dict) and calls the origin on
  every miss, with no coalescing: every instance loads the hot keys at start
  (50 x 50 calls in the same instant), and a key hit again while its load is in
  flight is loaded again.
* ``redis+leases``: ``rs.Cache`` on the shared store (as ``RedisStore``): one
  origin call per key for the whole fleet (the lease); every request is a Redis
  read, and a caller waiting for another instance's load polls.
* ``redis+near``: the same with ``near=rs.NearCache()`` per instance: after its
  first read an instance serves the key from memory (no Redis command), and a
  caller waiting for another instance's load is woken by the holder's write.
* ``redis+near+spread``: the same, with each warm-up load started at
  ``uniform(0, 2 s)`` by ``rs.Spread(2.0)``: the fleet's loads (and its Redis
  commands) are spread over two seconds instead of landing in one instant;
  requests meanwhile load what they need through the cache.

The shared store is a :class:`~resilient.MemoryStore` standing for Redis: each
command costs a 0.5 ms round trip, and every write reaches the other instances'
near caches 1 ms later (the real :class:`~resilient.NearCache` is used; only its
channel is simulated). "redis cmds" counts the commands the fleet sent it,
"redis peak/s" the most in any one second.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from itertools import accumulate
from typing import Any

import resilient as rs
from resilient.stores.base import Entry, Lookup
from resilient.stores.near import DROP, WAKE, AsyncWaiter, NearCache

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin, open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "SimRedis", "run_restart"]

STRATEGIES = ("naive", "redis+leases", "redis+near", "redis+near+spread")
WARM_SPREAD = 2.0
WARM_SHARE = 4  # each instance preloads the hottest quarter of the keys
TIMEOUT = 1.0
LATENCY, CAPACITY = 0.2, 500
RTT, PROPAGATION = 0.0005, 0.001


class SimRedis:
    """One instance's view of the shared store: a round trip per command, and the near cache's channel.

    Implements the store interface (async forms; the sync ones delegate without
    delay) over one shared ``MemoryStore``; with ``near``, reads are served from
    it as ``RedisStore(..., near=)`` does, and writes notify every instance's near cache.
    """

    def __init__(self, shared: rs.MemoryStore, fleet: list[NearCache], counts: Recorder, near: bool) -> None:
        self.shared = shared
        self.fleet = fleet
        self.counts = counts
        self.serializer = None
        self.near: NearCache | None = None
        if near:
            self.near = NearCache()
            fleet.append(self.near)

    def attach(self, clock: rs.Clock) -> None:
        if self.near is not None:
            self.near.attach(self, clock.time)
            self.near.up()

    async def _trip(self) -> None:
        self.counts.origin_started()  # the recorder counts Redis commands here, and their busiest second
        await asyncio.sleep(RTT)
        self.counts.origin_finished()

    def _publish(self, kind: bytes, key: str) -> None:
        sender = b"-" if self.near is None else self.near.sender
        loop = asyncio.get_running_loop()
        for near in self.fleet:
            loop.call_later(PROPAGATION, near.notified, kind, key, sender)

    def near_get(self, key: str) -> Entry | None:
        return None if self.near is None else self.near.get(key)

    def awatch(self, key: str) -> AsyncWaiter | None:
        return None if self.near is None else self.near.awatch(key)

    async def aget(self, key: str) -> Entry | None:
        near = self.near
        ticket = None
        if near is not None:
            entry = near.get(key)
            if entry is not None:
                return entry
            ticket = near.begin(key)
        await self._trip()
        entry = self.shared.get(key)
        if entry is not None and near is not None:
            near.install(key, ticket, entry)
        return entry

    async def alookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        ticket = None if self.near is None else self.near.begin(key)
        await self._trip()
        found = self.shared.lookup(key, now=now, lease_ttl=lease_ttl)
        if found.entry is not None and self.near is not None:
            self.near.install(key, ticket, found.entry)
        return found

    async def aset(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        if self.near is not None:
            self.near.invalidate(key)
        await self._trip()
        wrote = self.shared.set(key, entry, now=now, lease=lease)
        if wrote:
            self._publish(DROP, key)
        if self.near is not None:
            self.near.invalidate(key)
        return wrote

    async def arelease(self, key: str, lease: str) -> None:
        await self._trip()
        self.shared.release(key, lease)
        self._publish(WAKE, key)

    async def ainvalidate(self, key: str) -> None:
        await self._trip()
        self.shared.invalidate(key)
        self._publish(DROP, key)

    # the sync forms (the store interface asks for them; the lab is async)
    def get(self, key: str) -> Entry | None:
        return self.shared.get(key)

    def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        return self.shared.lookup(key, now=now, lease_ttl=lease_ttl)

    def set(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        return self.shared.set(key, entry, now=now, lease=lease)

    def release(self, key: str, lease: str) -> None:
        self.shared.release(key, lease)

    def invalidate(self, key: str) -> None:
        self.shared.invalidate(key)


def _build(
    name: str, *, origin: SimOrigin, clock: rs.Clock, rng: random.Random, instances: int, counts: Recorder
) -> Callable[[int, str], Awaitable[Any]]:
    """``get(instance, key)`` for the strategy, each instance with its own (empty) local state."""

    async def fetch(key: str) -> int:
        async with asyncio.timeout(TIMEOUT):
            return await origin.fetch()

    if name == "naive":
        local: list[dict[str, Any]] = [{} for _ in range(instances)]

        async def naive(instance: int, key: str) -> Any:
            held = local[instance]
            if key not in held:
                held[key] = await fetch(key)
            return held[key]

        return naive

    shared = rs.MemoryStore(maxsize=100_000)
    fleet: list[NearCache] = []
    cached = []
    for _ in range(instances):
        store = SimRedis(shared, fleet, counts, near=name.startswith("redis+near"))
        store.attach(clock)
        cache = rs.Cache(ttl=300, store=store, key="item:{key}", lock_wait=2 * TIMEOUT, clock=clock, rng=rng)
        cached.append(cache(fetch))

    async def through_cache(instance: int, key: str) -> Any:
        return await cached[instance](key)

    return through_cache


async def _run_one(name: str, *, instances: int, rate: float, keys: int, duration: float, seed: int) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    rng = random.Random(f"{seed}:restart:{name}")
    recorder = Recorder(loop.time)
    origin = SimOrigin(recorder, latency=LATENCY, capacity=CAPACITY)
    counts = Recorder(loop.time)
    get = _build(name, origin=origin, clock=clock, rng=rng, instances=instances, counts=counts)
    warm = rs.Spread(WARM_SPREAD, rng=rng, clock=clock)(get) if name.endswith("+spread") else get
    names = [f"k{i}" for i in range(keys)]
    weights = list(accumulate(1.0 / (i + 1) for i in range(keys)))  # Zipf, s = 1
    draw = random.Random(f"{seed}:restart:keys")  # the same requests for every strategy
    counter = 0

    async def request() -> None:
        nonlocal counter
        counter += 1
        [key] = draw.choices(names, cum_weights=weights)
        await get(counter % instances, key)

    # Every instance warms the hottest keys at start, beside the requests (a failed warm-up load is skipped).
    async def warm_one(instance: int, key: str) -> None:
        await warm(instance, key)

    hot = names[: max(1, keys // WARM_SHARE)]
    warming = [loop.create_task(warm_one(i, key)) for i in range(instances) for key in hot]
    await open_loop(recorder, request, rate=rate, duration=duration, drain=10 * TIMEOUT)
    await asyncio.gather(*warming, return_exceptions=True)
    extra = {"redis_cmds": counts.origin_calls, "redis_peak_rps": counts.peak_rps()}
    return recorder.result(name, until=loop.time(), extra=extra)


def run_restart(
    *,
    instances: int = 50,
    rate: float = 5000,
    keys: int = 200,
    duration: float = 2.0,
    strategies: tuple[str, ...] = STRATEGIES,
    seed: int = 1,
) -> ScenarioResult:
    """Run each strategy on a fresh virtual loop; one row each, plus the headline ratios."""
    rows: list[StrategyResult] = []
    for name in strategies:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, instances=instances, rate=rate, keys=keys, duration=duration, seed=seed)

        rows.append(run_virtual(one))
    by_name = {r.name: r for r in rows}
    summary = []
    naive, leases, near = by_name.get("naive"), by_name.get("redis+leases"), by_name.get("redis+near")
    if naive is not None and leases is not None:
        summary.append(
            f"origin calls naive / redis+leases: {naive.origin_calls:,} / {leases.origin_calls:,}"
            f" = {naive.origin_calls / max(1, leases.origin_calls):,.0f}x (leases: one call per key for the fleet)"
        )
    if leases is not None and near is not None:
        cmds, near_cmds = leases.extra["redis_cmds"], near.extra["redis_cmds"]
        summary.append(
            f"redis commands redis+leases / redis+near: {cmds:,.0f} / {near_cmds:,.0f}"
            f" = {cmds / max(1.0, near_cmds):,.0f}x fewer with a near cache; p99 {leases.p99_ms:,.0f} ms"
            f" -> {near.p99_ms:,.0f} ms (waiters woken by the write, not polling)"
        )
    summary.append(
        f"{instances} instances restart at once, {rate:,.0f} requests/s over {keys} keys (Zipf), {duration:g} s;"
        f" origin 200 ms, 500 at once; Redis 0.5 ms a command, near invalidation 1 ms"
    )
    spread = by_name.get("redis+near+spread")
    if near is not None and spread is not None:
        summary.append(
            f"rs.Spread({WARM_SPREAD:g}) on warm-up: peak origin concurrency {near.peak_origin_concurrency:,}"
            f" -> {spread.peak_origin_concurrency:,}, Redis's busiest second {near.extra['redis_peak_rps']:,.0f}"
            f" -> {spread.extra['redis_peak_rps']:,.0f} commands"
        )
    return ScenarioResult(
        name="restart",
        title=f"restart: {instances} instances restart at once with empty caches ({keys} keys, {rate:,.0f}/s)",
        strategies=rows,
        summary=summary,
        plot_log=True,
    )
