"""Timeout: a deadline for the whole call, enforced on asyncio and told to inner policies."""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from .._machines._validate import number
from ..core.clock import SYSTEM_CLOCK, Clock, monotonic_of
from ..core.context import Context, current_deadline
from ..core.errors import TimeoutExceeded
from ..core.events import emit
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter

__all__ = ["Timeout"]


class Timeout(Policy):
    """Bound a call to ``seconds``.

    The deadline (``clock.monotonic() + seconds``, or an enclosing Timeout's if
    that is sooner) is put in ``ctx.deadline`` and in the context variable
    ``resilient.core.context.current_deadline`` for the duration of the call, so
    inner policies (``Retry``'s deadline) and the httpx transports honour it.

    * **Async calls** are cancelled at the deadline and raise
      :class:`~resilient.TimeoutExceeded` (a ``TimeoutError``), chained from the
      ``asyncio`` timeout; the cancelled work sees ``CancelledError``.
    * **A plain sync function cannot be interrupted in Python.** Around one,
      ``Timeout`` bounds only what consults the deadline (inner retries, lock
      waits, the httpx transports); a sync call that simply runs long returns
      its value late.

    A call that starts with the deadline already past raises at once. Event:
    ``timeout.exceeded``.

    Args:
        seconds: the time allowed (> 0). The cancellation runs on the event
            loop's real clock; ``clock`` only dates the deadline inner policies see.
        clock: time source for the deadline.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "timeout"

    def __init__(self, seconds: float, *, clock: Clock | None = None) -> None:
        self.seconds = number("seconds", seconds, strict=True)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._exceeded = Counter()

    def _exceeded_error(self, ctx: Context) -> TimeoutExceeded:
        self._exceeded.incr()
        emit("timeout.exceeded", operation=ctx.operation, key=self.partition, seconds=self.seconds)
        return TimeoutExceeded(f"{ctx.operation} exceeded its {self.seconds}s timeout")

    def bind(self, inner: SyncStep) -> SyncStep:
        monotonic, seconds = monotonic_of(self.clock), self.seconds
        set_deadline, reset_deadline = current_deadline.set, current_deadline.reset

        def timeout_step(ctx: Context) -> Any:
            now = monotonic()
            deadline = now + seconds
            outer = ctx.effective_deadline()  # the call's own, or an enclosing Timeout's
            if outer is not None and outer < deadline:
                deadline = outer
            if deadline <= now:
                raise self._exceeded_error(ctx)
            saved, token = ctx.deadline, None
            try:
                ctx.deadline = deadline
                token = set_deadline(deadline)
                return inner(ctx)
            finally:
                if token is not None:
                    reset_deadline(token)
                ctx.deadline = saved

        return timeout_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        clock, seconds = self.clock, self.seconds
        running_loop, task_of = asyncio.get_running_loop, _task_of
        on_loop_clock = clock is SYSTEM_CLOCK  # asyncio's loop.time() is time.monotonic() too

        monotonic = monotonic_of(clock)
        get_deadline, set_deadline, reset_deadline = current_deadline.get, current_deadline.set, current_deadline.reset

        async def timeout_step(ctx: Context) -> Any:
            now = monotonic()
            deadline = now + seconds
            saved = ctx.deadline  # the call's own, or an enclosing Timeout's (ctx.effective_deadline(), inline)
            outer = get_deadline()
            if saved is not None and (outer is None or saved < outer):
                outer = saved
            if outer is not None and outer < deadline:
                deadline = outer
            left = deadline - now
            if left <= 0:
                raise self._exceeded_error(ctx)
            loop = running_loop()
            task = task_of(loop)
            if task is None:
                raise RuntimeError("rs.Timeout's async form must run inside an asyncio task")
            dog = _last
            if dog is None or dog.loop is not loop:
                dog = _watchdog(loop)
            at = deadline if on_loop_clock else loop.time() + left
            watch: list[Any] = [task, at, None, False, task.cancelling()]  # a _Watch, as a list: made on every call
            watches, wid = dog.watches, id(watch)
            token = set_deadline(deadline)
            try:
                if left <= NEAR:
                    watch[_HANDLE] = loop.call_at(at, _fire, watch)
                else:
                    watches[wid] = watch
                    if dog.tick is None:
                        dog.tick = loop.call_at(loop.time() + TICK, dog.look)
                ctx.deadline = deadline
                return await inner(ctx)
            except asyncio.CancelledError as exc:
                if watch[_FIRED] and task.uncancel() <= watch[_CANCELLING]:
                    cause = TimeoutError(f"cancelled at the deadline, {seconds}s after the start")
                    cause.__cause__ = exc
                    raise self._exceeded_error(ctx) from cause
                raise
            finally:
                reset_deadline(token)
                handle = watch[_HANDLE]
                if handle is not None:
                    handle.cancel()
                watches.pop(wid, None)
                ctx.deadline = saved

        return timeout_step

    def stats(self) -> dict[str, Any]:
        return {"exceeded": self._exceeded.value}

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r})"


# -- the asyncio deadline: one watchdog per loop --------------------------------------------
#
# ``asyncio.timeout`` arms a timer per call, which costs more than the rest of a
# five-policy pipeline. Most calls end long before their deadline, so a call only
# joins its loop's watchdog (a set add and discard); a timer of its own is armed
# only once its deadline is near: at the start when it is due within ``NEAR``
# seconds, else by the watchdog's tick (every ``TICK`` seconds while calls are in
# flight). The cancellation itself is exact: ``loop.call_at(deadline)``.

#: Seconds between the watchdog's looks at the calls in flight.
TICK = 0.1
#: A call due within this many seconds gets its own timer at once.
NEAR = 2 * TICK


# One call's watch: [task, deadline on the loop's clock, its timer once near, fired, the
# task's cancelling() count at the start]. A list, because one is made per call.
_TASK, _AT, _HANDLE, _FIRED, _CANCELLING = range(5)


# The running task of a loop, ``asyncio.current_task(loop)``. Python 3.11's is a Python
# function around this very dict lookup; a frame less on every timed call matters here.
_TASKS: Any = getattr(asyncio.tasks, "_current_tasks", None)
_task_of: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = (
    _TASKS.get if sys.version_info < (3, 12) and isinstance(_TASKS, dict) else asyncio.current_task
)


def _fire(watch: list[Any]) -> None:
    watch[_FIRED] = True
    watch[_TASK].cancel()


class _Watchdog:
    """The calls in flight on one loop whose deadline was far; a tick arms the timers of
    those whose deadline came near (and stops once none is left)."""

    __slots__ = ("loop", "tick", "watches")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watches: dict[int, list[Any]] = {}
        self.tick: asyncio.TimerHandle | None = None

    def look(self) -> None:
        loop = self.loop
        near = loop.time() + NEAR
        for watch in self.watches.values():
            if watch[_HANDLE] is None and watch[_AT] <= near:
                watch[_HANDLE] = loop.call_at(watch[_AT], _fire, watch)
        self.tick = loop.call_at(loop.time() + TICK, self.look) if self.watches else None


_dogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = weakref.WeakKeyDictionary()
_dogs_lock = threading.Lock()
_last: _Watchdog | None = None  # the last loop's watchdog: one attribute read on the hot path


def _watchdog(loop: asyncio.AbstractEventLoop) -> _Watchdog:
    """The watchdog of ``loop`` (made on its first timed call)."""
    global _last
    with _dogs_lock:
        dog = _dogs.get(loop)
        if dog is None:
            dog = _dogs[loop] = _Watchdog(loop)
    _last = dog
    return dog
