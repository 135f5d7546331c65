"""WriteBuffer: absorb a write spike, feed ``write(batch)`` at the rate the database takes."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from .._machines._validate import number, whole
from .._machines.bucket import TokenBucket
from .._machines.buffer import BatchPlan
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import BufferFullError
from ..core.events import emit
from ..core.policy import Policy, operation_name
from ..core.stats import Counter
from .drain import POLICY, Drain, Gate, Source, Tally, adrain, drain
from .local import LocalQueue

__all__ = ["SharedQueue", "WriteBuffer"]

_STORE_ERRORS = ("raise", "local")


class LocalGate:
    """``rate`` items per second in process: a token bucket holding one batch."""

    def __init__(self, *, rate: float, burst: float, clock: Clock) -> None:
        self._bucket = TokenBucket(rate=rate, burst=burst)
        self._lock = threading.Lock()
        self._clock = clock

    def take(self, n: int) -> float:
        now = self._clock.monotonic()
        with self._lock:
            return self._bucket.take(now, n)

    async def atake(self, n: int) -> float:
        return self.take(n)


class SharedQueue(Protocol):
    """What a shared queue (``rs.RedisStreamQueue``) gives a :class:`WriteBuffer`."""

    is_async: bool
    key: str

    def attach(
        self, *, plan: BatchPlan, clock: Clock, max_pending: int, on_store_error: str, operation: str
    ) -> None: ...

    def put(self, item: Any) -> None: ...

    async def aput(self, item: Any) -> None: ...

    def gate(self, *, rate: float, burst: float) -> Gate: ...

    def source(self, *, consume: bool) -> Source: ...

    def flush(self, timeout: float | None, *, consume: bool) -> bool: ...

    async def aflush(self, timeout: float | None, *, consume: bool) -> bool: ...  # noqa: ASYNC109 (the twin of flush(timeout))

    def close(self) -> None: ...

    async def aclose(self) -> None: ...

    def pending(self) -> int: ...

    def lag(self, now_wall: float) -> float: ...


class WriteBuffer:
    """Absorbs a write spike and feeds ``write(items)`` in batches, at a controlled rate.

    ``put(item)`` / ``await aput(item)`` return as soon as the item is queued;
    with ``max_pending`` items held they raise :class:`~resilient.BufferFullError`
    (backpressure, never unbounded memory). A drain worker (a thread when
    ``write`` is a plain function, a task on the running loop when it is a
    coroutine function) calls ``write`` with up to ``batch_size`` items, waiting
    up to ``linger`` seconds to fill a batch, and never more than ``rate`` items
    per ``per`` seconds: its token bucket holds one batch, so by time t at most
    ``rate·t/per + batch_size`` items were written. ``retry`` (any policy, such as
    ``rs.Retry``) runs around each ``write(batch)``; a batch that still fails goes
    to ``dead_letter(items, error)`` (sync or async) and is dropped, so one poison
    batch never blocks the rest. A batch refused without being written (an
    ``rs.Rejected``, such as an open breaker inside ``retry``) is held and tried
    again, not dead-lettered.

    The worker waits on ``clock``: with a ``FakeClock`` its linger and rate waits
    pass at once (advancing the clock), so tests run instantly and deterministically.

    With ``queue=rs.RedisStreamQueue(...)`` the items go to a Redis stream that
    every process shares, and the rate is the fleet's (one bucket in Redis);
    ``consume=False`` makes this process a producer only. There ``max_pending``
    bounds what this process holds in memory (with ``on_store_error="local"``,
    while Redis is down), and the stream's ``maxlen`` bounds the stream.

    Args:
        write: called with a list of items; may be a coroutine function.
        rate: items per ``per`` seconds (> 0), or None for no limit.
        per: the rate's period in seconds (> 0).
        batch_size: the most items per ``write`` (>= 1).
        linger: seconds the oldest item may wait for its batch to fill (>= 0).
        max_pending: the most items held, the batch in flight included (>= 1).
        retry: a policy run around each ``write(batch)``.
        dead_letter: ``dead_letter(items, error)`` for a batch that failed for good.
        queue: a shared queue (``rs.RedisStreamQueue``); in process when None.
        consume: with ``queue``, whether this process also drains it.
        on_store_error: with ``queue``, ``"raise"`` (``put`` raises
            ``rs.StoreUnavailable`` while Redis is down) or ``"local"`` (buffer in
            process and forward to the stream when it is back).
        clock: what the worker reads and waits on.

    Events: ``buffer.rejected``, ``buffer.written``, ``buffer.held``,
    ``buffer.dead_lettered``, ``buffer.dead_letter_failed``, ``buffer.worker_error``
    (and, with a Redis queue, ``buffer.store_error``, ``buffer.local``,
    ``buffer.forwarded``, ``buffer.claimed``).

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = POLICY

    def __init__(
        self,
        write: Callable[[list[Any]], Any],
        *,
        rate: float | None = None,
        per: float = 1.0,
        batch_size: int = 100,
        linger: float = 0.05,
        max_pending: int = 10_000,
        retry: Policy | None = None,
        dead_letter: Callable[[list[Any], BaseException], Any] | None = None,
        queue: SharedQueue | None = None,
        consume: bool = True,
        on_store_error: str = "raise",
        clock: Clock | None = None,
    ) -> None:
        if not callable(write):
            raise TypeError(f"write must be callable, got {write!r}")
        self.rate = None if rate is None else number("rate", rate, strict=True)
        self.per = number("per", per, strict=True)
        self.plan = BatchPlan(batch_size=batch_size, linger=linger)
        self.batch_size, self.linger = self.plan.batch_size, self.plan.linger
        self.max_pending = whole("max_pending", max_pending, minimum=1)
        if retry is not None and not isinstance(retry, Policy):
            raise TypeError(f"retry must be a resilient policy (such as rs.Retry), got {retry!r}")
        if dead_letter is not None and not callable(dead_letter):
            raise TypeError(f"dead_letter must be callable, got {dead_letter!r}")
        if not isinstance(consume, bool):
            raise TypeError(f"consume must be a bool, got {consume!r}")
        if on_store_error not in _STORE_ERRORS:
            raise ValueError(f"on_store_error must be 'raise' or 'local', got {on_store_error!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        if queue is not None and not (callable(getattr(queue, "attach", None)) and hasattr(queue, "is_async")):
            raise TypeError(f"queue must be a shared queue such as rs.RedisStreamQueue, got {queue!r}")
        self.clock = clock or SYSTEM_CLOCK
        self.write = write
        self.retry = retry
        self.dead_letter = dead_letter
        self.queue = queue
        self.consume = consume
        self.on_store_error = on_store_error
        self.operation = operation_name(write)
        self._async = queue.is_async if queue is not None else inspect.iscoroutinefunction(write)
        if not self._async and inspect.iscoroutinefunction(write):
            raise TypeError("write is a coroutine function but the queue's Redis client is sync: pass a sync write")
        if not self._async and inspect.iscoroutinefunction(dead_letter):
            raise TypeError("dead_letter is a coroutine function but write is sync (a thread worker): pass a sync one")
        self._tally = Tally()
        self._rejected = Counter()
        self._local: LocalQueue | None = None
        if queue is None:
            self._local = LocalQueue(plan=self.plan, clock=self.clock, max_pending=self.max_pending)
            source: Source = self._local
            gate: Gate | None = None
            if self.rate is not None:
                gate = LocalGate(rate=self.rate / self.per, burst=self.batch_size, clock=self.clock)
        else:
            queue.attach(
                plan=self.plan,
                clock=self.clock,
                max_pending=self.max_pending,
                on_store_error=on_store_error,
                operation=self.operation,
            )
            source = queue.source(consume=consume)
            gate = None if self.rate is None else queue.gate(rate=self.rate / self.per, burst=self.batch_size)
        self._drain = Drain(
            source=source,
            gate=gate,
            write=write,
            retry=retry,
            dead_letter=dead_letter,
            clock=self.clock,
            linger=self.linger,
            tally=self._tally,
            operation=self.operation,
            key=None if queue is None else queue.key,
        )
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        if queue is not None and consume:
            self._ensure_worker()  # a consumer drains the stream from the start, whether or not it puts

    # -- the worker -------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop here: the task starts at the next aput/aflush on a loop
            self._ensure_task(loop)
        elif self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(target=drain, args=(self._drain,), name="resilient-write-buffer")
                    thread.daemon = True
                    thread.start()
                    self._thread = thread

    def _ensure_task(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._task
        if task is not None and not task.done():
            return
        with self._start_lock:
            task = self._task
            if task is None or task.done():
                source = self._drain.source
                bind = getattr(source, "bind_loop", None)
                if bind is not None:
                    bind(loop)
                self._task = loop.create_task(adrain(self._drain), name="resilient-write-buffer")

    # -- put ---------------------------------------------------------------------------

    def _refuse(self, why: str) -> BufferFullError:
        self._rejected.incr()
        emit("buffer.rejected", policy=POLICY, operation=self.operation, key=self._drain.key, reason=why)
        return BufferFullError(f"write buffer full: {why}")

    def put(self, item: Any) -> None:
        """Queue ``item`` for writing and return at once.

        Raises:
            BufferFullError: ``max_pending`` items are held (or the stream is at ``maxlen``).
            StoreUnavailable: with a Redis queue that is down and ``on_store_error="raise"``.
        """
        if self._closed:
            raise RuntimeError("this WriteBuffer is closed")
        local, queue = self._local, self.queue
        if local is not None:
            if not local.offer(item):
                raise self._refuse(f"{self.max_pending} items pending")
        else:
            assert queue is not None
            try:
                queue.put(item)
            except BufferFullError as exc:
                raise self._refuse(str(exc)) from None
        self._ensure_worker()

    async def aput(self, item: Any) -> None:
        """The asyncio twin of :meth:`put`."""
        if self._closed:
            raise RuntimeError("this WriteBuffer is closed")
        local, queue = self._local, self.queue
        if local is not None:
            if not local.offer(item):
                raise self._refuse(f"{self.max_pending} items pending")
        else:
            assert queue is not None
            try:
                await queue.aput(item)
            except BufferFullError as exc:
                raise self._refuse(str(exc)) from None
        if self._async:
            self._ensure_task(asyncio.get_running_loop())
        else:
            self._ensure_worker()

    # -- flush and close -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put before this call is written or dead-lettered.

        Returns True then, False if ``timeout`` seconds passed first. Call
        :meth:`aflush` on the event loop that runs an asyncio worker.
        """
        self._check_timeout(timeout)
        self._check_not_on_worker_loop("flush")
        self._ensure_worker()
        if self._local is not None:
            return self._local.flush(timeout)
        assert self.queue is not None
        return self.queue.flush(timeout, consume=self.consume)

    async def aflush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the twin of flush(timeout))
        """The asyncio twin of :meth:`flush`."""
        self._check_timeout(timeout)
        if self._async:
            self._ensure_task(asyncio.get_running_loop())
        else:
            self._ensure_worker()
        if self._local is not None:
            return await self._local.aflush(timeout)
        assert self.queue is not None
        return await self.queue.aflush(timeout, consume=self.consume)

    def close(self) -> None:
        """Flush, then stop the worker: no accepted item is lost at a clean close.

        With a shared queue, "flush" means every item held in process reached the
        stream (where the fleet's consumers write it); the worker finishes its
        batch in flight, then stops consuming.
        """
        if self._closed:
            return
        self._check_not_on_worker_loop("close")
        if self._local is not None:
            self.flush()
        self._closed = True
        self._stop_source()
        thread = self._thread
        if thread is not None:
            thread.join()

    async def aclose(self) -> None:
        """The asyncio twin of :meth:`close`."""
        if self._closed:
            return
        if self._local is not None:
            await self.aflush()
        self._closed = True
        if self._local is not None:
            self._local.close()
        else:
            assert self.queue is not None
            await self.queue.aclose()
        task = self._task
        if task is not None:
            await task
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _stop_source(self) -> None:
        if self._local is not None:
            self._local.close()
        else:
            assert self.queue is not None
            self.queue.close()

    def _check_timeout(self, timeout: float | None) -> None:
        if timeout is not None:
            number("timeout", timeout)

    def _check_not_on_worker_loop(self, method: str) -> None:
        task = self._task
        if task is None or task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if task.get_loop() is loop:
            raise RuntimeError(f"{method}() would block the event loop that runs the worker: await a{method}()")

    # -- readings ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """pending, written, batches, retried, dead_lettered, rejected, lag_seconds."""
        counts = self._tally.snapshot()
        if self._local is not None:
            pending = self._local.pending()
            oldest = self._local.oldest()
            lag = 0.0 if oldest is None else max(0.0, self.clock.monotonic() - oldest)
        else:
            assert self.queue is not None
            pending = self.queue.pending()
            lag = self.queue.lag(self.clock.time())
        return {"pending": pending, **counts, "rejected": self._rejected.value, "lag_seconds": lag}

    def __enter__(self) -> WriteBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> WriteBuffer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"WriteBuffer({self.operation}, rate={self.rate!r}, per={self.per!r}, batch_size={self.batch_size!r},"
            f" max_pending={self.max_pending!r})"
        )
