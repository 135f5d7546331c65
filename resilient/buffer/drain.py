"""The drain worker: take a batch, wait for the rate, write it under the retry policy, settle it.

One flow, two drivers side by side: :func:`drain` runs in a thread,
:func:`adrain` is its asyncio twin (a task on the running loop). Both are handed
what they need (a :class:`Source` of batches, a :class:`Gate` for the rate, the
write and dead-letter callables, the retry policy) and never import the buffer
that starts them. The decisions (when to cut, how long to wait, hold or
dead-letter) come from :mod:`resilient._machines.buffer`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._machines.buffer import Hold, after_failure
from ..core.clock import Clock
from ..core.context import Context
from ..core.errors import Rejected
from ..core.events import emit
from ..core.policy import Policy

__all__ = ["Taken", "Drain", "Gate", "Source", "Tally", "adrain", "drain"]

POLICY = "write_buffer"

#: The shortest rate wait: a wait below the clock's resolution (float rounding) would never end.
MIN_WAIT = 1e-6


@dataclass(slots=True)
class Taken:
    """Items taken together, when the oldest of them was put, and the queue's handles for them."""

    items: list[Any]
    oldest_at: float
    ids: list[Any] = field(default_factory=list)


class Source(Protocol):
    """Where batches come from: ``take`` waits for one (None once closing and drained); ``settle`` acks it."""

    def take(self) -> Taken | None: ...

    async def atake(self) -> Taken | None: ...

    def settle(self, batch: Taken) -> None: ...

    async def asettle(self, batch: Taken) -> None: ...


class Gate(Protocol):
    """The rate: ``take(n)`` takes ``n`` tokens (0.0) or returns the seconds until they would be there."""

    def take(self, n: int) -> float: ...

    async def atake(self, n: int) -> float: ...


class Tally:
    """The worker's counters, exact under threads."""

    __slots__ = ("_lock", "batches", "dead_lettered", "retried", "written")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.written = self.batches = self.retried = self.dead_lettered = 0

    def add(self, *, written: int = 0, batches: int = 0, retried: int = 0, dead_lettered: int = 0) -> None:
        with self._lock:
            self.written += written
            self.batches += batches
            self.retried += retried
            self.dead_lettered += dead_lettered

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "written": self.written,
                "batches": self.batches,
                "retried": self.retried,
                "dead_lettered": self.dead_lettered,
            }


@dataclass(slots=True)
class Drain:
    """Everything one worker needs."""

    source: Source
    gate: Gate | None
    write: Callable[[list[Any]], Any]
    retry: Policy | None
    dead_letter: Callable[[list[Any], BaseException], Any] | None
    clock: Clock
    linger: float
    tally: Tally
    operation: str
    key: str | None = None


def _fields(d: Drain) -> dict[str, Any]:
    return {"policy": POLICY, "operation": d.operation, "key": d.key}


def _error_fields(error: BaseException) -> dict[str, Any]:
    return {"error": type(error).__name__, "error_message": str(error)[:200]}


def _refusal(error: BaseException) -> tuple[bool, float]:
    """Whether ``error`` refused the write without making it, and its hint in seconds."""
    if not isinstance(error, Rejected):
        return False, 0.0
    hint = getattr(error, "retry_after", None) or getattr(error, "remaining", None) or 0.0
    return True, float(hint) if isinstance(hint, (int, float)) else 0.0


def _written(d: Drain, batch: Taken, attempts: int) -> None:
    n = len(batch.items)
    d.tally.add(written=n, batches=1, retried=max(0, attempts - 1))
    emit(
        "buffer.written", **_fields(d), items=n, attempts=attempts, lag=max(0.0, d.clock.monotonic() - batch.oldest_at)
    )


def _dead_lettered(d: Drain, batch: Taken, error: BaseException, attempts: int) -> None:
    d.tally.add(dead_lettered=len(batch.items), retried=max(0, attempts - 1))
    emit("buffer.dead_lettered", **_fields(d), items=len(batch.items), attempts=attempts, **_error_fields(error))


