"""What the lab measures: origin load over time and what the clients saw.

A :class:`Recorder` counts, for one strategy's run, every call that reaches the
origin (total, concurrency, calls per bucket of time) and every client request
(latency, error, stale answer). :meth:`Recorder.result` reduces it to the row
printed in the table and written in ``--json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIELDS", "PEAK_MEASURE", "Recorder", "ScenarioResult", "StrategyResult", "percentile"]

#: The figures of one strategy, in table and JSON order (DESIGN.md §3).
FIELDS = (
    "origin_calls",
    "peak_origin_concurrency",
    "peak_origin_rps",
    "p50_ms",
    "p99_ms",
    "errors",
    "stale_served",
)


#: What "peak calls/s" in the table and the plots' y axis both count.
PEAK_MEASURE = "origin calls in the last 1 s (sliding)"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of already sorted values; 0.0 if empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class StrategyResult:
    """One row: a strategy's figures, its origin load series, and any scenario-specific extras."""

    name: str
    origin_calls: float
    peak_origin_concurrency: int
    peak_origin_rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    stale_served: int
    extra: dict[str, float] = field(default_factory=dict)
    #: (time in s, origin calls in the one-second window ending then) per bucket, for ``--plot``.
    series: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for name in FIELDS:
            out[name] = getattr(self, name)
        out.update(self.extra)
        return out


@dataclass
class ScenarioResult:
    """A scenario's rows plus the lines printed under its table (ratios, ranking)."""

    name: str
    title: str
    strategies: list[StrategyResult]
    summary: list[str] = field(default_factory=list)
    #: The plot's axes, and its lines (by default each strategy's origin load over time).
    plot_x: str = "time (s)"
    plot_y: str = PEAK_MEASURE
    plot_series: dict[str, list[tuple[float, float]]] | None = None
    plot_log: bool = False

    def lines(self) -> dict[str, list[tuple[float, float]]]:
        if self.plot_series is not None:
            return self.plot_series
        return {s.name: s.series for s in self.strategies if s.series}

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "strategies": [s.as_dict() for s in self.strategies],
            "summary": list(self.summary),
        }

    def strategy(self, name: str) -> StrategyResult:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(name)


class Recorder:
    """Counts one run: origin calls (per ``bucket`` seconds), origin concurrency, client outcomes.

    Args:
        now: the (virtual) clock to read.
        bucket: width in seconds of the origin-load histogram behind the plot and
            ``peak_origin_rps`` (the busiest sliding second, summed from buckets).
    """

    def __init__(self, now: Callable[[], float], *, bucket: float = 0.1) -> None:
        self.now = now
        self.bucket = bucket
        self.origin_calls = 0
        self.in_flight = 0
        self.peak_concurrency = 0
        self._refreshes = 0
        self.calls_per_bucket: dict[int, int] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.stale_served = 0

    # -- the origin's side ----------------------------------------------------
    def origin_started(self) -> None:
        self.origin_calls += 1
        if not self.in_flight:
            self._refreshes += 1
        self.in_flight += 1
        if self.in_flight > self.peak_concurrency:
            self.peak_concurrency = self.in_flight
        index = int(self.now() / self.bucket)
        self.calls_per_bucket[index] = self.calls_per_bucket.get(index, 0) + 1

    def origin_finished(self) -> None:
        self.in_flight -= 1

    # -- the clients' side ----------------------------------------------------
    def request_done(self, latency: float, *, ok: bool, stale: bool = False) -> None:
        self.latencies.append(latency)
        if not ok:
            self.errors += 1
        if stale:
            self.stale_served += 1

    # -- reductions -----------------------------------------------------------
    def calls_between(self, start: float, end: float) -> int:
        """Origin calls that started in ``[start, end)`` (to bucket precision)."""
        lo, hi = int(start / self.bucket), int(end / self.bucket)
        return sum(n for i, n in self.calls_per_bucket.items() if lo <= i < hi)

    def peak_rps(self, start: float = 0.0, end: float = math.inf) -> float:
        """Most origin calls in any one-second sliding window within ``[start, end)``."""
        if not self.calls_per_bucket:
            return 0.0
        per_second = max(1, round(1.0 / self.bucket))
        lo = max(int(start / self.bucket), min(self.calls_per_bucket))
        last = max(self.calls_per_bucket) + 1
        hi = last if end == math.inf else min(last, int(end / self.bucket))
        best = 0
        window = 0
        get = self.calls_per_bucket.get
        for i in range(lo, hi):
            window += get(i, 0)
            if i - per_second >= lo:
                window -= get(i - per_second, 0)
            best = max(best, window)
        return float(best)

    @property
    def refreshes(self) -> int:
        """Origin calls that began while no other call was in flight.

        Each starts a refresh; a call that begins while one is in flight joins
        that refresh (it is the herd), so ``origin_calls / refreshes`` is what
        each refresh cost the origin: 1 when every refresh is a single call.
        """
        return self._refreshes

    def series(self, until: float) -> list[tuple[float, float]]:
        """Origin calls in the one-second window ending at each bucket's end, from 0 to ``until``.

        The same measure as ``peak_origin_rps`` (its maximum is the table's
        "peak calls/s"), so the plot and the table can be read against each other.
        """
        n = math.ceil(until / self.bucket)
        per_second = max(1, round(1.0 / self.bucket))
        get = self.calls_per_bucket.get
        out: list[tuple[float, float]] = []
        window = 0
        for i in range(n):
            window += get(i, 0)
            if i >= per_second:
                window -= get(i - per_second, 0)
            out.append((round((i + 1) * self.bucket, 6), float(window)))
        return out

    def result(self, name: str, *, until: float, extra: dict[str, float] | None = None) -> StrategyResult:
        latencies = sorted(self.latencies)
        return StrategyResult(
            name=name,
            origin_calls=self.origin_calls,
            peak_origin_concurrency=self.peak_concurrency,
            peak_origin_rps=self.peak_rps(),
            p50_ms=round(percentile(latencies, 50) * 1000, 1),
            p99_ms=round(percentile(latencies, 99) * 1000, 1),
            errors=self.errors,
            stale_served=self.stale_served,
            extra=dict(extra or {}),
            series=self.series(until),
        )
