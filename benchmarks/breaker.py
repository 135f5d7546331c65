"""A closed circuit breaker's per-call cost: resilient beside pybreaker and circuitbreaker.

Run: ``python -m benchmarks.breaker``. Each figure is the best of several
timed runs of a no-op function called through a closed breaker, minus nothing
(the bare call is printed for reference). Ratios are against pybreaker's
``CircuitBreaker.call``; below 1.0 is faster. The machine is shared, so run it
twice and read the ratios, not the nanoseconds.
"""

from __future__ import annotations

import asyncio
import time
import timeit
from collections.abc import Callable
from typing import Any

import circuitbreaker
import pybreaker

import resilient as rs

NUMBER = 100_000
REPEAT = 7


def noop(x: int = 1) -> int:
    return x


async def anoop(x: int = 1) -> int:
    return x


def best_ns(fn: Callable[[], Any]) -> float:
    """Best per-call nanoseconds of ``fn`` over REPEAT runs of NUMBER calls."""
    return min(timeit.repeat(fn, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e9


def best_async_ns(make: Callable[[], Any]) -> float:
    """Best per-call nanoseconds of awaiting ``make()`` in a loop, NUMBER times per run."""

    async def run() -> float:
        best = float("inf")
        for _ in range(REPEAT):
            started = time.perf_counter()
            for _ in range(NUMBER):
                await make()
            best = min(best, time.perf_counter() - started)
        return best / NUMBER * 1e9

    return asyncio.run(run())


def main() -> None:
    py_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    cb_decorated = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(noop)
    rs_breaker = rs.CircuitBreaker(failure_threshold=5, reset_timeout=30)
    rs_decorated = rs_breaker(noop)
    rs_rate = rs.CircuitBreaker(failure_rate=0.5, window=10, minimum_calls=10)(noop)
    rs_async = rs.CircuitBreaker()(anoop)

    rows = [
        ("bare function call", best_ns(noop)),
        ("pybreaker CircuitBreaker.call(fn)", best_ns(lambda: py_breaker.call(noop))),
        ("circuitbreaker @circuit", best_ns(cb_decorated)),
        ("resilient @CircuitBreaker (consecutive)", best_ns(rs_decorated)),
        ("resilient CircuitBreaker.call(fn)", best_ns(lambda: rs_breaker.call(noop))),
        ("resilient @CircuitBreaker (failure rate, window)", best_ns(rs_rate)),
    ]
    async_rows = [
        ("bare await", best_async_ns(anoop)),
        ("resilient @CircuitBreaker, async", best_async_ns(rs_async)),
    ]
    reference = rows[1][1]
    print(f"closed breaker, per call (best of {REPEAT} x {NUMBER:,} calls)")
    print(f"{'':50} {'ns/call':>9} {'vs pybreaker.call':>18}")
    for name, ns in rows:
        print(f"{name:50} {ns:9.0f} {ns / reference:18.2f}")
    print()
    for name, ns in async_rows:
        print(f"{name:50} {ns:9.0f} {ns / reference:18.2f}")
    print("\n(pybreaker's only async path is tornado's; circuitbreaker's async decorator is not compared)")


if __name__ == "__main__":
    main()
