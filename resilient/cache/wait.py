"""The cache's waiting and origin calls: each sync driver beside its async twin.

``load`` is the miss path after in-process coalescing: ask the store for the
lease (one atomic ``lookup``), then call the origin and write, or serve the
stale value, or wait while another holder refreshes: woken by the store's
notification of the holder's write where the store has one (``watch`` /
``awatch``: a RedisStore with a near cache), with bounded, jittered polling
(``PollPlan``) as the fallback; and fetch ourselves once ``lock_wait`` is over (or raise
``CacheLockTimeout`` if an enclosing ``Timeout``'s deadline ends the wait first). ``refresh`` is a
background refresh (stale or XFetch-early): it calls the origin only if the
store grants it the lease. ``fetch`` calls the origin under a lease.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._machines.cache import FETCH, STALE, USE, WAIT, PollPlan, after_lookup
from ..core.context import Context
from ..core.events import emit
from ..core.waiting import asleep, sleep, waiting_disabled
from ..stores.base import Entry, Lookup, Store

if TYPE_CHECKING:
    from ..core.clock import Clock
    from ..core.errors import CacheLockTimeout
    from ..core.policy import AsyncStep, SyncStep
    from ..core.stats import Counter
    from .guard import StoreGuard

__all__ = ["Room", "afetch", "aload", "arefresh", "fetch", "load", "refresh"]


@dataclass(frozen=True, slots=True)
class Room:
    """What the drivers need of a room, handed in by it: settings, its store guard, counters and callbacks."""

    clock: Clock
    guard: StoreGuard
    lock_ttl: float
    lock_wait: float
    serve_stale: bool
    stale_if_error: bool
    random: Callable[[], float]
    new_entry: Callable[[Any, float], tuple[Entry, float]]
    served_stale: Callable[..., Any]
    waiting: Callable[..., PollPlan]  # (ctx, key, *, notified)
    lock_timeout: Callable[[Context, str], CacheLockTimeout]
    origin_calls: Counter
    errors: Counter
    #: ``observe(seconds, error)`` callables told of every origin call (appended to by the room).
    origin_observers: list[Callable[[float, BaseException | None], None]]
    #: The store's ``watch(key)`` / ``awatch(key)`` (a waiter woken by the key's next write), or None: poll.
    watch: Callable[[str], Any] | None = None
    awatch: Callable[[str], Any] | None = None


def _next_step(room: Room, found: Lookup, now: float) -> str:
    entry = found.entry
    return after_lookup(
        fresh=entry is not None and found.lease is None and not found.refreshing and now < entry.expires_at,
        lease=found.lease is not None,
        refreshing=found.refreshing,
        stale_usable=entry is not None and now < entry.stale_until,
        serve_stale=room.serve_stale,
    )


def _usable_stale(room: Room, entry: Entry | None) -> Entry | None:
    if room.stale_if_error and entry is not None and room.clock.time() < entry.stale_until:
        return entry
    return None


# -- the miss path ---------------------------------------------------------------------


def load(room: Room, ctx: Context, key: str, inner: SyncStep) -> Any:
    """The value for ``key``: from the store, from the origin under the lease, or stale."""
    clock, guard, operation = room.clock, room.guard, ctx.operation
    emit("cache.miss", operation=operation, key=key)  # once per load; joiners emit coalesce.joined
    plan: PollPlan | None = None
    watch = room.watch
    while True:
        waiter = None if watch is None else watch(key)  # before the lookup: a write after it wakes us
        now = clock.time()
        try:
            found, store = guard.lookup(key, now, room.lock_ttl, operation)
        except BaseException:
            if waiter is not None:
                waiter.close()
            raise
        step = _next_step(room, found, now)
        if waiter is not None and (step != WAIT or store is not guard.primary):
            waiter.close()
            waiter = None
        if step == USE:
            return found.entry.value  # type: ignore[union-attr]
        if step == FETCH:
            return fetch(room, ctx, key, inner, store, found.lease, found.entry)
        if step == STALE:
            return room.served_stale(ctx, key, found.entry)
        try:
            if plan is None:
                plan = room.waiting(ctx, key, notified=waiter is not None)
            delay = plan.next(clock.monotonic(), room.random())
            if delay is None:
                if plan.cut_short:
                    raise room.lock_timeout(ctx, key)
                emit("cache.lock_timeout", operation=operation, key=key, waited=room.lock_wait, deadline=False)
                if waiter is not None:
                    waiter.close()
                    waiter = None
                return fetch(room, ctx, key, inner, store, None, found.entry)
            if waiter is None or waiting_disabled():
                sleep(clock, delay)
            else:
                waiter.wait(delay)
        finally:
            if waiter is not None:
                waiter.close()


async def aload(room: Room, ctx: Context, key: str, inner: AsyncStep) -> Any:
    """The async twin of :func:`load`."""
    clock, guard, operation = room.clock, room.guard, ctx.operation
    emit("cache.miss", operation=operation, key=key)  # once per load; joiners emit coalesce.joined
    plan: PollPlan | None = None
    watch = room.awatch
    while True:
        waiter = None if watch is None else watch(key)  # before the lookup: a write after it wakes us
        now = clock.time()
        try:
            found, store = await guard.alookup(key, now, room.lock_ttl, operation)
        except BaseException:
            if waiter is not None:
                waiter.close()
            raise
        step = _next_step(room, found, now)
        if waiter is not None and (step != WAIT or store is not guard.primary):
            waiter.close()
            waiter = None
        if step == USE:
            return found.entry.value  # type: ignore[union-attr]
        if step == FETCH:
            return await afetch(room, ctx, key, inner, store, found.lease, found.entry)
        if step == STALE:
            return room.served_stale(ctx, key, found.entry)
        try:
            if plan is None:
                plan = room.waiting(ctx, key, notified=waiter is not None)
            delay = plan.next(clock.monotonic(), room.random())
            if delay is None:
                if plan.cut_short:
                    raise room.lock_timeout(ctx, key)
                emit("cache.lock_timeout", operation=operation, key=key, waited=room.lock_wait, deadline=False)
                if waiter is not None:
                    waiter.close()
                    waiter = None
                return await afetch(room, ctx, key, inner, store, None, found.entry)
            if waiter is None or waiting_disabled():
                await asleep(clock, delay)
            else:
                await waiter.wait(delay)
        finally:
            if waiter is not None:
                waiter.close()


# -- one origin call -----------------------------------------------------------------


def _observed(room: Room, started: float, error: BaseException | None) -> None:
    """Tell the room's origin observers how long the call took (nothing when there are none)."""
    observers = room.origin_observers
    if observers:
        seconds = room.clock.monotonic() - started
        for observe in observers:
            observe(seconds, error)


