"""Load shedding: refuse work when too much is in flight or latency has run away.

A call is admitted while ``in_flight < max_concurrent`` and the mean latency
of the calls completed in the last ``window`` seconds is at most
``latency_factor * baseline``. The baseline is a slow exponentially weighted
mean of every latency (``alpha``), trusted once ``min_samples`` were seen.
Because the recent mean only covers the window, shedding for latency stops
by itself once a window passes with no slow completion, and fresh calls
measure the origin again.
"""

from __future__ import annotations

from typing import Final

from ._validate import number, whole
from .window import SlidingWindow

__all__ = ["ADMIT", "CONCURRENCY", "LATENCY", "ShedMachine"]

ADMIT: Final = "admit"
CONCURRENCY: Final = "concurrency"
LATENCY: Final = "latency"


class ShedMachine:
    """In-flight count, recent latency and baseline; not thread-safe.

    Args:
        max_concurrent: calls in flight at most (>= 1).
        latency_factor: shed when recent latency > this x baseline (> 1).
        window: seconds over which "recent" latency is averaged (> 0).
        min_samples: latencies seen before latency shedding starts (>= 1).
        alpha: weight of each new latency in the baseline, in ``(0, 1]``.
    """

    __slots__ = (
        "_recent",
        "alpha",
        "baseline",
        "in_flight",
        "latency_factor",
        "max_concurrent",
        "min_samples",
        "samples",
    )

    def __init__(
        self,
        *,
        max_concurrent: int,
        latency_factor: float = 3.0,
        window: float = 10.0,
        min_samples: int = 20,
        alpha: float = 0.02,
    ) -> None:
        self.max_concurrent = whole("max_concurrent", max_concurrent, minimum=1)
        self.latency_factor = number("latency_factor", latency_factor, minimum=1.0, strict=True)
        self.min_samples = whole("min_samples", min_samples, minimum=1)
        self.alpha = number("alpha", alpha, strict=True)
        if self.alpha > 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self._recent = SlidingWindow(window, fields=2)
        self.in_flight = 0
        self.samples = 0
        self.baseline: float | None = None

    def recent(self, now: float) -> float | None:
        """Mean latency of the calls completed in the window, None if none."""
        total, count = self._recent.totals(now)
        return total / count if count else None

    def admit(self, now: float) -> str:
        """``ADMIT`` (counted in flight), or why not: ``CONCURRENCY`` or ``LATENCY``."""
        if self.in_flight >= self.max_concurrent:
            return CONCURRENCY
        if self.samples >= self.min_samples and self.baseline is not None:
            recent = self.recent(now)
            if recent is not None and recent > self.latency_factor * self.baseline:
                return LATENCY
        self.in_flight += 1
        return ADMIT

    def abort(self) -> None:
        """An admitted call ended without a latency worth measuring (it was cancelled)."""
        self.in_flight -= 1

    def done(self, now: float, latency: float) -> None:
        """An admitted call ended at ``now`` after ``latency`` seconds."""
        self.in_flight -= 1
        self.samples += 1
        self._recent.add2(now, latency, 1.0)
        base = self.baseline
        self.baseline = latency if base is None else base + self.alpha * (latency - base)
