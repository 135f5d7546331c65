"""Bulkhead: at most ``max_concurrent`` calls at once; a bounded queue for the rest."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from .._context import Context
from .._drivers_policies import AsyncWaiter, release, wait_for_slot, wait_for_slot_async
from .._errors import BulkheadFullError
from .._events import emit
from .._machines._validate import number
from .._machines.bulkhead import FULL, QUEUE, Slots
from .._policy import AsyncStep, Policy, SyncStep
from .._stats import Counter

__all__ = ["Bulkhead"]


class Bulkhead(Policy):
    """Run at most ``max_concurrent`` calls at once, threads and asyncio tasks alike.

    A call beyond the limit waits in a FIFO queue of ``max_queue`` places for
    up to ``queue_timeout`` seconds (None: as long as it takes) and runs when a
    slot frees; with no queue place, or when the wait runs out, it raises
    :class:`~resilient.BulkheadFullError` without calling. One bulkhead object
    shares its slots between threads and tasks. Events: ``bulkhead.queued``,
    ``bulkhead.rejected``.

    Args:
        max_concurrent: calls running at once (>= 1).
        max_queue: callers that may wait for a slot (>= 0; 0: reject at once).
        queue_timeout: seconds a queued caller waits (real time), None for no bound.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "bulkhead"

    def __init__(self, max_concurrent: int, *, max_queue: int = 0, queue_timeout: float | None = None) -> None:
        self._slots: Slots[Any] = Slots(max_concurrent=max_concurrent, max_queue=max_queue)
        self.queue_timeout = None if queue_timeout is None else number("queue_timeout", queue_timeout)
        self._lock = threading.Lock()
        self._rejected = Counter()
        self._queued = Counter()

    @property
    def max_concurrent(self) -> int:
        return self._slots.max_concurrent

    @property
    def max_queue(self) -> int:
        return self._slots.max_queue

    def _reject(self, operation: str, reason: str) -> BulkheadFullError:
        self._rejected.incr()
        emit("bulkhead.rejected", operation=operation, key=None, reason=reason)
        return BulkheadFullError(f"bulkhead full ({self.max_concurrent} running, {self.max_queue} queued at most)")

    def bind(self, inner: SyncStep) -> SyncStep:
        slots, lock, timeout = self._slots, self._lock, self.queue_timeout

        def bulkhead_step(ctx: Context) -> Any:
            with lock:
                verdict = slots.try_enter()
                if verdict == QUEUE:
                    waiter: Any = threading.Event()
                    slots.enqueue(waiter)
            if verdict == FULL:
                raise self._reject(ctx.operation, "full")
            if verdict == QUEUE:
                self._queued.incr()
                emit("bulkhead.queued", operation=ctx.operation, key=None)
                try:
                    wait_for_slot(slots, lock, waiter, timeout)
                except BulkheadFullError:
                    raise self._reject(ctx.operation, "queue_timeout") from None
            try:
                return inner(ctx)
            finally:
                release(slots, lock)

        return bulkhead_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        slots, lock, timeout = self._slots, self._lock, self.queue_timeout

        async def bulkhead_step(ctx: Context) -> Any:
            with lock:
                verdict = slots.try_enter()
                if verdict == QUEUE:
                    waiter: Any = AsyncWaiter()
                    slots.enqueue(waiter)
            if verdict == FULL:
                raise self._reject(ctx.operation, "full")
            if verdict == QUEUE:
                self._queued.incr()
                emit("bulkhead.queued", operation=ctx.operation, key=None)
                try:
                    await wait_for_slot_async(slots, lock, waiter, timeout)
                except BulkheadFullError:
                    raise self._reject(ctx.operation, "queue_timeout") from None
            try:
                return await inner(ctx)
            finally:
                release(slots, lock)

        return bulkhead_step

    def stats(self) -> dict[str, Any]:
        with self._lock:
            active, queued = self._slots.active, self._slots.queued
        return {"active": active, "queued": queued, "rejected": self._rejected.value, "waited": self._queued.value}

    def __repr__(self) -> str:
        return f"Bulkhead({self.max_concurrent}, max_queue={self.max_queue}, queue_timeout={self.queue_timeout})"