def _held(d: Drain, batch: Taken, error: BaseException, hold: Hold) -> None:
    emit("buffer.held", **_fields(d), items=len(batch.items), delay=hold.seconds, **_error_fields(error))


def _dead_letter_failed(d: Drain, error: BaseException) -> None:
    emit("buffer.dead_letter_failed", **_fields(d), **_error_fields(error))


def _worker_error(d: Drain, error: BaseException) -> None:
    emit("buffer.worker_error", **_fields(d), **_error_fields(error))


# -- the thread ------------------------------------------------------------------


def drain(d: Drain) -> None:
    """Write batches until the source is closed and drained (run in a thread)."""
    while True:
        batch = d.source.take()
        if batch is None:
            return
        try:
            _wait_rate(d, len(batch.items))
            _write_batch(d, batch)
        except Exception as exc:  # a bug in a callback must not kill the worker and strand the queue
            _worker_error(d, exc)
        d.source.settle(batch)


def _wait_rate(d: Drain, n: int) -> None:
    if d.gate is None:
        return
    while (wait := d.gate.take(n)) > 0:
        d.clock.sleep(max(wait, MIN_WAIT))


def _write_batch(d: Drain, batch: Taken) -> None:
    while True:
        attempts = 0

        def attempt(items: list[Any]) -> Any:
            nonlocal attempts
            attempts += 1
            return d.write(items)

        try:
            if d.retry is None:
                attempt(batch.items)
            else:
                d.retry.run(Context(d.operation, attempt, (batch.items,)))
        except Exception as exc:
            refused, hint = _refusal(exc)
            decision = after_failure(refused=refused, retry_after=hint, linger=d.linger)
            if isinstance(decision, Hold):
                _held(d, batch, exc, decision)
                d.clock.sleep(decision.seconds)
                continue
            _dead_lettered(d, batch, exc, attempts)
            if d.dead_letter is not None:
                try:
                    result = d.dead_letter(batch.items, exc)
                    if inspect.isawaitable(result):  # refused at construction; a callable object may still do it
                        getattr(result, "close", lambda: None)()
                        raise TypeError("dead_letter returned an awaitable in a thread worker; pass a sync one")
                except Exception as failure:
                    _dead_letter_failed(d, failure)
            return
        _written(d, batch, attempts)
        return


# -- the task (twin of the above) ---------------------------------------------------


async def adrain(d: Drain) -> None:
    """The asyncio twin of :func:`drain` (run as a task)."""
    while True:
        batch = await d.source.atake()
        if batch is None:
            return
        try:
            await _await_rate(d, len(batch.items))
            await _awrite_batch(d, batch)
        except Exception as exc:
            _worker_error(d, exc)
        await d.source.asettle(batch)


async def _await_rate(d: Drain, n: int) -> None:
    if d.gate is None:
        return
    while (wait := await d.gate.atake(n)) > 0:
        await d.clock.asleep(max(wait, MIN_WAIT))


async def _awrite_batch(d: Drain, batch: Taken) -> None:
    while True:
        attempts = 0

        async def attempt(items: list[Any]) -> Any:
            nonlocal attempts
            attempts += 1
            result = d.write(items)
            if inspect.isawaitable(result):
                result = await result
            return result

        try:
            if d.retry is None:
                await attempt(batch.items)
            else:
                await d.retry.arun(Context(d.operation, attempt, (batch.items,)))
        except Exception as exc:
            refused, hint = _refusal(exc)
            decision = after_failure(refused=refused, retry_after=hint, linger=d.linger)
            if isinstance(decision, Hold):
                _held(d, batch, exc, decision)
                await d.clock.asleep(decision.seconds)
                continue
            _dead_lettered(d, batch, exc, attempts)
            if d.dead_letter is not None:
                try:
                    result = d.dead_letter(batch.items, exc)
                    if inspect.isawaitable(result):
                        await result
                except Exception as failure:
                    _dead_letter_failed(d, failure)
            return
        _written(d, batch, attempts)
        return
