"""Test support (public API): a clock you move by hand, no waiting, captured events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .core import waiting
from .core.clock import Clock
from .core.events import add_listener, remove_listener

__all__ = ["FakeClock", "capture_events", "no_waiting"]


class FakeClock(Clock):
    """A clock that moves only when told: ``advance(s)``, or a policy's sleep.

    ``sleep``/``asleep`` advance the clock at once instead of waiting, so a
    test of a 30 s breaker or a 1 h TTL runs instantly. Thread-safe.

    Args:
        start: the initial ``monotonic()`` reading.
        wall: the initial ``time()`` reading (epoch seconds).
    """

    __slots__ = ("_lock", "_offset", "_start", "_wall")

    def __init__(self, start: float = 0.0, wall: float = 1_700_000_000.0) -> None:
        self._start = float(start)
        self._wall = float(wall)
        self._offset = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._start + self._offset

    def time(self) -> float:
        return self._wall + self._offset

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._offset += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self.monotonic()!r})"


@contextmanager
def no_waiting() -> Iterator[None]:
    """Within this block policies never sleep (retries follow at once)."""
    waiting.adjust_no_waiting(+1)
    try:
        yield
    finally:
        waiting.adjust_no_waiting(-1)


@contextmanager
def capture_events() -> Iterator[list[dict[str, Any]]]:
    """Collect every event emitted within the block, as dicts (``"event"`` is the name)."""
    captured: list[dict[str, Any]] = []
    lock = threading.Lock()

    def listener(event: dict[str, Any]) -> None:
        with lock:
            captured.append(event)

    add_listener(listener)
    try:
        yield captured
    finally:
        remove_listener(listener)
