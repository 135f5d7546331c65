"""Clocks: every time-related policy reads and waits through one of these."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["SYSTEM_CLOCK", "Clock", "monotonic_of"]


class Clock:
    """The system clock.

    ``monotonic()`` for durations and deadlines, ``time()`` (wall clock, epoch
    seconds) for anything shared across processes, ``sleep``/``asleep`` to wait.
    Subclass it (as :class:`resilient.testing.FakeClock` does) to control time.
    """

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds if seconds > 0 else 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


SYSTEM_CLOCK = Clock()


def monotonic_of(clock: Clock) -> Callable[[], float]:
    """``clock.monotonic``, or ``time.monotonic`` itself for the system clock (one call less
    on a hot path; a subclass such as ``FakeClock`` keeps its own)."""
    return time.monotonic if type(clock) is Clock else clock.monotonic
