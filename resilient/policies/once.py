"""OncePer: a job runs at most once per wall-clock period, in this process or across a fleet."""

from __future__ import annotations

from typing import Any, ClassVar

from .._machines._validate import number
from .._machines.schedule import period_of
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context
from ..core.errors import StoreUnavailable
from ..core.events import emit
from ..core.keys import compile_key
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from ..stores.base import Entry, Store
from ..stores.memory import MemoryStore

__all__ = ["OncePer"]

_STORE_METHODS = ("lookup", "set", "release", "alookup", "aset", "arelease")


class OncePer(Policy):
    """Run the wrapped call at most once per ``period`` seconds per key, for everyone sharing ``store``.

    Periods are aligned to the wall clock (``clock.time()``): ``period=3600``
    runs once per clock hour, however many processes fire and whenever they
    started. The first caller of a period takes a lease on it and runs; every
    other caller of that period gets ``None`` at once (event ``once.skipped``,
    ``reason`` ``"done"`` or ``"running"``). A run that raises releases the
    period (event ``once.released``), so the next caller may try again; one that
    returns marks the period done until it ends. A runner that dies mid-run
    leaves its lease behind: it expires after ``lease_ttl`` seconds, so the
    period is blocked at most that long, and the next period never.

    In process by default (a private :class:`~resilient.MemoryStore`); pass a
    :class:`~resilient.RedisStore` for the fleet (a ``SET NX PX`` lease and a
    compare-and-delete release, the cache's own lease operations). A store that
    fails degrades to this process's own record (event ``once.store_error``):
    the job still runs at most once per period per process, never fails for it.

    Args:
        period: seconds per period (> 0).
        store: where the periods are claimed (default: in this process).
        key: names the job: a template formatted with the call's arguments
            (``"report:{day}"``), a callable returning a ``str``, or None for
            the wrapped function's qualified name.
        lease_ttl: seconds a run's lease lasts (> 0; default: the period).
        clock: wall-clock time for the periods.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "once"

    def __init__(
        self,
        period: float,
        *,
        store: Store | None = None,
        key: object = None,
        lease_ttl: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.period = number("period", period, strict=True)
        self.lease_ttl = self.period if lease_ttl is None else number("lease_ttl", lease_ttl, strict=True)
        if store is not None and not all(callable(getattr(store, m, None)) for m in _STORE_METHODS):
            raise TypeError(f"store must be a resilient store (MemoryStore, RedisStore), got {store!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self._local = MemoryStore()
        self.store: Store = store if store is not None else self._local
        self.clock = clock or SYSTEM_CLOCK
        self._key = None if key is None else compile_key(key)
        self._runs = Counter()
        self._skipped = Counter()
        self._failed = Counter()
        self._store_errors = Counter()

    def _name(self, ctx: Context) -> tuple[str, str, float]:
        """(job key, store key of the current period, the period's end)."""
        job = ctx.operation if self._key is None else self._key(ctx)
        index, ends_at = period_of(self.clock.time(), self.period)
        return job, f"once:{job}:{index}", ends_at

    def _store_failed(self, ctx: Context, job: str, exc: StoreUnavailable) -> MemoryStore:
        self._store_errors.incr()
        emit("once.store_error", policy="once", operation=ctx.operation, key=job, error=exc)
        return self._local

    def _skip(self, ctx: Context, job: str, refreshing: bool) -> None:
        self._skipped.incr()
        reason = "running" if refreshing else "done"
        emit("once.skipped", policy="once", operation=ctx.operation, key=job, reason=reason)

    def _released(self, ctx: Context, job: str, exc: BaseException) -> None:
        self._failed.incr()
        emit("once.released", policy="once", operation=ctx.operation, key=job, error=exc)

    def bind(self, inner: SyncStep) -> SyncStep:
        def once_step(ctx: Context) -> Any:
            job, skey, ends_at = self._name(ctx)
            store: Store = self.store
            try:
                look = store.lookup(skey, now=self.clock.time(), lease_ttl=self.lease_ttl)
            except StoreUnavailable as exc:
                store = self._store_failed(ctx, job, exc)
                look = store.lookup(skey, now=self.clock.time(), lease_ttl=self.lease_ttl)
            if look.lease is None:
                self._skip(ctx, job, look.refreshing)
                return None
            self._runs.incr()
            try:
                result = inner(ctx)
            except BaseException as exc:
                self._released(ctx, job, exc)
                try:
                    store.release(skey, look.lease)
                except StoreUnavailable:
                    pass  # the lease expires by itself after lease_ttl
                raise
            try:
                store.set(skey, Entry(True, ends_at, ends_at), now=self.clock.time(), lease=look.lease)
            except StoreUnavailable:
                pass  # the lease still guards the period for lease_ttl
            return result

        return once_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        async def once_step(ctx: Context) -> Any:
            job, skey, ends_at = self._name(ctx)
            store: Store = self.store
            try:
                look = await store.alookup(skey, now=self.clock.time(), lease_ttl=self.lease_ttl)
            except StoreUnavailable as exc:
                store = self._store_failed(ctx, job, exc)
                look = await store.alookup(skey, now=self.clock.time(), lease_ttl=self.lease_ttl)
            if look.lease is None:
                self._skip(ctx, job, look.refreshing)
                return None
            self._runs.incr()
            try:
                result = await inner(ctx)
            except BaseException as exc:
                self._released(ctx, job, exc)
                try:
                    await store.arelease(skey, look.lease)
                except StoreUnavailable:
                    pass  # the lease expires by itself after lease_ttl
                raise
            try:
                await store.aset(skey, Entry(True, ends_at, ends_at), now=self.clock.time(), lease=look.lease)
            except StoreUnavailable:
                pass  # the lease still guards the period for lease_ttl
            return result

        return once_step

    def stats(self) -> dict[str, Any]:
        """``runs`` started, ``skipped`` calls, ``failed`` runs (each released its period), ``store_errors``."""
        return {
            "runs": self._runs.value,
            "skipped": self._skipped.value,
            "failed": self._failed.value,
            "store_errors": self._store_errors.value,
        }

    def __repr__(self) -> str:
        return f"OncePer({self.period!r}, lease_ttl={self.lease_ttl!r}, store={self.store!r})"
