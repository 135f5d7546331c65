"""Bulkhead: at most ``max_concurrent`` calls at once; a bounded queue for the rest."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from .._machines._validate import number
from .._machines.bulkhead import FULL, QUEUE, Slots
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context
from ..core.errors import BulkheadFullError, TimeoutExceeded
from ..core.events import emit
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from ._wait import AsyncWaiter, release, wait_for_slot, wait_for_slot_async, wake

__all__ = ["Bulkhead"]


class Bulkhead(Policy):
    """Run at most ``max_concurrent`` calls at once, threads and asyncio tasks alike.

    A call beyond the limit waits in a FIFO queue of ``max_queue`` places for
    up to ``queue_timeout`` seconds (None: as long as it takes) and runs when a
    slot frees; with no queue place, or when the wait runs out, it raises
    :class:`~resilient.BulkheadFullError` without calling. One bulkhead object
    shares its slots between threads and tasks. A queued caller also stops
    waiting at the deadline of an enclosing ``Timeout`` (sync callers too) and
    then raises :class:`~resilient.TimeoutExceeded`. Events: ``bulkhead.queued``,
    ``bulkhead.rejected``.

    Args:
        max_concurrent: calls running at once (>= 1).
        max_queue: callers that may wait for a slot (>= 0; 0: reject at once).
        queue_timeout: seconds a queued caller waits (real time), None for no bound.
        clock: the clock an enclosing ``Timeout``'s deadline is read on (the
            same as that Timeout's).

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "bulkhead"

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._slots: Slots[Any] = Slots(max_concurrent=max_concurrent, max_queue=max_queue)
        self.queue_timeout = None if queue_timeout is None else number("queue_timeout", queue_timeout)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._rejected = {"full": Counter(), "queue_timeout": Counter()}  # by reason
        self._queued = Counter()

    @property
    def max_concurrent(self) -> int:
        return self._slots.max_concurrent

    @property
    def max_queue(self) -> int:
        return self._slots.max_queue

    def _reject(self, operation: str, reason: str) -> BulkheadFullError:
        self._rejected[reason].incr()
        emit("bulkhead.rejected", operation=operation, key=self.partition, reason=reason)
        return BulkheadFullError(f"bulkhead full ({self.max_concurrent} running, {self.max_queue} queued at most)")

    def _queue_wait(self, ctx: Context) -> tuple[float | None, bool]:
        """How long a queued caller may wait, and whether the enclosing deadline is what bounds it."""
        self._queued.incr()
        emit("bulkhead.queued", operation=ctx.operation, key=self.partition)
        wait = self.queue_timeout
        deadline = ctx.effective_deadline()
        if deadline is not None:
            left = max(0.0, deadline - self.clock.monotonic())
            if wait is None or left < wait:
                return left, True
        return wait, False

    def _gave_up(self, ctx: Context, by_deadline: bool) -> Exception:
        if by_deadline:
            return TimeoutExceeded(f"{ctx.operation} reached its deadline waiting for a bulkhead slot")
        return self._reject(ctx.operation, "queue_timeout")

    def bind(self, inner: SyncStep) -> SyncStep:
        slots, lock = self._slots, self._lock

        def bulkhead_step(ctx: Context) -> Any:
            with lock:
                verdict = slots.try_enter()
                if verdict == QUEUE:
                    waiter: Any = threading.Event()
                    slots.enqueue(waiter)
            if verdict == FULL:
                raise self._reject(ctx.operation, "full")
            if verdict == QUEUE:
                wait, by_deadline = self._queue_wait(ctx)
                try:
                    wait_for_slot(slots, lock, waiter, wait)
                except BulkheadFullError:
                    raise self._gave_up(ctx, by_deadline) from None
            try:
                return inner(ctx)
            finally:
                release(slots, lock)

        return bulkhead_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        slots, lock = self._slots, self._lock

        async def bulkhead_step(ctx: Context) -> Any:
            with lock:
                verdict = slots.try_enter()
                if verdict == QUEUE:
                    waiter: Any = AsyncWaiter()
                    slots.enqueue(waiter)
            if verdict == FULL:
                raise self._reject(ctx.operation, "full")
            if verdict == QUEUE:
                wait, by_deadline = self._queue_wait(ctx)
                try:
                    await wait_for_slot_async(slots, lock, waiter, wait)
                except BulkheadFullError:
                    raise self._gave_up(ctx, by_deadline) from None
            try:
                return await inner(ctx)
            finally:  # release(slots, lock), inline: a call less on every call
                with lock:
                    handed = slots.leave()
                if handed is not None:
                    wake(handed)

        return bulkhead_step

    def stats(self) -> dict[str, Any]:
        """``in_use`` (``active``: calls running), ``max_concurrent``, ``queued``, ``waited``
        (calls that queued), ``rejected`` and by reason ``rejected_full``, ``rejected_queue_timeout``."""
        with self._lock:
            active, queued = self._slots.active, self._slots.queued
        full, timed_out = self._rejected["full"].value, self._rejected["queue_timeout"].value
        return {
            "active": active,
            "in_use": active,
            "max_concurrent": self.max_concurrent,
            "queued": queued,
            "rejected": full + timed_out,
            "rejected_full": full,
            "rejected_queue_timeout": timed_out,
            "waited": self._queued.value,
        }

    def __repr__(self) -> str:
        return f"Bulkhead({self.max_concurrent}, max_queue={self.max_queue}, queue_timeout={self.queue_timeout})"
