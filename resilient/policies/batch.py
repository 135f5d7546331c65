"""Batch: loads of many keys within a short window go to the origin as one call (Hystrix's collapser).

The window's decisions (open, full, due) are :class:`resilient._machines.batch.BatchWindow`'s;
this module holds the callers' futures and does the waiting: threads here, asyncio below.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from .._machines.batch import BatchWindow
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import emit
from ..core.policy import operation_name

__all__ = ["Batch", "BatchLoader"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING: Any = object()


class Batch:
    """Collapse loads of single keys into calls of a batch function.

    ``rs.Batch()(fetch)`` takes ``fetch(keys: list) -> Mapping`` (sync, or async
    for the async methods) and returns a :class:`BatchLoader`. Loads of distinct
    keys that arrive within ``window`` seconds of the first one, or until
    ``max_size`` keys wait, go to the origin as one ``fetch`` call. The same key
    loaded twice (in one window, or while its batch is in flight) is fetched
    once. A key missing from the mapping ``fetch`` returns raises ``KeyError``
    for its own callers alone; an exception from ``fetch`` reaches every caller
    of that batch. ``fetch`` is an ordinary callable, so policies wrap it:
    ``rs.Batch()(retry(fetch_products))``.

    Args:
        window: seconds a batch stays open after its first key (>= 0; 0 sends
            what arrived together, in one turn of the event loop or under one lock).
        max_size: distinct keys at most per ``fetch`` call (>= 1); a full batch goes at once.
        clock: times the window (``clock.monotonic()`` and its ``sleep``/``asleep``).

    .. versionadded:: 0.1
    """

    def __init__(self, *, window: float = 0.005, max_size: int = 100, clock: Clock | None = None) -> None:
        checked = BatchWindow(window=window, max_size=max_size)  # validates, naming the parameter
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.window = checked.window
        self.max_size = checked.max_size
        self.clock = clock or SYSTEM_CLOCK

    def __call__(self, fetch: Callable[[list[K]], Any]) -> BatchLoader[K, Any]:
        """Wrap the batch function ``fetch``."""
        if not callable(fetch):
            raise TypeError(f"Batch decorates a batch function fetch(keys) -> Mapping, got {fetch!r}")
        return BatchLoader(fetch, window=self.window, max_size=self.max_size, clock=self.clock)

    def __repr__(self) -> str:
        return f"Batch(window={self.window!r}, max_size={self.max_size!r})"


class _Entry:
    """One key of a thread-side batch: its outcome, once the batch is back."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = _MISSING
        self.error: BaseException | None = None


class _AEntry:
    """One key of an asyncio batch: a future and how many callers await it."""

    __slots__ = ("batch", "future", "waiters")

    def __init__(self, future: asyncio.Future[Any], batch: _ABatch) -> None:
        self.future = future
        self.batch = batch
        self.waiters = 0


class _ABatch:
    """An asyncio batch: its entries, its timer (while open), its fetch task (once sent)."""

    __slots__ = ("entries", "generation", "task", "timer", "waiters")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.entries: dict[Hashable, _AEntry] = {}
        self.timer: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.waiters = 0


class _LoopState:
    """One event loop's window, its open batch and the entries in flight."""

    __slots__ = ("flying", "open", "window")

    def __init__(self, window: float, max_size: int) -> None:
        self.window = BatchWindow(window=window, max_size=max_size)
        self.open: _ABatch | None = None
        self.flying: dict[Hashable, _AEntry] = {}


