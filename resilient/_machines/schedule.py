"""Scheduled work's decisions: where a spread call starts, and which wall-clock period a run belongs to."""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

__all__ = ["Period", "period_of", "spread_delay"]


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def spread_delay(window: float, rng: _Uniform) -> float:
    """Seconds to wait before starting: ``uniform(0, window)``."""
    if window <= 0:
        return 0.0
    return min(window, max(0.0, rng.uniform(0.0, window)))


class Period(NamedTuple):
    """The wall-clock period a moment falls in: its number since the epoch, and when it ends."""

    number: int
    ends_at: float


def period_of(now: float, period: float) -> Period:
    """The period of ``period`` seconds, aligned to the epoch, that wall time ``now`` falls in.

    ``period=3600`` gives clock hours: every process that reads the same wall
    clock agrees on the period, whenever it started.
    """
    index = math.floor(now / period)
    ends_at = (index + 1) * period
    if ends_at <= now:  # float rounding at a boundary: ``now`` belongs to the next period
        index += 1
        ends_at = (index + 1) * period
    return Period(index, ends_at)