def fetch(
    room: Room, ctx: Context, key: str, inner: SyncStep, store: Store, lease: str | None, stale: Entry | None
) -> Any:
    """Call the origin and write the value under ``lease``; on failure serve ``stale`` if allowed.

    Without a lease (``lock_wait`` ran out while another holder refreshes) the
    value is returned but not written: only a lease holder may write, so a
    fetch that started before an invalidation can never store its older value.
    """
    clock, guard = room.clock, room.guard
    room.origin_calls.incr()
    started = clock.monotonic()
    try:
        value = inner(ctx)
    except Exception as exc:
        room.errors.incr()
        _observed(room, started, exc)
        if lease is not None:
            guard.release(store, key, lease, ctx.operation)
        fallback = _usable_stale(room, stale)
        if fallback is None:
            raise
        return room.served_stale(ctx, key, fallback, error=exc)
    except BaseException:
        if lease is not None:
            guard.release(store, key, lease, ctx.operation)
        raise
    _observed(room, started, None)
    if lease is None:  # fetched after lock_wait without the lease: only a lease holder may write
        return value
    entry, now = room.new_entry(value, clock.monotonic() - started)
    if not guard.set(store, key, entry, now, lease, ctx.operation):
        emit("cache.write_refused", operation=ctx.operation, key=key)
    return value


async def afetch(
    room: Room, ctx: Context, key: str, inner: AsyncStep, store: Store, lease: str | None, stale: Entry | None
) -> Any:
    """The async twin of :func:`fetch`."""
    clock, guard = room.clock, room.guard
    room.origin_calls.incr()
    started = clock.monotonic()
    try:
        value = await inner(ctx)
    except Exception as exc:
        room.errors.incr()
        _observed(room, started, exc)
        if lease is not None:
            await guard.arelease(store, key, lease, ctx.operation)
        fallback = _usable_stale(room, stale)
        if fallback is None:
            raise
        return room.served_stale(ctx, key, fallback, error=exc)
    except BaseException:
        if lease is not None:
            await guard.arelease(store, key, lease, ctx.operation)
        raise
    _observed(room, started, None)
    if lease is None:  # fetched after lock_wait without the lease: only a lease holder may write
        return value
    entry, now = room.new_entry(value, clock.monotonic() - started)
    if not await guard.aset(store, key, entry, now, lease, ctx.operation):
        emit("cache.write_refused", operation=ctx.operation, key=key)
    return value


# -- background refreshes ----------------------------------------------------------------


def refresh(room: Room, ctx: Context, key: str, inner: SyncStep, due_at: float) -> None:
    """Refresh ``key`` if the store grants the lease (``due_at``: the expiry being replaced).

    The lookup is made as of ``max(now, due_at)`` so that an XFetch refresh of a
    still-fresh entry is granted the lease; a refresh that finds a newer entry
    (written by another process, or by an earlier refresh) stops there.
    """
    now = max(room.clock.time(), due_at)
    found, store = room.guard.lookup(key, now, room.lock_ttl, ctx.operation)
    if found.lease is None:
        return
    try:
        fetch(room, ctx, key, inner, store, found.lease, None)
    except Exception as exc:
        emit("cache.refresh_failed", operation=ctx.operation, key=key, error=exc)
    else:
        emit("cache.refreshed", operation=ctx.operation, key=key)


async def arefresh(room: Room, ctx: Context, key: str, inner: AsyncStep, due_at: float) -> None:
    """The async twin of :func:`refresh`."""
    now = max(room.clock.time(), due_at)
    found, store = await room.guard.alookup(key, now, room.lock_ttl, ctx.operation)
    if found.lease is None:
        return
    try:
        await afetch(room, ctx, key, inner, store, found.lease, None)
    except Exception as exc:
        emit("cache.refresh_failed", operation=ctx.operation, key=key, error=exc)
    else:
        emit("cache.refreshed", operation=ctx.operation, key=key)
