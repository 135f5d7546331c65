"""SingleFlight: one execution per key among concurrent callers (Go's x/sync/singleflight)."""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from ..core.stats import Counter

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Call:
    """One thread-side execution and what its waiters need."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class _ACall:
    """One asyncio execution (a task of its own) and how many callers await it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.waiters = 0


def _check_fn(name: str, fn: object, on_join: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be a zero-argument callable (the work to share), got {fn!r}")
    if on_join is not None and not callable(on_join):
        raise TypeError(f"on_join must be callable or None, got {on_join!r}")


class SingleFlight:
    """Concurrent callers of one key share one execution and its outcome.

    ``do(key, fn)`` for threads and ``await ado(key, afn)`` for asyncio: the
    first caller of a key starts the work, the callers that arrive while it
    runs wait for it and receive the same value, or the same exception. Nothing
    is remembered once the work ends (a failure is never cached).

    In asyncio the work runs as a task of its own: a waiter that is cancelled
    only stops waiting; the work is cancelled when no waiter is left. Threads
    cannot be cancelled: the first caller runs the work in its own thread.

    ``forget(key)`` (as in Go) lets the next caller start a new execution; the
    one in flight still finishes for its waiters.

    Thread callers and asyncio callers of one key do not share an execution;
    each event loop has its own executions.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call] = {}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _ACall]] = (
            weakref.WeakKeyDictionary()
        )
        self._executions = Counter()
        self._joined = Counter()

    # -- threads ---------------------------------------------------------------
    def do(self, key: Hashable, fn: Callable[[], T], *, on_join: Callable[[], None] | None = None) -> T:
        """Run ``fn()`` unless an execution of ``key`` is in flight; share its outcome.

        ``on_join`` is called for each caller that joins another's execution.
        """
        _check_fn("fn", fn, on_join)
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            self._joined.incr()
            if on_join is not None:
                on_join()
            call.done.wait()
            if call.error is not None:
                raise call.error
            value: T = call.value
            return value
        self._executions.incr()
        try:
            call.value = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                if self._calls.get(key) is call:
                    del self._calls[key]
            call.done.set()
        return call.value  # type: ignore[no-any-return]

    # -- asyncio ---------------------------------------------------------------
    async def ado(
        self, key: Hashable, afn: Callable[[], Awaitable[T]], *, on_join: Callable[[], None] | None = None
    ) -> T:
        """Await ``afn()`` unless an execution of ``key`` is in flight; share its outcome.

        ``afn`` is a zero-argument coroutine function (or returns an awaitable);
        ``on_join`` is called for each caller that joins another's execution.
        """
        _check_fn("afn", afn, on_join)
        loop = asyncio.get_running_loop()
        calls = self._loops.get(loop)
        if calls is None:
            with self._lock:
                calls = self._loops.setdefault(loop, {})
        call = calls.get(key)
        if call is None:
            self._executions.incr()
            task: asyncio.Task[T] = loop.create_task(_execute(afn))
            call = calls[key] = _ACall(task)
            task.add_done_callback(functools.partial(_dropped, calls, key, call))
        else:
            self._joined.incr()
            if on_join is not None:
                on_join()
        call.waiters += 1
        try:
            result: T = await asyncio.shield(call.task)
            return result
        except asyncio.CancelledError:
            if not call.task.done() and call.waiters == 1:  # the last waiter leaves: stop the work
                _drop(calls, key, call)
                call.task.cancel()
            raise
        finally:
            call.waiters -= 1

    # -- both ------------------------------------------------------------------
    def forget(self, key: Hashable) -> None:
        """Let the next caller of ``key`` start a new execution (the current one still ends)."""
        with self._lock:
            self._calls.pop(key, None)
            loops = list(self._loops.values())
        for calls in loops:
            calls.pop(key, None)

    @property
    def in_flight(self) -> int:
        """Keys with an execution in flight (threads and every loop)."""
        with self._lock:
            return len(self._calls) + sum(len(c) for c in self._loops.values())

    def stats(self) -> dict[str, int]:
        """``executions`` started and callers ``joined`` to another's execution."""
        return {"executions": self._executions.value, "joined": self._joined.value}

    def __repr__(self) -> str:
        return f"SingleFlight(in_flight={self.in_flight})"


async def _execute(afn: Callable[[], Awaitable[T]]) -> T:
    return await afn()


def _dropped(calls: dict[Hashable, _ACall], key: Hashable, call: _ACall, _task: object) -> None:
    _drop(calls, key, call)


def _drop(calls: dict[Hashable, _ACall], key: Hashable, call: _ACall) -> None:
    if calls.get(key) is call:
        del calls[key]
