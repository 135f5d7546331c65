"""``cron``: 100 servers run the same cron job at the top of every hour.

The job queries a reporting service that answers in 500 ms and holds 10
queries at once (then it queues); each query times out after 2 s. Two clock
hours are simulated; time 0 is the first top of the hour (wall clock).

* ``naive``: every server's cron fires at hh:00:00 and queries at once: 100
  queries in the same second, most of them queued past their timeout.
* ``spread``: :class:`resilient.Spread` (60 s) starts each server's job at a
  random moment of the first minute: the same 100 queries, a few per second.
* ``spread+once``: :class:`resilient.Spread` then :class:`resilient.OncePer`
  (one hour, on a store shared by the fleet as a RedisStore would be): the
  first server to wake runs the job, the 99 others find the hour done.
"""

from __future__ import annotations

import asyncio
import math
import random

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "run_cron"]

STRATEGIES = ("naive", "spread", "spread+once")
HOUR, WINDOW, LATENCY, CAPACITY, TIMEOUT = 3600.0, 60.0, 0.5, 10, 2.0
PLOTTED = 75.0  # seconds after the top of the hour shown in the plot


async def _run_one(name: str, *, servers: int, hours: int, seed: int) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    first = math.ceil(clock.time() / HOUR) * HOUR - clock.time()  # loop time of the first hh:00:00
    recorder = Recorder(lambda: loop.time() - first)
    origin = SimOrigin(recorder, latency=LATENCY, capacity=CAPACITY)
    store = rs.MemoryStore()  # the fleet's shared store (a RedisStore in production)

    def policies(server: int) -> rs.Policy:
        timeout = rs.Timeout(TIMEOUT, clock=clock)
        if name == "naive":
            return timeout
        spread = rs.Spread(WINDOW, rng=random.Random(f"{seed}:cron:{server}"), clock=clock)
        if name == "spread":
            return rs.pipeline(spread, timeout)
        return rs.pipeline(spread, rs.OncePer(HOUR, store=store, key="hourly-report", clock=clock), timeout)

    jobs = [policies(i) for i in range(servers)]

    async def fire(job: rs.Policy) -> None:
        started = loop.time()
        try:
            await job.acall(origin.fetch)
        except Exception:
            recorder.request_done(loop.time() - started, ok=False)
        else:
            recorder.request_done(loop.time() - started, ok=True)

    for hour in range(hours):
        await asyncio.sleep(first + hour * HOUR - loop.time())
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(fire(job))
    until = hours * HOUR
    row = recorder.result(name, until=PLOTTED)
    row.extra["max calls/hour"] = max(recorder.calls_between(h * HOUR, (h + 1) * HOUR) for h in range(hours))
    row.extra["peak calls/s"] = recorder.peak_rps(0, until)
    return row


def run_cron(*, servers: int = 100, hours: int = 2, seed: int = 1) -> ScenarioResult:
    """Fire the hourly job on ``servers`` servers for ``hours`` clock hours under each strategy."""
    rows = []
    for name in STRATEGIES:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, servers=servers, hours=hours, seed=seed)

        rows.append(run_virtual(one))
    for row in rows:
        row.peak_origin_rps = row.extra.pop("peak calls/s")
    by = {r.name: r for r in rows}
    naive, spread, once = by["naive"], by["spread"], by["spread+once"]
    summary = [
        f"at the top of the hour: naive {naive.peak_origin_rps:,.0f} calls in one second, spread"
        f" {spread.peak_origin_rps:,.0f}/s at most, spread+once {once.extra['max calls/hour']:,.0f} per hour"
        f" ({once.origin_calls:,.0f} in {hours} h against naive's {naive.origin_calls:,.0f})",
        f"{servers} servers, cron at hh:00:00; the service answers in {LATENCY * 1000:g} ms, {CAPACITY} at once;"
        f" {TIMEOUT:g} s timeout; spread over {WINDOW:g} s; OncePer(3600) on one shared store",
    ]
    return ScenarioResult(
        name="cron",
        title=f"cron: {servers} servers run the same job at the top of the hour ({hours} h simulated)",
        strategies=rows,
        summary=summary,
        plot_x="seconds after the top of the hour",
    )
