"""The in-process queue: pending items, the worker's wake-ups, and flush waiters.

One lock guards everything. A put appends and wakes the worker only when it
waits for items (or for a batch to fill and this put filled it), so the hot
path is a lock, a clock reading and an append. The worker waits for
"a put, or time": with the system clock on a condition with a timeout (a put
that fills the batch ends the wait early); with any other clock (a
``FakeClock``, the lab's virtual clock) through that clock's own ``sleep`` /
``asleep``, so tests drive it deterministically.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .._machines.buffer import BatchPlan, Cut, Idle
from ..core.clock import Clock
from .drain import Taken

__all__ = ["LocalQueue"]

_NOT_WAITING, _IDLE, _LINGERING = 0, 1, 2


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LocalQueue:
    """Items accepted and not yet settled (written or dead-lettered), in put order.

    Args:
        plan: cuts the batches.
        clock: what the worker waits on.
        max_pending: the most items held (waiting or in flight).
    """

    def __init__(self, *, plan: BatchPlan, clock: Clock, max_pending: int) -> None:
        self.plan = plan
        self.clock = clock
        self.max_pending = max_pending
        self._real = type(clock) is Clock  # the system clock: wait on the condition itself
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._settled_cond = threading.Condition(self._lock)
        self._items: deque[tuple[float, Any]] = deque()
        self._in_flight = 0
        self._in_flight_oldest = 0.0
        self._accepted = 0
        self._settled = 0
        self._urgent = 0
        self._closing = False
        self._waiting = _NOT_WAITING
        self._event: asyncio.Event | None = None
        self._wake_async: Callable[[], None] | None = None
        self._futures: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- producers ------------------------------------------------------------------

    def offer(self, item: Any) -> bool:
        """Queue ``item``; False (nothing queued) when ``max_pending`` items are held."""
        now = self.clock.monotonic()
        with self._lock:
            items = self._items
            if len(items) + self._in_flight >= self.max_pending:
                return False
            items.append((now, item))
            self._accepted += 1
            waiting = self._waiting
            if waiting and (waiting == _IDLE or len(items) >= self.plan.batch_size):
                self._signal()
        return True

    def _signal(self) -> None:
        """Wake the worker (the lock is held)."""
        self._work.notify()
        wake = self._wake_async
        if wake is not None:
            wake()

    # -- the worker -----------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let an asyncio worker on ``loop`` be woken from any thread."""
        event = asyncio.Event()
        owner = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == owner:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)

        with self._lock:
            self._event = event
            self._wake_async = wake

    def _decide(self) -> Taken | Idle | float | None:
        """A batch taken, None (closing and empty), Idle, or seconds to linger. Lock held."""
        items = self._items
        n = len(items)
        decision = self.plan.next(
            self.clock.monotonic(), n, items[0][0] if n else None, urgent=self._urgent > 0 or self._closing
        )
        if isinstance(decision, Cut):
            taken = [items.popleft() for _ in range(decision.n)]
            self._in_flight = decision.n
            self._in_flight_oldest = taken[0][0]
            return Taken([item for _, item in taken], taken[0][0])
        if isinstance(decision, Idle):
            return None if self._closing else decision
        return decision.seconds

    def take(self) -> Taken | None:
        """The next batch, waiting for it; None once closing and empty."""
        with self._lock:
            while True:
                got = self._decide()
                if got is None or isinstance(got, Taken):
                    return got
                if isinstance(got, Idle):
                    self._waiting = _IDLE
                    self._work.wait()
                elif self._real:
                    self._waiting = _LINGERING
                    self._work.wait(got)
                else:
                    self._waiting = _LINGERING
                    self._lock.release()
                    try:
                        self.clock.sleep(got)
                    finally:
                        self._lock.acquire()
                self._waiting = _NOT_WAITING

    async def atake(self) -> Taken | None:
        """The asyncio twin of :meth:`take` (call :meth:`bind_loop` first)."""
        event = self._event
        assert event is not None, "bind_loop() first"
        while True:
            with self._lock:
                got = self._decide()
                if got is None or isinstance(got, Taken):
                    return got
                event.clear()
                self._waiting = _IDLE if isinstance(got, Idle) else _LINGERING
            try:
                if isinstance(got, Idle):
                    await event.wait()
                elif self._real:
                    try:
                        await asyncio.wait_for(event.wait(), got)
                    except TimeoutError:
                        pass
                else:
                    await self.clock.asleep(got)
            finally:
                with self._lock:
                    self._waiting = _NOT_WAITING

    def settle(self, batch: Taken) -> None:
        """The batch in flight was written or dead-lettered: wake whoever flushes."""
        with self._lock:
            self._in_flight = 0
            self._settled += len(batch.items)
            self._settled_cond.notify_all()
            if self._futures:
                settled = self._settled
                keep = []
                for target, loop, fut in self._futures:
                    if target <= settled:
                        try:
                            loop.call_soon_threadsafe(_resolve, fut)
                        except RuntimeError:  # that loop is closed: nobody waits there any more
                            pass
                    else:
                        keep.append((target, loop, fut))
                self._futures = keep

    async def asettle(self, batch: Taken) -> None:
        self.settle(batch)

    # -- flush and close ------------------------------------------------------------

    def flush(self, timeout: float | None) -> bool:
        """Wait until every item accepted before now is settled; False if ``timeout`` passed first."""
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        with self._lock:
            target = self._accepted
            if self._settled >= target:
                return True
            self._urgent += 1
            self._signal()
            try:
                while self._settled < target:
                    if deadline is None:
                        self._settled_cond.wait(None if self._real else 0.05)
                        continue
                    remaining = deadline - self.clock.monotonic()
                    if remaining <= 0:
                        return False
                    self._settled_cond.wait(remaining if self._real else min(remaining, 0.05))
                return True
            finally:
                self._urgent -= 1

    async def aflush(self, timeout: float | None) -> bool:  # noqa: ASYNC109 (the twin of flush(timeout))
        """The asyncio twin of :meth:`flush`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            target = self._accepted
            if self._settled >= target:
                return True
            self._urgent += 1
            entry = (target, loop, fut)
            self._futures.append(entry)
            self._signal()
        try:
            if timeout is None:
                await fut
            else:
                await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._urgent -= 1
                if entry in self._futures:
                    self._futures.remove(entry)

    def close(self) -> None:
        """Let the worker stop once it has taken everything."""
        with self._lock:
            self._closing = True
            self._signal()

    # -- readings -------------------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return len(self._items) + self._in_flight

    def oldest(self) -> float | None:
        """When the oldest unsettled item was put (monotonic), or None."""
        with self._lock:
            if self._in_flight:
                return self._in_flight_oldest
            return self._items[0][0] if self._items else None

    def unsettled(self) -> bool:
        with self._lock:
            return self._settled < self._accepted