class BatchLoader(Generic[K, V]):
    """What :class:`Batch` returns: ``load``/``load_many`` (threads), ``aload``/``aload_many`` (asyncio).

    Threads and each event loop batch separately. In asyncio each batch's
    ``fetch`` runs as a task of its own: a cancelled caller stops waiting (its
    key leaves a batch not yet sent), and a batch in flight is cancelled only
    when none of its callers is left. Nothing is kept once a batch is back:
    this is collapsing, not a cache. Event: ``batch.dispatched`` (``size``,
    ``reason``: ``"full"`` or ``"window"``).
    """

    def __init__(self, fetch: Callable[[list[K]], Any], *, window: float, max_size: int, clock: Clock) -> None:
        self.fetch = fetch
        functools.update_wrapper(self, fetch)  # type: ignore[arg-type]
        self.window = window
        self.max_size = max_size
        self.clock = clock
        self._real_sleep = type(clock).sleep is Clock.sleep  # the system's sleep: wait on an event instead
        self._operation = operation_name(fetch)
        self._lock = threading.Lock()
        self._twindow = BatchWindow(window=window, max_size=max_size)
        self._topen: dict[Hashable, _Entry] = {}
        self._tclosed = threading.Event()  # set when the open thread-side window closes
        self._tflying: dict[Hashable, _Entry] = {}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._batches = 0
        self._keys = 0
        self._coalesced = 0
        self._loads = 0

    # -- threads -----------------------------------------------------------------
    def load(self, key: K) -> V:
        """The value of ``key``, fetched in a batch with the keys loaded meanwhile; ``KeyError`` if absent."""
        return self.load_many((key,))[0]

    def load_many(self, keys: Iterable[K]) -> list[V]:
        """The values of ``keys``, in order (one ``KeyError`` for the first absent key)."""
        keys = list(keys)
        sealed: list[dict[Hashable, _Entry]] = []
        lead: tuple[int, threading.Event] | None = None
        entries: list[_Entry] = []
        with self._lock:
            now = self.clock.monotonic()
            self._loads += len(keys)
            for key in keys:
                entry = self._tflying.get(key) or self._topen.get(key)
                if entry is not None:
                    self._coalesced += 1
                    entries.append(entry)
                    continue
                added = self._twindow.add(key, now)
                if added.opened:
                    self._tclosed = threading.Event()
                    lead = (added.generation, self._tclosed)
                entry = self._topen[key] = _Entry()
                entries.append(entry)
                if added.full is not None:
                    sealed.append(self._seal())
        for batch in sealed:
            self._run(batch, "full")
        if lead is not None:
            self._lead(*lead)
        return [self._outcome(key, entry) for key, entry in zip(keys, entries, strict=True)]

    def _seal(self) -> dict[Hashable, _Entry]:
        """Close the open thread-side window: its entries are in flight now (lock held)."""
        batch, self._topen = self._topen, {}
        if self._twindow.size:
            self._twindow.take()
        self._tflying.update(batch)
        self._tclosed.set()
        return batch

    def _lead(self, generation: int, closed: threading.Event) -> None:
        """The caller that opened a window waits it out, then sends it (unless it went full)."""
        while True:
            with self._lock:
                wait = self._twindow.due(generation, self.clock.monotonic())
                batch = self._seal() if wait == 0 else None
            if wait < 0:
                return
            if batch is not None:
                self._run(batch, "window")
                return
            if self._real_sleep:
                closed.wait(wait)
            else:
                self.clock.sleep(wait)

    def _run(self, batch: dict[Hashable, _Entry], reason: str) -> None:
        keys = list(batch)
        self._dispatched(len(keys), reason)
        try:
            result = self.fetch(keys)  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                _close(result)
                raise TypeError(f"{self._operation} is async: call aload()/aload_many(), not load()")
            mapping = _mapping(self._operation, result)
            for key, entry in batch.items():
                entry.value = mapping.get(key, _MISSING)
        except BaseException as exc:
            for entry in batch.values():
                entry.error = exc
        finally:
            with self._lock:
                for key, entry in batch.items():
                    if self._tflying.get(key) is entry:
                        del self._tflying[key]
            for entry in batch.values():
                entry.done.set()

    @staticmethod
    def _outcome(key: Hashable, entry: _Entry) -> Any:
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        if entry.value is _MISSING:
            raise KeyError(key)
        return entry.value

    # -- asyncio -----------------------------------------------------------------
    async def aload(self, key: K) -> V:
        """The async twin of :meth:`load`."""
        return (await self.aload_many((key,)))[0]

    async def aload_many(self, keys: Iterable[K]) -> list[V]:
        """The async twin of :meth:`load_many`."""
        keys = list(keys)
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            with self._lock:
                state = self._loops.setdefault(loop, _LoopState(self.window, self.max_size))
        now = self.clock.monotonic()
        mine: list[_AEntry] = []
        with self._lock:  # only for the counters: the loop's state is the loop's alone
            self._loads += len(keys)
        for key in keys:
            entry = state.flying.get(key)
            if entry is None and state.open is not None:
                entry = state.open.entries.get(key)
            if entry is not None:
                with self._lock:
                    self._coalesced += 1
            else:
                added = state.window.add(key, now)
                batch = state.open
                if added.opened or batch is None:
                    batch = state.open = _ABatch(added.generation)
                    batch.timer = loop.create_task(self._atimer(state, batch))
                entry = batch.entries[key] = _AEntry(loop.create_future(), batch)
                if added.full is not None:
                    self._adispatch(state, batch, "full")
            entry.waiters += 1
            entry.batch.waiters += 1
            mine.append(entry)
        left = list(zip(keys, mine, strict=True))
        try:
            values = []
            for _, entry in left:
                values.append(await asyncio.shield(entry.future))
            return values
        finally:
            for key, entry in left:
                self._aleave(state, key, entry)

    async def _atimer(self, state: _LoopState, batch: _ABatch) -> None:
        while True:
            wait = state.window.due(batch.generation, self.clock.monotonic())
            if wait < 0:
                return
            if wait == 0:
                state.window.take()
                batch.timer = None  # this task is ending: nothing to cancel
                self._adispatch(state, batch, "window")
                return
            await self.clock.asleep(wait)

    def _adispatch(self, state: _LoopState, batch: _ABatch, reason: str) -> None:
        """Send ``batch`` (its window already closed): its entries fly, its fetch is a task."""
        if state.open is batch:
            state.open = None
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        state.flying.update(batch.entries)
        self._dispatched(len(batch.entries), reason)
        batch.task = asyncio.get_running_loop().create_task(self._afetch(state, batch))

    async def _afetch(self, state: _LoopState, batch: _ABatch) -> None:
        entries = batch.entries
        try:
            result = self.fetch(list(entries))  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                result = await result
            mapping = _mapping(self._operation, result)
        except asyncio.CancelledError:
            for entry in entries.values():
                entry.future.cancel()
            raise
        except BaseException as exc:
            for entry in entries.values():
                _fail(entry.future, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for key, entry in entries.items():
                value = mapping.get(key, _MISSING)
                if value is _MISSING:
                    _fail(entry.future, KeyError(key))
                elif not entry.future.done():
                    entry.future.set_result(value)
        finally:
            _drop(state.flying, entries)

    def _aleave(self, state: _LoopState, key: Hashable, entry: _AEntry) -> None:
        """A caller stops waiting for ``entry`` (it has its value, or it left early)."""
        entry.waiters -= 1
        batch = entry.batch
        batch.waiters -= 1
        if entry.future.done():
            return
        if batch.task is None:  # not sent yet: a key nobody waits for leaves the window
            if entry.waiters == 0 and batch.entries.get(key) is entry:
                del batch.entries[key]
                entry.future.cancel()
                if state.open is batch and state.window.remove(key):
                    state.open = None
                    if batch.timer is not None:
                        batch.timer.cancel()
                        batch.timer = None
        elif batch.waiters == 0:  # in flight and nobody is left: stop it
            _drop(state.flying, batch.entries)
            batch.task.cancel()

    # -- both --------------------------------------------------------------------
    def _dispatched(self, size: int, reason: str) -> None:
        with self._lock:
            self._batches += 1
            self._keys += size
        emit("batch.dispatched", policy="batch", operation=self._operation, key=None, size=size, reason=reason)

    @property
    def pending(self) -> int:
        """Keys waiting in an open window or in flight (threads and every loop)."""
        with self._lock:
            count = len(self._topen) + len(self._tflying)
            for state in self._loops.values():
                count += len(state.flying) + (len(state.open.entries) if state.open is not None else 0)
            return count

    def stats(self) -> dict[str, Any]:
        """``batches`` sent, ``keys`` fetched, ``loads`` asked, ``coalesced`` (loads that joined
        a key already waiting or in flight), ``mean_batch_size``."""
        with self._lock:
            batches, keys = self._batches, self._keys
            return {
                "batches": batches,
                "keys": keys,
                "loads": self._loads,
                "coalesced": self._coalesced,
                "mean_batch_size": keys / batches if batches else 0.0,
            }

    def __repr__(self) -> str:
        return f"BatchLoader({self._operation}, window={self.window!r}, max_size={self.max_size!r})"


def _mapping(operation: str, result: object) -> Mapping[Any, Any]:
    if not isinstance(result, Mapping):
        raise TypeError(f"{operation} must return a Mapping of key -> value, got {type(result).__name__}")
    return result


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: a caller that left must not leave a "never retrieved" log behind


def _drop(flying: dict[Hashable, _AEntry], entries: dict[Hashable, _AEntry]) -> None:
    for key, entry in entries.items():
        if flying.get(key) is entry:
            del flying[key]


def _close(result: Awaitable[Any]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
