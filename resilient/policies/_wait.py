"""Waiting for a bulkhead slot: the thread twin beside the asyncio twin.

The slot bookkeeping is pure (:mod:`resilient._machines.bulkhead`); these
drivers only wait for a slot handed over by :meth:`Slots.leave` and wake the
waiter it returns. A waiter is a ``threading.Event`` for a thread, or a future
on its loop for a task, so one bulkhead serves threads and tasks at once.
Queue waits are real time (a bound on how long a caller stands in line).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .._machines.bulkhead import Slots
from ..core.errors import BulkheadFullError

__all__ = ["AsyncWaiter", "wait_for_slot", "wait_for_slot_async", "wake"]


class AsyncWaiter:
    """A queued task: its loop and the future the slot is handed to."""

    __slots__ = ("future", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()


def _grant(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def wake(waiter: Any) -> None:
    """Tell a waiter handed a slot by ``Slots.leave`` that it holds it now."""
    if isinstance(waiter, AsyncWaiter):
        waiter.loop.call_soon_threadsafe(_grant, waiter.future)
    else:
        waiter.set()


def release(slots: Slots[Any], lock: threading.Lock) -> None:
    """Free a slot, waking the waiter it passes to."""
    with lock:
        waiter = slots.leave()
    if waiter is not None:
        wake(waiter)


def wait_for_slot(slots: Slots[Any], lock: threading.Lock, waiter: threading.Event, timeout: float | None) -> None:
    """Block until ``waiter`` is handed a slot, or raise ``BulkheadFullError`` after ``timeout`` s."""
    if waiter.wait(timeout):
        return
    with lock:
        gave_up = slots.abandon(waiter)
    if gave_up:
        raise BulkheadFullError(f"bulkhead queue wait exceeded {timeout}s")
    # handed a slot just as the wait ran out: it is ours, use it


async def wait_for_slot_async(
    slots: Slots[Any], lock: threading.Lock, waiter: AsyncWaiter, seconds: float | None
) -> None:
    """The async twin of :func:`wait_for_slot`; a cancelled waiter passes on any slot it was handed."""
    try:
        async with asyncio.timeout(seconds):
            await waiter.future
        return
    except TimeoutError:
        with lock:
            gave_up = slots.abandon(waiter)
        if gave_up:
            raise BulkheadFullError(f"bulkhead queue wait exceeded {seconds}s") from None
    except BaseException:
        with lock:
            gave_up = slots.abandon(waiter)
        if not gave_up:
            release(slots, lock)
        raise
