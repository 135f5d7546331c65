"""``partition``: clients queue their requests through a 30 s network partition, then release them at once.

Ten client instances send 100 requests/s in all to a service that answers in
50 ms and holds 10 at once (a capacity of 200/s; beyond that it queues). From
t=5 s to t=35 s the network is partitioned: requests wait in the clients'
queues (3,000 of them). When it heals, every queued request goes at once, on
top of the normal load. Each attempt times out after 1 s; the service still
works through what it had queued (it cannot see that the caller left).

* ``naive``: ``Retry`` (3 attempts, full jitter): the 3,000 released requests
  and their retries pile onto the service: timeouts feed retries, which feed
  the queue.
* ``rate-limit``: a :class:`resilient.RateLimiter` per instance (18/s, bursts
  of 2: 180/s for the fleet, under the capacity); the excess is refused at once.
* ``load-shed``: a :class:`resilient.LoadShedder` in front of the service
  (20 in flight at most, or latency 3x its baseline): the excess is refused
  at once rather than queued.
* ``throttle+budget``: :class:`resilient.AdaptiveThrottle` (k=2) per instance
  and a fleet-wide :class:`resilient.RetryBudget` (10 %): clients refuse locally
  what the service keeps refusing, and retries stay a tenth of the calls.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin, open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "run_partition"]

STRATEGIES = ("naive", "rate-limit", "load-shed", "throttle+budget")
INSTANCES, RATE, LATENCY, SLOTS, TIMEOUT = 10, 100.0, 0.050, 10, 1.0
CAPACITY = SLOTS / LATENCY  # requests per second the service completes


async def _run_one(name: str, *, partition: tuple[float, float], after: float, seed: int) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    rng = random.Random(f"{seed}:partition:{name}")
    recorder = Recorder(loop.time)
    origin = SimOrigin(recorder, latency=LATENCY, capacity=SLOTS)
    budget = rs.RetryBudget(ratio=0.1, min_per_second=1, window=10, clock=clock)
    shedder = rs.LoadShedder(20, latency_factor=3.0, window=2.0, clock=clock)

    def instance() -> rs.Policy:
        retry = rs.Retry(
            attempts=3,
            backoff=rs.FullJitter(0.1, 2.0),
            budget=budget if name == "throttle+budget" else None,
            clock=clock,
            rng=rng,
        )
        guard: list[rs.Policy] = []
        if name == "rate-limit":
            guard.append(rs.RateLimiter(0.9 * CAPACITY / INSTANCES, burst=2, clock=clock))
        elif name == "load-shed":
            guard.append(shedder)
        elif name == "throttle+budget":
            guard.append(rs.AdaptiveThrottle(k=2.0, clock=clock, rng=rng))
        return rs.pipeline(retry, *guard, rs.Timeout(TIMEOUT, clock=clock))

    clients = [instance() for _ in range(INSTANCES)]
    next_client = itertools.cycle(clients)
    healed = asyncio.Event()
    loop.call_at(partition[1], healed.set)

    async def request() -> Any:
        client = next(next_client)
        if partition[0] <= loop.time() < partition[1]:
            await healed.wait()  # queued behind the partition
        return await client.acall(origin.fetch)

    until = partition[1] + after
    await open_loop(recorder, request, rate=RATE, duration=until, tick=0.01, drain=10.0)
    row = recorder.result(name, until=until)
    row.extra["heal peak/s"] = recorder.peak_rps(partition[1], until)
    row.extra["capacity/s"] = CAPACITY
    return row


def run_partition(
    *, partition: tuple[float, float] = (5.0, 35.0), after: float = 15.0, seed: int = 1
) -> ScenarioResult:
    """Run each strategy through the partition; rows carry the peak load at heal beside the capacity."""
    rows = []
    for name in STRATEGIES:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, partition=partition, after=after, seed=seed)

        rows.append(run_virtual(one))
    queued = RATE * (partition[1] - partition[0])
    summary = [
        "peak load at heal (busiest second after it) against the service's capacity of"
        f" {CAPACITY:,.0f}/s: " + ", ".join(f"{r.name} {r.extra['heal peak/s']:,.0f}/s" for r in rows),
        f"{queued:,.0f} requests queued during the {partition[1] - partition[0]:g} s partition,"
        f" released at t={partition[1]:g}s; normal load {RATE:g}/s from {INSTANCES} instances;"
        f" service {LATENCY * 1000:g} ms, {SLOTS} at once; {TIMEOUT:g} s timeout per attempt, 3 attempts",
        "the throttle admits up to k x the accepts it saw: the queued burst arrives on a clean history, so it"
        " only cuts in once timeouts come back; a rate limit or a shedder caps the burst itself",
    ]
    return ScenarioResult(
        name="partition",
        title=f"partition: {queued:,.0f} requests queued during a {partition[1] - partition[0]:g} s partition,"
        " released at once when it heals",
        strategies=rows,
        summary=summary,
    )
