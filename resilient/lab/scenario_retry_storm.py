"""``retry-storm``: a dependency goes down for 30 s under 1,000 clients, then comes back.

The clients (an open loop: 1,000 of them, one request every 20 s each) call
through the library's :class:`resilient.Retry` (5 attempts) with a 1 s
timeout per attempt. While the dependency is down every attempt fails fast,
so each request becomes five: the load on it multiplies. When it comes back
it has its normal capacity (twice the clients' own load): the retries still
in flight plus the new requests overload it, attempts queue past their
timeout, time out, and are retried again — the storm can outlive the outage.
A :class:`resilient.RetryBudget` caps retries at a tenth of the calls; an
``AdaptiveThrottle`` (when the library has it) refuses locally what the
dependency keeps refusing.
"""

from __future__ import annotations

import asyncio
import random

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin, open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "run_retry_storm"]

BASE, CAP, ATTEMPTS, TIMEOUT = 0.2, 5.0, 5, 1.0


def _backoff(kind: str) -> rs.Backoff:
    return {
        "no-jitter": rs.Exponential(BASE, CAP),
        "full-jitter": rs.FullJitter(BASE, CAP),
        "equal-jitter": rs.EqualJitter(BASE, CAP),
        "decorrelated": rs.DecorrelatedJitter(BASE, CAP),
    }[kind]


#: name -> (backoff, with a retry budget, with adaptive throttling)
STRATEGIES: dict[str, tuple[str, bool, bool]] = {
    "no-jitter": ("no-jitter", False, False),
    "full-jitter": ("full-jitter", False, False),
    "equal-jitter": ("equal-jitter", False, False),
    "decorrelated": ("decorrelated", False, False),
    "no-jitter+budget": ("no-jitter", True, False),
    "full-jitter+budget": ("full-jitter", True, False),
    "full-jitter+throttle": ("full-jitter", False, True),
    "full-jitter+budget+throttle": ("full-jitter", True, True),
}


async def _run_one(
    name: str, *, clients: int, period: float, outage: tuple[float, float], after: float, seed: int
) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    rng = random.Random(f"{seed}:retry-storm:{name}")
    kind, budgeted, throttled = STRATEGIES[name]
    recorder = Recorder(loop.time, bucket=0.5)
    # Capacity twice the clients' own load (5 slots x 50 ms = 100 calls/s for 50/s).
    origin = SimOrigin(recorder, latency=0.05, capacity=max(1, round(2 * clients / period * 0.05)), down=outage)
    budget = rs.RetryBudget(ratio=0.1, min_per_second=10, window=10, clock=clock) if budgeted else None
    retry = rs.Retry(attempts=ATTEMPTS, backoff=_backoff(kind), budget=budget, clock=clock, rng=rng)
    policies: list[rs.Policy] = [retry]
    if throttled:
        policies.append(rs.AdaptiveThrottle(k=2.0, clock=clock, rng=rng))
    policies.append(rs.Timeout(TIMEOUT, clock=clock))
    call = rs.pipeline(*policies)(origin.fetch)

    async def request() -> None:
        await call()

    until = outage[1] + after
    await open_loop(recorder, request, rate=clients / period, duration=until, drain=CAP * ATTEMPTS + TIMEOUT * ATTEMPTS)
    row = recorder.result(name, until=until)
    row.extra["recovery_peak_rps"] = recorder.peak_rps(outage[1], until)
    return row


def run_retry_storm(
    *,
    clients: int = 1000,
    period: float = 20.0,
    outage: tuple[float, float] = (2.0, 32.0),
    after: float = 10.0,
    strategies: tuple[str, ...] = tuple(STRATEGIES),
    seed: int = 1,
) -> ScenarioResult:
    """Run each strategy through the outage; rows carry ``recovery_peak_rps`` too."""
    rows: list[StrategyResult] = []
    for name in strategies:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, clients=clients, period=period, outage=outage, after=after, seed=seed)

        rows.append(run_virtual(one))
    summary = []
    by_name = {r.name: r for r in rows}
    worst, best = by_name.get("no-jitter"), by_name.get("full-jitter+budget")
    if worst is not None and best is not None:
        ratio = worst.extra["recovery_peak_rps"] / max(1.0, best.extra["recovery_peak_rps"])
        summary.append(
            f"peak load at recovery: full-jitter+budget {best.extra['recovery_peak_rps']:,.0f}/s"
            f" beside no-jitter without budget {worst.extra['recovery_peak_rps']:,.0f}/s"
            f" -> {ratio:.1f}x less"
        )
    throttled = by_name.get("full-jitter+throttle")
    if throttled is not None:
        summary.append(
            "AdaptiveThrottle (k=2, window 120 s) sheds locally what the dependency refuses, and keeps"
            f" shedding after it is back until accepts refill its window ({throttled.errors:,} errors)"
        )
    normal = clients / period
    summary.append(
        f"normal load {normal:,.0f} calls/s, capacity {2 * normal:,.0f}/s;"
        f" down from t={outage[0]:g}s to t={outage[1]:g}s"
    )
    return ScenarioResult(
        name="retry-storm",
        title=f"retry-storm: {clients:,} clients, dependency down {outage[1] - outage[0]:g} s,"
        f" {ATTEMPTS} attempts, 1 s timeout",
        strategies=rows,
        summary=summary,
    )
