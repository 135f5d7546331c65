"""The token provider's waiting: one refresh in flight, waited for by threads and tasks alike.

A :class:`Flight` is one refresh. Threads wait on its ``threading.Event``;
asyncio tasks (on any loop) wait on a future of their own loop that the
finishing side resolves with ``call_soon_threadsafe``. So one refresh serves
``get()`` and ``aget()`` callers together, whichever world started it.

:func:`poll_shared` and :func:`apoll_shared` are the bounded, jittered polling
loops with which a process waits for another process's refresh of a shared
token. The sync form sits beside its async twin.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from ..core.clock import Clock
from ..core.waiting import asleep, sleep, waiting_disabled

__all__ = ["MAX_POLLS", "Flight", "apoll_shared", "poll_shared"]

T = TypeVar("T")

MAX_POLLS = 10_000
"""A hard bound on polls per wait, whatever the clock does (``no_waiting()``, a frozen FakeClock)."""


class Flight(Generic[T]):
    """One refresh: its outcome (``result`` or ``error``, or neither when it was
    abandoned or left to another process) and the callers waiting for it."""

    __slots__ = ("_lock", "_waiters", "background", "done", "error", "loop", "owner", "result")

    def __init__(self, lock: threading.Lock, *, background: bool, loop: asyncio.AbstractEventLoop | None) -> None:
        self._lock = lock  # the provider's lock: registration and finishing exclude each other
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.background = background
        self.loop = loop  # the event loop running the refresh, None for a thread
        self.owner: int | None = None  # the thread running the refresh, when one does
        self.done = threading.Event()
        self.result: T | None = None
        self.error: Exception | None = None

    def finish(self, result: T | None, error: Exception | None) -> None:
        """Record the outcome and wake every waiter (threads and tasks)."""
        with self._lock:
            self.result = result
            self.error = error
            self.done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: nobody is left to wake
                pass

    def wait(self) -> None:
        """Block this thread until the flight is done."""
        if not self.done.is_set():
            if self.owner == threading.get_ident():
                raise RuntimeError("the token fetch called get() on its own provider: it would wait for itself")
            if self.loop is not None and _running_loop() is self.loop:
                raise RuntimeError("get() called on the event loop that runs the token refresh: use `await aget()`")
            self.done.wait()

    async def await_done(self) -> None:
        """Suspend this task until the flight is done (cancellable: the refresh goes on)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.done.is_set():
                return
            self._waiters.append((loop, future))
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# -- waiting for another process's refresh ---------------------------------------


def poll_shared(attempt: Callable[[], T | None], clock: Clock, delays: Iterator[float], *, wait: float) -> T | None:
    """Call ``attempt()`` until it returns a value, pausing ``next(delays)`` between
    calls, for at most ``wait`` seconds (and :data:`MAX_POLLS` calls); None if it never did."""
    deadline = clock.monotonic() + wait
    for _ in range(MAX_POLLS):
        result = attempt()
        if result is not None:
            return result
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return None
        sleep(clock, min(next(delays), remaining))
    return None


async def apoll_shared(
    attempt: Callable[[], Awaitable[T | None]], clock: Clock, delays: Iterator[float], *, wait: float
) -> T | None:
    """The async twin of :func:`poll_shared`."""
    deadline = clock.monotonic() + wait
    for _ in range(MAX_POLLS):
        result = await attempt()
        if result is not None:
            return result
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return None
        await asleep(clock, min(next(delays), remaining))
        if waiting_disabled():
            await asyncio.sleep(0)  # still let the lease holder's task run
    return None
