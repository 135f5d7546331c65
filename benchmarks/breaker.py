"""A closed circuit breaker's per-call cost: resilient beside pybreaker and circuitbreaker.

Run: ``python -m benchmarks.breaker``. A no-op function is called through a
closed breaker; the candidates are timed in turn, round after round, so that
load from other processes falls on all of them alike; each figure is a
candidate's best round, in nanoseconds per call, with its ratio to pybreaker's
``CircuitBreaker.call`` (below 1.0 is faster). Read the ratios, not the
nanoseconds, and run it twice on a shared machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import circuitbreaker
import pybreaker

import resilient as rs
from benchmarks._util import quiet, table

PYBREAKER = "pybreaker CircuitBreaker.call(fn)"
N = 50_000
ROUNDS = 9


def noop(x: int = 1) -> int:
    return x


async def anoop(x: int = 1) -> int:
    return x


def interleaved(candidates: dict[str, Callable[[], Any]]) -> list[tuple[str, float]]:
    """Best ns/call of each candidate over ROUNDS rounds of N calls, the candidates taking turns."""
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(ROUNDS):
        for name, fn in candidates.items():
            t0 = time.perf_counter_ns()
            for _ in range(N):
                fn()
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / N)
    return list(best.items())


def ainterleaved(candidates: dict[str, Callable[[], Awaitable[Any]]]) -> list[tuple[str, float]]:
    """The asyncio twin of :func:`interleaved`, in one running loop."""

    async def run() -> list[tuple[str, float]]:
        best = dict.fromkeys(candidates, float("inf"))
        for _ in range(ROUNDS):
            for name, afn in candidates.items():
                t0 = time.perf_counter_ns()
                for _ in range(N):
                    await afn()
                best[name] = min(best[name], (time.perf_counter_ns() - t0) / N)
        return list(best.items())

    return asyncio.run(run())


def main() -> None:
    quiet()
    py_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    rs_breaker = rs.CircuitBreaker(failure_threshold=5, reset_timeout=30)
    sync_rows = interleaved(
        {
            "bare function call": noop,
            PYBREAKER: lambda: py_breaker.call(noop),
            "circuitbreaker @circuit": circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(noop),
            "resilient @CircuitBreaker (consecutive failures)": rs_breaker(noop),
            "resilient CircuitBreaker.call(fn)": lambda: rs_breaker.call(noop),
            "resilient @CircuitBreaker (failure rate, 10 s window)": rs.CircuitBreaker(
                failure_rate=0.5, window=10, minimum_calls=10
            )(noop),
        }
    )
    table("closed breaker, sync, per call", sync_rows, baseline=PYBREAKER)

    async def pybreaker_reference() -> int:
        return py_breaker.call(noop)  # sync breaker around a sync no-op, awaited: the loop's share alike

    async_rows = ainterleaved(
        {
            PYBREAKER + " in a coroutine": pybreaker_reference,
            "bare await": anoop,
            "circuitbreaker @circuit, async": circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(
                anoop
            ),
            "resilient @CircuitBreaker, async (consecutive)": rs.CircuitBreaker()(anoop),
            "resilient @CircuitBreaker, async (failure rate)": rs.CircuitBreaker(failure_rate=0.5, window=10)(anoop),
        }
    )
    table(
        "closed breaker, asyncio, per call (pybreaker has no asyncio path: its sync call in a coroutine)",
        async_rows,
        baseline=PYBREAKER + " in a coroutine",
    )


if __name__ == "__main__":
    main()
