"""A closed circuit breaker's per-call cost: resilient beside pybreaker and circuitbreaker.

Run: ``python -m benchmarks.breaker``. A no-op function is called through a
closed breaker; each figure is the best of several runs, in nanoseconds per
call, with its ratio to pybreaker's ``CircuitBreaker.call`` (below 1.0 is
faster). The machine may be shared: run it twice and read the ratios.
"""

from __future__ import annotations

import circuitbreaker
import pybreaker

import resilient as rs
from benchmarks._util import ans_per_call, ns_per_call, quiet, table

PYBREAKER = "pybreaker CircuitBreaker.call(fn)"


def noop(x: int = 1) -> int:
    return x


async def anoop(x: int = 1) -> int:
    return x


def main() -> None:
    quiet()
    py_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    cb_decorated = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(noop)
    cb_async = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)(anoop)
    rs_breaker = rs.CircuitBreaker(failure_threshold=5, reset_timeout=30)
    rs_decorated = rs_breaker(noop)
    rs_rate = rs.CircuitBreaker(failure_rate=0.5, window=10, minimum_calls=10)(noop)
    rs_async = rs.CircuitBreaker()(anoop)
    rs_async_rate = rs.CircuitBreaker(failure_rate=0.5, window=10)(anoop)

    sync_rows = [
        ("bare function call", ns_per_call(noop)),
        (PYBREAKER, ns_per_call(lambda: py_breaker.call(noop))),
        ("circuitbreaker @circuit", ns_per_call(cb_decorated)),
        ("resilient @CircuitBreaker (consecutive failures)", ns_per_call(rs_decorated)),
        ("resilient CircuitBreaker.call(fn)", ns_per_call(lambda: rs_breaker.call(noop))),
        ("resilient @CircuitBreaker (failure rate, 10 s window)", ns_per_call(rs_rate)),
    ]
    table("closed breaker, sync, per call", sync_rows, baseline=PYBREAKER)
    reference = dict(sync_rows)[PYBREAKER]
    async_rows = [
        (PYBREAKER + " (sync, reference)", reference),
        ("bare await", ans_per_call(anoop)),
        ("circuitbreaker @circuit, async", ans_per_call(cb_async)),
        ("resilient @CircuitBreaker, async (consecutive)", ans_per_call(rs_async)),
        ("resilient @CircuitBreaker, async (failure rate)", ans_per_call(rs_async_rate)),
    ]
    table(
        "closed breaker, asyncio, per call (pybreaker's only async path is tornado's)",
        async_rows,
        baseline=async_rows[0][0],
    )


if __name__ == "__main__":
    main()
