"""Cache: a stampede-proof read-through cache for sync and async calls."""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, ParamSpec, Protocol, TypeVar, cast, overload

from .._machines._validate import number
from .._machines.cache import EARLY, FRESH, STALE, XFETCH_REACH, PollPlan, Timed, XFetch, classify, lifetime
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context, current_deadline
from ..core.errors import CacheLockTimeout
from ..core.events import emit
from ..core.keys import args_key, check_key, compile_key
from ..core.policy import AsyncStep, Policy, SyncStep, operation_name
from ..core.stats import Counter
from ..stores.base import Entry, Serializer, Store
from .fast import fast_path
from .guard import StoreGuard, checked_store
from .singleflight import SingleFlight
from .wait import Room, aload, arefresh, load, refresh

__all__ = ["Cache", "CachedFunction"]

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class CachedFunction(Protocol[P, T_co]):
    """A function decorated by :class:`Cache`: call it, or name and drop its entries.

    ``f.cache_key(*args, **kwargs)`` is the key a call with those arguments is
    stored under; ``f.invalidate(*args, **kwargs)`` / ``await
    f.ainvalidate(*args, **kwargs)`` delete that entry (see :meth:`Cache.invalidate`).

    .. versionadded:: 0.1
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T_co: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None: ...

    async def ainvalidate(self, *args: P.args, **kwargs: P.kwargs) -> None: ...


#: Keys refreshed in the background at once; more due refreshes wait for a later hit.
MAX_BACKGROUND = 64
#: Threads refreshing in the background for sync callers.
REFRESH_WORKERS = 2
#: First fallback poll (s) of a waiter that the store will notify (then up to 0.5 s).
NOTIFIED_POLL = 0.1


def notifies_async(clock: Clock) -> bool:
    """Whether an asyncio wait for a notification (timed by the running loop) keeps to ``clock``.

    True for the system clock and for a clock that reads the loop's own time
    (``loop_time = True``, as the lab's VirtualClock); not for a FakeClock.
    """
    return clock is SYSTEM_CLOCK or getattr(clock, "loop_time", False) is True


class Cache(Policy):
    """A read-through cache that never lets a herd through to the origin.

    A hit returns the stored value. A miss is coalesced in-process (one origin
    call per key among concurrent callers) and, through the store's lease,
    across processes with a shared store: the lease holder calls the origin;
    the others serve the stale value if there is one, else poll (bounded,
    jittered backoff) up to ``lock_wait`` for the new value, then fetch
    themselves. Each write lives ``ttl + uniform(-ttl_jitter, ttl_jitter)``
    seconds, then is stale for ``stale_ttl`` more. A store that fails degrades
    to in-process caching (event ``cache.store_error``); the caller never sees
    a store error.

    Args:
        ttl: seconds a value is fresh (> 0).
        store: where entries live; an in-process ``MemoryStore()`` by default,
            ``RedisStore`` for a fleet.
        key: as for :class:`~resilient.Coalesce`: a template over the call's
            arguments (``"product:{id}"``), a callable taking the function's
            arguments, ``rs.context_key(fn)`` with ``fn(ctx) -> str``, or left
            out (``module:qualname(args)`` for simple-typed arguments).
        ttl_jitter: spread of each write's lifetime, ``0 <= ttl_jitter < ttl``;
            10 % of ``ttl`` by default.
        stale_ttl: seconds a value stays servable as stale after it expires
            (>= 0; ``ttl`` by default).
        serve_stale: serve a stale value at once while one caller refreshes it
            in the background (stale-while-revalidate).
        stale_if_error: when a refresh fails, serve the stale value instead of
            the error (nothing is cached).
        lock_ttl: seconds a refresh lease lasts (> 0).
        lock_wait: seconds a caller with nothing to serve waits for another's
            refresh before fetching itself (>= 0; ``lock_ttl`` by default). An
            enclosing ``Timeout`` bounds the wait too: at its deadline the caller
            raises ``rs.CacheLockTimeout`` instead.
        early_recompute: ``rs.XFetch(beta)``: hits refresh early, in the
            background, with XFetch's probability (delta measured per entry).
        serializer: for the default ``MemoryStore`` (values kept encoded, each
            read a copy); with a ``store``, it is set on the store's ``serializer``.
        clock: time source (``resilient.testing.FakeClock`` in tests); ``rng``: a
            ``random.Random`` for reproducible jitter and XFetch draws.

    Use ``invalidate(key)`` / ``await ainvalidate(key)`` with the formatted key,
    ``stats()`` for the counters, and ``close()`` / ``await aclose()`` to stop
    background refreshes. Inside a pipeline put it outermost, so a hit skips
    everything behind it.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "cache"

    def __init__(
        self,
        *,
        ttl: float,
        store: Store | None = None,
        key: object = None,
        ttl_jitter: float | None = None,
        stale_ttl: float | None = None,
        serve_stale: bool = True,
        stale_if_error: bool = True,
        lock_ttl: float = 5.0,
        lock_wait: float | None = None,
        early_recompute: XFetch | None = None,
        serializer: Serializer | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ttl = number("ttl", ttl, strict=True)
        self.ttl_jitter = 0.1 * self.ttl if ttl_jitter is None else number("ttl_jitter", ttl_jitter)
        if self.ttl_jitter >= self.ttl:
            raise ValueError(f"ttl_jitter must be < ttl ({ttl!r}), got {ttl_jitter!r}")
        self.stale_ttl = self.ttl if stale_ttl is None else number("stale_ttl", stale_ttl)
        self.serve_stale = bool(serve_stale)
        self.stale_if_error = bool(stale_if_error)
        self.lock_ttl = number("lock_ttl", lock_ttl, strict=True)
        self.lock_wait = self.lock_ttl if lock_wait is None else number("lock_wait", lock_wait)
        if early_recompute is not None and not isinstance(early_recompute, XFetch):
            raise TypeError(f"early_recompute must be rs.XFetch(beta=...) or None, got {early_recompute!r}")
        self.early_recompute = early_recompute
        # Hits this far before expiry (in units of the entry's delta) can never
        # be XFetch-early, whatever the draw: the hit path skips the draw there.
        self._reach = 0.0 if early_recompute is None else early_recompute.beta * XFETCH_REACH
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, got {rng!r}")
        self._random = (rng or random).random
        self.store: Store = checked_store(store, serializer)
        self._key = compile_key(key)
        # Seconds past now beyond which a record is taken for no record of this cache. Unbounded: entries
        # with their own lifetime (rs.http's RFC 9111 freshness) may outlive ttl + stale_ttl; the Redis
        # store refuses absurd times itself (inf, nan, past 1e11). A bound here is a one-line change.
        self._horizon = math.inf
        self._guard = StoreGuard(self.store, self.clock, horizon=self._horizon)
        self.flight = SingleFlight()
        self._reads = SingleFlight()  # near misses read once per process (a store with a near cache)
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._hits = Counter()
        self._misses = Counter()
        self._stale_served = Counter()
        self._early = Counter()
        self._coalesced = Counter()
        self._origin_calls = Counter()
        self._errors = Counter()
        self._origin_observers: list[Callable[[float, BaseException | None], None]] = []
        self._room = Room(
            clock=self.clock,
            guard=self._guard,
            lock_ttl=self.lock_ttl,
            lock_wait=self.lock_wait,
            serve_stale=self.serve_stale,
            stale_if_error=self.stale_if_error,
            random=self._random,
            new_entry=self._entry,
            served_stale=self._served_stale,
            waiting=self._waiting,
            lock_timeout=self._lock_timeout,
            origin_calls=self._origin_calls,
            errors=self._errors,
            origin_observers=self._origin_observers,
            # The store's notification of a write (RedisStore with a near cache) ends waits; real time only.
            watch=getattr(self.store, "watch", None) if self.clock is SYSTEM_CLOCK else None,
            awatch=getattr(self.store, "awatch", None) if notifies_async(self.clock) else None,
        )

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> CachedFunction[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> CachedFunction[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> CachedFunction[P, Any]:
        """Decorate ``fn``; with an in-process store, a hit skips building a Context.

        The decorated function also has ``cache_key(*args, **kwargs)``,
        ``invalidate(*args, **kwargs)`` and ``ainvalidate(*args, **kwargs)``
        (:class:`CachedFunction`).
        """
        check_key(self._key, fn)
        decorated = self._decorate(fn)
        operation = operation_name(fn)
        build = args_key(self._key, fn, operation)
        key_of = self._key

        def cache_key(*args: Any, **kwargs: Any) -> str:
            if build is not None:
                return build(args, kwargs)
            return key_of(Context(operation, fn, args, kwargs))

        def invalidate(*args: Any, **kwargs: Any) -> None:
            self.invalidate(cache_key(*args, **kwargs))

        async def ainvalidate(*args: Any, **kwargs: Any) -> None:
            await self.ainvalidate(cache_key(*args, **kwargs))

        decorated.cache_key = cache_key  # type: ignore[attr-defined]
        decorated.invalidate = invalidate  # type: ignore[attr-defined]
        decorated.ainvalidate = ainvalidate  # type: ignore[attr-defined]
        return cast("CachedFunction[P, Any]", decorated)

    def _decorate(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        wrapped = super().__call__(fn)
        primary = self.store
        build = args_key(self._key, fn, operation_name(fn))
        if getattr(primary, "in_process", False) is True:
            local_get = primary.get
        elif getattr(primary, "near", None) is not None:  # a RedisStore's near cache: an in-process read
            local_get = primary.near.peek  # type: ignore[attr-defined]  # fast_path serves only before expires_at
        else:
            return wrapped
        if build is None:
            return wrapped
        return fast_path(
            fn,
            wrapped,
            build,
            guard=self._guard,
            store=self.store,
            get=local_get,
            now=time.time if self.clock is SYSTEM_CLOCK else self.clock.time,
            hit=self._hits.incr,
            reach=self._reach,
        )

    # -- the hit path --------------------------------------------------------------
    def bind(self, inner: SyncStep) -> SyncStep:
        key_of, guard, primary = self._key, self._guard, self.store
        now = time.time if self.clock is SYSTEM_CLOCK else self.clock.time
        reach, horizon = self._reach, self._horizon
        hit = self._hits.incr
        slow = self._slow

        def cache_step(ctx: Context, key: str | None = None, entry: Entry | None = None) -> Any:
            if key is None:  # the pipeline's call: read the store (else near_step read the near copy)
                key = key_of(ctx)
                store = guard.active
                try:
                    entry = store.get(key) if store is primary else guard.get(key, ctx.operation)
                except Exception as exc:
                    entry = guard.failed(exc, "get", key, ctx.operation).get(key)
            if entry is not None:
                t = now()
                if entry.stale_until > t + horizon:  # not a record this cache wrote: a miss
                    entry = None
                elif t < entry.expires_at - entry.delta * reach:
                    hit()
                    return entry.value
            return slow(ctx, key, entry, inner)

        near_get = _near_get(primary)
        if near_get is None:
            return cache_step
        reads, joined = self._reads, self._joined

        def near_step(ctx: Context) -> Any:
            # A store with a near cache: a hit is the process's own copy. A near miss (a cold
            # key, a write elsewhere) is read from the store once per process: the callers
            # arriving meanwhile join that read and what follows it (the lease, the origin call).
            if guard.active is not primary:
                return cache_step(ctx)
            key = key_of(ctx)
            entry = near_get(key)
            if entry is None:
                return reads.do(key, lambda: cache_step(ctx), on_join=lambda: joined(ctx, key))
            return cache_step(ctx, key, entry)

        return near_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        key_of, guard, primary = self._key, self._guard, self.store
        local = getattr(primary, "in_process", False) is True
        now = time.time if self.clock is SYSTEM_CLOCK else self.clock.time
        reach, horizon = self._reach, self._horizon
        hit = self._hits.incr
        aslow = self._aslow

        async def cache_step(ctx: Context, key: str | None = None, entry: Entry | None = None) -> Any:
            if key is None:  # the pipeline's call: read the store (else near_step read the near copy)
                key = key_of(ctx)
                store = guard.active
                if store is not primary:
                    entry = await guard.aget(key, ctx.operation)
                elif local:
                    entry = store.get(key)
                else:
                    try:
                        entry = await store.aget(key)
                    except Exception as exc:
                        entry = guard.failed(exc, "get", key, ctx.operation).get(key)
            if entry is not None:
                t = now()
                if entry.stale_until > t + horizon:  # not a record this cache wrote: a miss
                    entry = None
                elif t < entry.expires_at - entry.delta * reach:
                    hit()
                    return entry.value
            return await aslow(ctx, key, entry, inner)

        near_get = _near_get(primary)
        if near_get is None:
            return cache_step
        reads, joined = self._reads, self._joined

        def near_step(ctx: Context) -> Awaitable[Any]:
            # As the sync near_step: one read of a near miss per process (and loop). Not a
            # coroutine of its own: each branch hands back the awaitable that does the work.
            if guard.active is not primary:
                return cache_step(ctx)
            key = key_of(ctx)
            entry = near_get(key)
            if entry is None:
                return reads.ado(key, lambda: cache_step(ctx), on_join=lambda: joined(ctx, key))
            return cache_step(ctx, key, entry)

        return near_step

    # -- the slow path -------------------------------------------------------------
    def _classify(self, entry: Entry, now: float) -> str:
        xfetch = self.early_recompute
        return classify(
            now,
            entry.expires_at,
            entry.stale_until,
            serve_stale=self.serve_stale,
            delta=entry.delta,
            beta=None if xfetch is None else xfetch.beta,
            u=1.0 if xfetch is None else 1.0 - self._random(),
        )

    def _slow(self, ctx: Context, key: str, entry: Entry | None, inner: SyncStep) -> Any:
        if entry is not None:
            state = self._classify(entry, self.clock.time())
            if state in (FRESH, EARLY):
                self._hits.incr()
                if state == EARLY and self._begin_refresh(key):
                    self._early.incr()
                    emit("cache.early_refresh", operation=ctx.operation, key=key, expires_at=entry.expires_at)
                    self._submit(ctx, key, inner, entry.expires_at)
                return entry.value
            if state == STALE:
                if self._begin_refresh(key):
                    self._submit(ctx, key, inner, entry.expires_at)
                return self._served_stale(ctx, key, entry)
        self._misses.incr()
        return self.flight.do(key, lambda: load(self._room, ctx, key, inner), on_join=lambda: self._joined(ctx, key))

    async def _aslow(self, ctx: Context, key: str, entry: Entry | None, inner: AsyncStep) -> Any:
        if entry is not None:
            state = self._classify(entry, self.clock.time())
            if state in (FRESH, EARLY):
                self._hits.incr()
                if state == EARLY and self._begin_refresh(key):
                    self._early.incr()
                    emit("cache.early_refresh", operation=ctx.operation, key=key, expires_at=entry.expires_at)
                    self._spawn(ctx, key, inner, entry.expires_at)
                return entry.value
            if state == STALE:
                if self._begin_refresh(key):
                    self._spawn(ctx, key, inner, entry.expires_at)
                return self._served_stale(ctx, key, entry)
        self._misses.incr()
        return await self.flight.ado(
            key, lambda: aload(self._room, ctx, key, inner), on_join=lambda: self._joined(ctx, key)
        )

    # -- background refreshes ------------------------------------------------------
    def _begin_refresh(self, key: str) -> bool:
        """Claim the in-process refresh of ``key`` (False: one runs, or too many do)."""
        with self._lock:
            if self._closed or key in self._refreshing or len(self._refreshing) >= MAX_BACKGROUND:
                return False
            self._refreshing.add(key)
            return True

    def _end_refresh(self, key: str) -> None:
        with self._lock:
            self._refreshing.discard(key)

    def _submit(self, ctx: Context, key: str, inner: SyncStep, due_at: float) -> None:
        """Refresh on the small executor, outside any caller's deadline."""
        with self._lock:
            executor = self._executor
            if executor is None:
                executor = self._executor = ThreadPoolExecutor(REFRESH_WORKERS, thread_name_prefix="resilient-cache")
        try:
            executor.submit(_detached().run, self._run_refresh, ctx, key, inner, due_at)
        except RuntimeError:  # shut down meanwhile
            self._end_refresh(key)

    def _run_refresh(self, ctx: Context, key: str, inner: SyncStep, due_at: float) -> None:
        try:
            refresh(self._room, ctx, key, inner, due_at)
        except Exception as exc:  # a refresh never fails a caller; it is told
            emit("cache.refresh_failed", operation=ctx.operation, key=key, error=exc)
        finally:
            self._end_refresh(key)

    def _spawn(self, ctx: Context, key: str, inner: AsyncStep, due_at: float) -> None:
        """Refresh as a tracked task, outside any caller's deadline."""
        task = asyncio.get_running_loop().create_task(self._arun_refresh(ctx, key, inner, due_at), context=_detached())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _arun_refresh(self, ctx: Context, key: str, inner: AsyncStep, due_at: float) -> None:
        try:
            await arefresh(self._room, ctx, key, inner, due_at)
        except Exception as exc:
            emit("cache.refresh_failed", operation=ctx.operation, key=key, error=exc)
        finally:
            self._end_refresh(key)

    # -- helpers for the drivers ---------------------------------------------------
    def _entry(self, value: Any, delta: float, timed: Timed | None = None) -> tuple[Entry, float]:
        """A new entry for ``value`` written now: a jittered lifetime, or ``timed``'s own."""
        now = self.clock.time()
        if timed is not None:
            expires_at = now + timed.ttl
            return Entry(value, expires_at, expires_at + timed.stale_ttl, max(0.0, delta)), now
        expires_at = now + lifetime(self.ttl, self.ttl_jitter, self._random())
        return Entry(value, expires_at, expires_at + self.stale_ttl, max(0.0, delta)), now

    def _served_stale(self, ctx: Context, key: str, entry: Entry, error: BaseException | None = None) -> Any:
        self._stale_served.incr()
        if error is None:
            emit("cache.stale_served", operation=ctx.operation, key=key, expired_at=entry.expires_at, error=None)
        else:
            emit("cache.stale_served", operation=ctx.operation, key=key, expired_at=entry.expires_at, error=error)
        return entry.value

    def _waiting(self, ctx: Context, key: str, *, notified: bool = False) -> PollPlan:
        """The wait's plan: polls every 5-100 ms; with the store's notification, only a fallback every 50-500 ms."""
        self._coalesced.incr()
        emit("cache.waiting", operation=ctx.operation, key=key, lock_wait=self.lock_wait, notified=notified)
        started, deadline = self.clock.monotonic(), ctx.effective_deadline()
        if notified:
            return PollPlan(started=started, wait=self.lock_wait, deadline=deadline, base=NOTIFIED_POLL, cap=0.5)
        return PollPlan(started=started, wait=self.lock_wait, deadline=deadline)

    def _lock_timeout(self, ctx: Context, key: str) -> CacheLockTimeout:
        emit("cache.lock_timeout", operation=ctx.operation, key=key, waited=None, deadline=True)
        return CacheLockTimeout(f"{ctx.operation}: the deadline passed while waiting for another refresh of {key!r}")

    def _joined(self, ctx: Context, key: str) -> None:
        self._coalesced.incr()
        emit("coalesce.joined", operation=ctx.operation, key=key, policy="cache")

    # -- management ----------------------------------------------------------------
    def observe_origin(self, observe: Callable[[float, BaseException | None], None]) -> None:
        """Call ``observe(seconds, error)`` after every origin call (a miss or a refresh).

        ``error`` is the exception the origin raised, ``None`` on success; the
        seconds are read on the cache's clock. A hit costs nothing: only origin
        calls are timed (``resilient.metrics`` feeds its duration histogram so).
        """
        if not callable(observe):
            raise TypeError(f"observe must be a callable (seconds, error), got {observe!r}")
        self._origin_observers.append(observe)  # one atomic append; the drivers read the same list

    def invalidate(self, key: str) -> None:
        """Delete ``key`` and void refreshes in flight for it; a key never stored is ignored.

        ``key`` is the formatted key, as the store holds it. For a decorated
        function get it from the function: ``f.cache_key(*args, **kwargs)``, or
        drop it in one step with ``f.invalidate(*args, **kwargs)``. With
        ``key="product:{id}"`` it is the template filled in (``"product:42"``);
        without ``key=`` it is ``module:qualname(args)`` (``"shop:price(42,)"``),
        so asking the function is the way to be sure.
        """
        self.flight.forget(key)
        self._guard.invalidate(key)

    async def ainvalidate(self, key: str) -> None:
        """The async twin of :meth:`invalidate`."""
        self.flight.forget(key)
        await self._guard.ainvalidate(key)

    def close(self) -> None:
        """Stop background refreshes: wait for the running ones, drop the queued ones.

        The cache still answers afterwards: hits as before, misses loaded in the
        foreground; stale values are served until their stale window ends, but no
        longer refreshed in the background.
        """
        self._shutdown(wait=True)

    async def aclose(self) -> None:
        """Stop background refreshes: cancel this loop's refresh tasks and wait for them
        (thread refreshes are dropped if queued, left to finish if running)."""
        self._shutdown(wait=False)
        loop = asyncio.get_running_loop()
        tasks = [t for t in list(self._tasks) if t.get_loop() is loop]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _shutdown(self, *, wait: bool) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        """Counters: hits, misses, stale_served, early_refreshes, coalesced, origin_calls, errors, store_errors."""
        return {
            "hits": self._hits.value,
            "misses": self._misses.value,
            "stale_served": self._stale_served.value,
            "early_refreshes": self._early.value,
            "coalesced": self._coalesced.value,
            "origin_calls": self._origin_calls.value,
            "errors": self._errors.value,
            "store_errors": self._guard.errors.value,
        }

    def __repr__(self) -> str:
        return f"Cache(ttl={self.ttl!r}, store={self.store!r})"


def _near_get(store: Store) -> Callable[[str], Entry | None] | None:
    """The store's ``near_get`` when it has a near cache (``RedisStore(near=...)``), else None."""
    if getattr(store, "near", None) is None:
        return None
    near_get = getattr(store, "near_get", None)
    return near_get if callable(near_get) else None


def _detached() -> contextvars.Context:
    """The caller's context without its deadline: a refresh outlives the call that began it."""
    ctx = contextvars.copy_context()
    ctx.run(current_deadline.set, None)
    return ctx
