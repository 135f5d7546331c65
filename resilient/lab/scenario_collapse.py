"""``collapse``: 1,000 distinct product ids requested within 10 ms (Hystrix's request collapsing).

A page fan-out asks for 1,000 different products in 10 ms. The product
service answers a query for up to ``max_size`` ids in 20 ms and holds 50
queries at once (then it queues).

* ``naive``: one query per id: 1,000 queries, most of them queued.
* ``batch``: :class:`resilient.Batch` (5 ms window, ``max_size`` ids) collapses
  the ids that arrive together into one query each: ``ceil(1000 / max_size)``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin, open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "run_collapse"]

STRATEGIES = ("naive", "batch")
LATENCY, CAPACITY, WINDOW = 0.020, 50, 0.005


async def _run_one(name: str, *, ids: int, spread: float, max_size: int) -> StrategyResult:
    loop = asyncio.get_running_loop()
    recorder = Recorder(loop.time, bucket=0.01)
    origin = SimOrigin(recorder, latency=LATENCY, capacity=CAPACITY)
    counter = iter(range(ids))

    async def products(keys: list[int]) -> dict[int, str]:
        await origin.fetch()
        return {k: f"product-{k}" for k in keys}

    if name == "naive":

        async def request() -> Any:
            key = next(counter)
            return (await products([key]))[key]

    else:
        loader = rs.Batch(window=WINDOW, max_size=max_size, clock=VirtualClock(loop))(products)

        async def request() -> Any:
            return await loader.aload(next(counter))

    await open_loop(recorder, request, rate=ids / spread, duration=spread, tick=0.001)
    until = 1.2
    row = recorder.result(name, until=until)
    row.extra["ids/call"] = round(ids / max(1, recorder.origin_calls), 1)
    return row


def run_collapse(*, ids: int = 1000, spread: float = 0.010, max_size: int = 100) -> ScenarioResult:
    """Request ``ids`` distinct ids within ``spread`` seconds, with and without :class:`resilient.Batch`."""
    rows = []
    for name in STRATEGIES:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, ids=ids, spread=spread, max_size=max_size)

        rows.append(run_virtual(one))
    naive, batch = rows
    expected = math.ceil(ids / max_size)
    summary = [
        f"origin queries: naive {naive.origin_calls:,.0f} (one per id) against batch {batch.origin_calls:,.0f}"
        f" (ceil({ids:,}/{max_size}) = {expected}) -> {naive.origin_calls / max(1, batch.origin_calls):.0f}x fewer",
        f"{ids:,} distinct ids in {spread * 1000:g} ms; the service answers a query (up to {max_size} ids)"
        f" in {LATENCY * 1000:g} ms, {CAPACITY} at once; window {WINDOW * 1000:g} ms",
    ]
    return ScenarioResult(
        name="collapse",
        title=f"collapse: {ids:,} distinct product ids within {spread * 1000:g} ms (request collapsing)",
        strategies=rows,
        summary=summary,
        plot_log=True,
    )
