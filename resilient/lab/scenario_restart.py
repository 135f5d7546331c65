"""``restart``: 50 instances restart at once with empty local caches and warm the same keys.

A deploy restarts the whole fleet in the same second. 50 instances then serve
5,000 requests/s over 200 keys (Zipf-popular: a few hot, a long tail), each
starting with nothing in memory. The origin answers in 200 ms and holds 500
queries at once (then it queues); callers time out after 1 s. The shared
cache is empty too (a new cache version ships with the deploy). Each
strategy is the library's real policies:

* ``naive``: each instance keeps its own cache (a dict) and calls the origin on
  every miss, with no coalescing: every instance loads every key, and a key hit
  again while its load is in flight is loaded again.
* ``redis+leases``: ``rs.Cache`` on the shared store (as ``RedisStore``): one
  origin call per key for the whole fleet (the lease); every request is a Redis
  read, and a caller waiting for another instance's load polls.
* ``redis+near``: the same with ``near=rs.NearCache()`` per instance: after its
  first read an instance serves the key from memory (no Redis command), and a
  caller waiting for another instance's load is woken by the holder's write.

``rs.Spread`` on warm-up (the DESIGN's fourth row) is not in this table yet: it
ships with the issue on collapsing and cron storms.

The shared store is a :class:`~resilient.MemoryStore` standing for Redis: each
command costs a 0.5 ms round trip, and every write reaches the other instances'
near caches 1 ms later (the real :class:`~resilient.NearCache` is used; only its
channel is simulated). "redis cmds" counts the commands the fleet sent it.
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

STRATEGIES = ("naive", "redis+leases", "redis+near")
TIMEOUT = 1.0
LATENCY, CAPACITY = 0.2, 500
RTT, PROPAGATION = 0.0005, 0.001


class SimRedis:
    """One instance's view of the shared store: a round trip per command, and the near cache's channel.

    Implements the store interface (async forms; the sync ones delegate without
    delay) over one shared ``MemoryStore``; with ``near``, reads are served from
    it as ``RedisStore(..., near=)`` does, and writes notify every instance's near cache.
    """

    def __init__(self, shared: rs.MemoryStore, fleet: list[NearCache], counts: list[int], near: bool) -> None:
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
        self.counts[0] += 1
        await asyncio.sleep(RTT)

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
    name: str, *, origin: SimOrigin, clock: rs.Clock, rng: random.Random, instances: int, counts: list[int]
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
        store = SimRedis(shared, fleet, counts, near=name == "redis+near")
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
    counts = [0]
    get = _build(name, origin=origin, clock=clock, rng=rng, instances=instances, counts=counts)
    names = [f"k{i}" for i in range(keys)]
    weights = list(accumulate(1.0 / (i + 1) for i in range(keys)))  # Zipf, s = 1
    draw = random.Random(f"{seed}:restart:keys")  # the same requests for every strategy
    counter = 0

    async def request() -> None:
        nonlocal counter
        counter += 1
        [key] = draw.choices(names, cum_weights=weights)
        await get(counter % instances, key)

    await open_loop(recorder, request, rate=rate, duration=duration, drain=10 * TIMEOUT)
    return recorder.result(name, until=loop.time(), extra={"redis_cmds": counts[0] if name != "naive" else 0})


def run_restart(
    *,
    instances: int = 50,
    rate: float = 5000,
    keys: int = 200,
    duration: float = 3.0,
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
    summary.append("rs.Spread on warm-up: not in this table yet (it comes with the issue on cron storms)")
    return ScenarioResult(
        name="restart",
        title=f"restart: {instances} instances restart at once with empty caches ({keys} keys, {rate:,.0f}/s)",
        strategies=rows,
        summary=summary,
        plot_log=True,
    )
