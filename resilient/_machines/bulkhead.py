"""Bulkhead slots: run now, queue, or refuse; a freed slot goes to the oldest waiter.

Pure bookkeeping over opaque waiter tokens: the shell holds a lock around
these calls and the drivers do the waiting and the waking.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Generic, TypeVar

from ._validate import whole

__all__ = ["FULL", "QUEUE", "RUN", "Slots"]

W = TypeVar("W")

RUN: Final = "run"
QUEUE: Final = "queue"
FULL: Final = "full"


class Slots(Generic[W]):
    """``max_concurrent`` slots and a FIFO queue of at most ``max_queue`` waiters; not thread-safe."""

    __slots__ = ("_waiters", "active", "max_concurrent", "max_queue")

    def __init__(self, *, max_concurrent: int, max_queue: int = 0) -> None:
        self.max_concurrent = whole("max_concurrent", max_concurrent, minimum=1)
        self.max_queue = whole("max_queue", max_queue, minimum=0)
        self.active = 0
        self._waiters: deque[W] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> str:
        """``RUN`` (a slot is taken), ``QUEUE`` (call :meth:`enqueue`) or ``FULL``."""
        if self.active < self.max_concurrent and not self._waiters:
            self.active += 1
            return RUN
        if len(self._waiters) < self.max_queue:
            return QUEUE
        return FULL

    def enqueue(self, waiter: W) -> None:
        """Queue ``waiter`` (after ``try_enter`` returned ``QUEUE``)."""
        self._waiters.append(waiter)

    def leave(self) -> W | None:
        """Free a slot: hand it to the oldest waiter (returned, to be woken) or release it."""
        if self._waiters:
            return self._waiters.popleft()  # the slot passes on; active is unchanged
        self.active -= 1
        return None

    def abandon(self, waiter: W) -> bool:
        """Withdraw a waiter that stops waiting: True if it was still queued,
        False if it had already been handed a slot (which it now holds)."""
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return False
        return True
