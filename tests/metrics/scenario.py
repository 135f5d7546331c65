"""A scripted herd for the metrics tests: what the run did, to check the exporters against.

A herd of 10 callers on a cold key (one origin call of 0.2 s, then 5 hits),
a retry storm of 10 calls against a failing function (a budget stops it), a
breaker opening after 3 failures (2 calls rejected), and a bulkhead of 2
filled (3 calls rejected) — all on a FakeClock, nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import resilient as rs
from resilient.testing import FakeClock

HERD = 10
HITS = 5
ORIGIN_SECONDS = 0.2
STORM = 10
BREAKER_CALLS = 5
THRESHOLD = 3
BULKHEAD = 2
OVERFLOW = 3


@dataclass
class Truth:
    """What the run did, counted beside the policies (not read from them)."""

    origin_calls: int = 0
    storm_invocations: int = 0
    storm_failures_seen: int = 0
    breaker_invocations: int = 0
    breaker_open_errors: int = 0
    bulkhead_full_errors: int = 0
    during_hold: dict[Any, Any] = field(default_factory=dict)


async def run(exporter: Any, scrape: Callable[[], dict[Any, float]]) -> Truth:
    """Drive the four herds through policies watched by ``exporter``; ``scrape()`` runs while the bulkhead is full."""
    truth = Truth()
    clock = FakeClock()

    # 1. a herd on a cold key
    cache = exporter.watch(rs.Cache(ttl=60, clock=clock), "products")
    gate = asyncio.Event()

    @cache
    async def product(pid: int) -> dict[str, int]:
        truth.origin_calls += 1
        await gate.wait()
        clock.advance(ORIGIN_SECONDS)
        return {"id": pid}

    herd = [asyncio.ensure_future(product(1)) for _ in range(HERD)]
    for _ in range(10):  # let every caller reach the cache before the origin answers
        await asyncio.sleep(0)
    gate.set()
    assert [await t for t in herd] == [{"id": 1}] * HERD
    for _ in range(HITS):
        assert await product(1) == {"id": 1}

    # 2. a retry storm against a failing function, stopped by the budget
    budget = rs.RetryBudget(ratio=0.1, min_per_second=0.1, window=10, clock=clock)
    retry = exporter.watch(rs.Retry(attempts=3, backoff=rs.Constant(0), budget=budget, clock=clock), "storm")

    @retry
    def flaky() -> None:
        truth.storm_invocations += 1
        raise ConnectionError("origin down")

    for _ in range(STORM):
        with pytest.raises(ConnectionError):
            flaky()
        truth.storm_failures_seen += 1

    # 3. a breaker opening
    breaker = exporter.watch(rs.CircuitBreaker(failure_threshold=THRESHOLD, reset_timeout=30, clock=clock), "payments")

    @breaker
    def pay() -> None:
        truth.breaker_invocations += 1
        raise TimeoutError("payments slow")

    for _ in range(BREAKER_CALLS):
        try:
            pay()
        except rs.CircuitOpenError:
            truth.breaker_open_errors += 1
        except TimeoutError:
            pass

    # 4. a bulkhead filling
    bulkhead = exporter.watch(rs.Bulkhead(BULKHEAD), "db")
    release = asyncio.Event()
    entered = 0

    @bulkhead
    async def query() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "row"

    holders = [asyncio.ensure_future(query()) for _ in range(BULKHEAD)]
    try:
        for _ in range(10):
            await asyncio.sleep(0)
        assert entered == BULKHEAD
        for _ in range(OVERFLOW):
            try:
                await query()
            except rs.BulkheadFullError:
                truth.bulkhead_full_errors += 1
        truth.during_hold = scrape()
    finally:
        release.set()
        await asyncio.gather(*holders, return_exceptions=True)
    return truth
