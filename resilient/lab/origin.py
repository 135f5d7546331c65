"""The simulated world: an origin with a fixed number of slots, and the users who load it.

It answers in ``latency`` seconds while fewer than ``capacity`` queries are in
service; beyond that, queries wait in a FIFO queue, so latency grows with the
queue. A query keeps its slot until it is done even when the client gave up
waiting (a timed-out client does not cancel the work it caused): this is what
turns a herd into an outage. While ``down`` it refuses every call after
``fail_latency`` seconds (the load still reaches it).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable
from typing import Any

from .metrics import Recorder

__all__ = ["OriginDown", "SimOrigin", "open_loop"]


class OriginDown(ConnectionError):
    """The simulated dependency is down (a fast 503 / refused connection)."""


class SimOrigin:
    """A FIFO server of ``capacity`` slots in the running (virtual) loop's time.

    Args:
        recorder: counts each call and the concurrency at the origin (queued + in service).
        latency: seconds of service per query.
        capacity: queries served at once.
        down: ``(start, end)`` seconds during which every call fails fast.
        fail_latency: seconds before a call fails while down.
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        latency: float,
        capacity: int,
        down: tuple[float, float] | None = None,
        fail_latency: float = 0.005,
    ) -> None:
        self.recorder = recorder
        self.latency = latency
        self.capacity = capacity
        self.down = down
        self.fail_latency = fail_latency
        self.version = 0
        self._free_at: list[float] = [0.0] * capacity  # when each slot frees up (a heap)
        self._loop = asyncio.get_running_loop()

    def is_down(self, now: float) -> bool:
        return self.down is not None and self.down[0] <= now < self.down[1]

    def submit(self) -> asyncio.Future[Any]:
        """Start one query now; the future resolves (or fails) when the origin is done with it."""
        loop = self._loop
        now = loop.time()
        self.recorder.origin_started()
        future: asyncio.Future[Any] = loop.create_future()
        if self.is_down(now):
            loop.call_at(now + self.fail_latency, self._fail, future)
            return future
        start = max(now, heapq.heappop(self._free_at))
        end = start + self.latency
        heapq.heappush(self._free_at, end)
        loop.call_at(end, self._finish, future)
        return future

    async def fetch(self, *_: Any) -> int:
        """One query, awaited: the origin's current version number."""
        result: int = await self.submit()
        return result

    def _finish(self, future: asyncio.Future[Any]) -> None:
        self.recorder.origin_finished()
        self.version += 1
        if not future.done():
            future.set_result(self.version)

    def _fail(self, future: asyncio.Future[Any]) -> None:
        self.recorder.origin_finished()
        if not future.done():
            future.set_exception(OriginDown("origin is down"))


async def open_loop(
    recorder: Recorder,
    request: Callable[[], Awaitable[Any]],
    *,
    rate: float,
    duration: float,
    tick: float | None = None,
    drain: float = 30.0,
) -> None:
    """Start ``rate`` requests per second for ``duration`` seconds, whatever happens to them.

    Users do not wait for the previous request to finish (an open loop): when
    the origin slows down, requests pile up. Each request's latency and outcome
    go to ``recorder``. Arrivals are evenly spaced, released every ``tick``
    seconds (default: one arrival's spacing, at least 1 ms). After ``duration`` it waits up to ``drain`` seconds for
    the requests still running, then cancels the rest (counted as errors).
    """
    loop = asyncio.get_running_loop()
    done = recorder.request_done
    running: set[asyncio.Task[None]] = set()

    async def one() -> None:
        started = loop.time()
        try:
            await request()
        except Exception:
            done(loop.time() - started, ok=False)
        else:
            done(loop.time() - started, ok=True)

    if tick is None:
        tick = max(0.001, 1.0 / rate)
    due = 0.0
    end = loop.time() + duration
    while loop.time() < end:
        due += rate * tick
        while due >= 1.0:
            due -= 1.0
            task = loop.create_task(one())
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.sleep(tick)
    if running:
        _, pending = await asyncio.wait(set(running), timeout=drain)
        for task in pending:
            task.cancel()
        for task in pending:
            try:
                await task
            except asyncio.CancelledError:
                recorder.request_done(drain, ok=False)
