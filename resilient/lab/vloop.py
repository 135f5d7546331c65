"""Simulated time: an asyncio loop whose clock jumps, and a ``resilient.Clock`` that reads it.

:class:`VirtualLoop` is a real asyncio event loop (tasks, futures, timeouts,
``asyncio.sleep``) whose ``time()`` is virtual. It never waits:
when nothing is ready it moves the clock straight to the next scheduled timer.
A run therefore takes as long as its callbacks take to execute, not as long as
the time it simulates, and it is deterministic (same program, same seed, same
order of events). :class:`VirtualClock` hands that time to the library's
policies (``clock=``), so their backoffs, TTLs, windows and timeouts all
elapse in simulated time.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple

from ..core.clock import Clock
from ..core.events import quiet_logs

__all__ = ["VirtualClock", "VirtualLoop", "VirtualTimeDeadlock", "quiet_logs", "run_virtual"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: ``VirtualClock.time()`` at virtual time 0 (a fixed epoch, so runs repeat exactly).
WALL_EPOCH = 1_700_000_000.0


class VirtualTimeDeadlock(RuntimeError):
    """Every task waits, no timer is scheduled: in virtual time nothing could ever happen."""


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop in simulated time: ``time()`` starts at 0 and jumps to each next timer.

    It replaces two internals of CPython's loop (3.11+): ``call_at`` keeps timers
    in a heap of ``(when, sequence, handle)`` tuples (compared in C, and first
    come first served at equal times), and ``_run_once`` never polls for I/O:
    when no callback is ready it moves the clock to the earliest timer. I/O
    (sockets) cannot be simulated and is not supported on this loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self._vtime = 0.0
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._sequence = itertools.count()

    def time(self) -> float:
        return self._vtime

    def call_at(
        self,
        when: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        timers = self._timers
        while timers and timers[0][2].cancelled():
            heapq.heappop(timers)
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            if not timers:
                raise VirtualTimeDeadlock("every task is waiting and no timer is scheduled")
            if timers[0][0] > self._vtime:
                self._vtime = timers[0][0]
        now = self._vtime
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled():
                timer._scheduled = False  # type: ignore[attr-defined]
                ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

    def close(self) -> None:
        self._timers.clear()
        super().close()


class VirtualClock(Clock):
    """A :class:`resilient.Clock` on a :class:`VirtualLoop`'s time.

    ``monotonic()`` is the loop's time; ``time()`` is :data:`WALL_EPOCH` plus it;
    ``asleep`` is ``asyncio.sleep`` on that loop (so it takes no real time).
    A blocking ``sleep`` cannot be simulated on a single-threaded loop and raises.
    """

    __slots__ = ("_loop",)

    #: Its time is the running loop's: an asyncio wait timed by the loop keeps to it (``rs.Cache``
    #: then lets waiters be woken by a store's notification, as with the system clock).
    loop_time = True

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()

    def monotonic(self) -> float:
        return self._loop.time()

    def time(self) -> float:
        return WALL_EPOCH + self._loop.time()

    def sleep(self, seconds: float) -> None:
        raise RuntimeError("a VirtualClock cannot block; use the async API (asleep) in the lab")

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds if seconds > 0 else 0)

    def __repr__(self) -> str:
        return f"VirtualClock(t={self._loop.time():.6f})"


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a fresh :class:`VirtualLoop`; return its result."""
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        return runner.run(main())
