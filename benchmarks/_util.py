"""Shared timing helpers for the benchmarks: best-of-N per-call nanoseconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog


def quiet() -> None:
    """Silence resilient's debug events so printing does not dominate the timings."""
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def ns_per_call(fn: Callable[[], Any], *, n: int = 100_000, repeat: int = 5) -> float:
    """Best of `repeat` runs of `n` calls, in nanoseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def ans_per_call(afn: Callable[[], Awaitable[Any]], *, n: int = 50_000, repeat: int = 5) -> float:
    """The async twin of ns_per_call: awaits `afn()` in one running loop."""

    async def run() -> float:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                await afn()
            best = min(best, (time.perf_counter_ns() - t0) / n)
        return best

    return asyncio.run(run())


def table(title: str, rows: list[tuple[str, float]], *, baseline: str) -> None:
    """Print rows as ns/call with the ratio to `baseline`."""
    base = dict(rows)[baseline]
    print(f"\n{title}")
    print(f"  {'':56} {'ns/call':>10} {'x ' + baseline:>16}")
    for name, ns in rows:
        print(f"  {name:56} {ns:10.0f} {ns / base:16.2f}")
