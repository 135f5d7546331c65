"""The cache's view of its store: any store error degrades to an in-process store.

Every exception a store raises (Redis down, a timeout, a refused write) is
caught here, told as ``cache.store_error`` and counted; the call carries on
against an in-process :class:`~resilient.MemoryStore` (in-process caching and
coalescing, as with no shared store at all). The shared store is probed again
after a pause that grows per failure up to 5 s (``StoreHealth``), so caching
on it resumes by itself. A store implementation only has to raise.
"""

from __future__ import annotations

import threading
from typing import Any

from .._machines.cache import StoreHealth
from ..core.clock import Clock
from ..core.events import emit
from ..core.stats import Counter
from ..stores.base import Entry, Lookup, Serializer, Store
from ..stores.memory import MemoryStore

__all__ = ["StoreGuard", "checked_store"]

_FALLBACK_SIZE = 1_000
_STORE_METHODS = ("get", "lookup", "set", "release", "invalidate", "aget", "alookup", "aset", "arelease", "ainvalidate")


class StoreGuard:
    """The primary store, the fallback used while it fails, and the switch between them.

    ``active`` is the store the hit path reads; ``store`` arguments name the
    store a lease came from, so a lease is only ever used where it was granted.
    """

    __slots__ = ("_lock", "active", "clock", "errors", "fallback", "health", "primary")

    def __init__(self, primary: Store, clock: Clock) -> None:
        self.primary = primary
        self.active: Store = primary
        self.fallback: MemoryStore | None = None
        self.health = StoreHealth()
        self.clock = clock
        self.errors = Counter()
        self._lock = threading.Lock()

    # -- switching ---------------------------------------------------------------
    def current(self) -> Store:
        """The store to use now: the fallback while the primary rests, else the primary."""
        active = self.active
        if active is not self.primary and self.health.usable(self.clock.monotonic()):
            self.active = active = self.primary  # probe it again
        return active

    def failed(self, exc: BaseException, op: str, key: str, operation: str) -> MemoryStore:
        """Record a store failure; return the fallback to carry on with.

        A ``TypeError`` is a misconfiguration (an async call on a store given
        only a sync client), not an outage: it is raised, not hidden.
        """
        if isinstance(exc, TypeError):
            raise exc
        self.errors.incr()
        with self._lock:
            retry_at = self.health.failed(self.clock.monotonic())
            fallback = self.fallback
            if fallback is None:
                fallback = self.fallback = MemoryStore(_FALLBACK_SIZE)
            self.active = fallback
        emit(
            "cache.store_error",
            operation=operation,
            key=key,
            op=op,
            error=exc,
            retry_in=round(retry_at - self.clock.monotonic(), 3),
        )
        return fallback

    def _ok(self, store: Store) -> None:
        if store is self.primary and self.health.failures:
            with self._lock:
                self.health.succeeded()

    # -- sync ----------------------------------------------------------------------
    def get(self, key: str, operation: str) -> Entry | None:
        store = self.current()
        try:
            return store.get(key)
        except Exception as exc:
            return self.failed(exc, "get", key, operation).get(key)

    def lookup(self, key: str, now: float, lease_ttl: float, operation: str) -> tuple[Lookup, Store]:
        store = self.current()
        try:
            found = store.lookup(key, now=now, lease_ttl=lease_ttl)
        except Exception as exc:
            fallback = self.failed(exc, "lookup", key, operation)
            return fallback.lookup(key, now=now, lease_ttl=lease_ttl), fallback
        self._ok(store)
        return found, store

    def set(self, store: Store, key: str, entry: Entry, now: float, lease: str | None, operation: str) -> bool:
        try:
            wrote = store.set(key, entry, now=now, lease=lease)
        except Exception as exc:
            return self.failed(exc, "set", key, operation).set(key, entry, now=now)
        self._ok(store)
        return wrote

    def release(self, store: Store, key: str, lease: str, operation: str) -> None:
        try:
            store.release(key, lease)
        except Exception as exc:
            self.failed(exc, "release", key, operation)

    def invalidate(self, key: str) -> None:
        fallback = self.fallback
        if fallback is not None:
            fallback.invalidate(key)
        try:
            self.primary.invalidate(key)
        except Exception as exc:
            self.failed(exc, "invalidate", key, "cache.invalidate")

    # -- async ---------------------------------------------------------------------
    async def aget(self, key: str, operation: str) -> Entry | None:
        store = self.current()
        try:
            return await store.aget(key)
        except Exception as exc:
            return self.failed(exc, "get", key, operation).get(key)

    async def alookup(self, key: str, now: float, lease_ttl: float, operation: str) -> tuple[Lookup, Store]:
        store = self.current()
        try:
            found = await store.alookup(key, now=now, lease_ttl=lease_ttl)
        except Exception as exc:
            fallback = self.failed(exc, "lookup", key, operation)
            return fallback.lookup(key, now=now, lease_ttl=lease_ttl), fallback
        self._ok(store)
        return found, store

    async def aset(self, store: Store, key: str, entry: Entry, now: float, lease: str | None, operation: str) -> bool:
        try:
            wrote = await store.aset(key, entry, now=now, lease=lease)
        except Exception as exc:
            return self.failed(exc, "set", key, operation).set(key, entry, now=now)
        self._ok(store)
        return wrote

    async def arelease(self, store: Store, key: str, lease: str, operation: str) -> None:
        try:
            await store.arelease(key, lease)
        except Exception as exc:
            self.failed(exc, "release", key, operation)

    async def ainvalidate(self, key: str) -> None:
        fallback = self.fallback
        if fallback is not None:
            fallback.invalidate(key)
        try:
            await self.primary.ainvalidate(key)
        except Exception as exc:
            self.failed(exc, "invalidate", key, "cache.invalidate")

    def __repr__(self) -> str:
        state: Any = "primary" if self.active is self.primary else "fallback"
        return f"StoreGuard({self.primary!r}, using={state})"


def checked_store(store: Store | None, serializer: Serializer | None) -> Store:
    """The cache's store: ``store`` checked against the interface, or a new ``MemoryStore``."""
    if serializer is not None and not isinstance(serializer, Serializer):
        raise TypeError(f"serializer must have dumps() and loads(), got {serializer!r}")
    if store is None:
        return MemoryStore(serializer=serializer)
    missing = [m for m in _STORE_METHODS if not callable(getattr(store, m, None))]
    if missing:
        raise TypeError(f"store must implement the Store interface (missing {', '.join(missing)}), got {store!r}")
    if serializer is not None:
        if not hasattr(store, "serializer"):
            raise TypeError(f"serializer: the store {store!r} takes no serializer; configure the store itself")
        store.serializer = serializer
    return store
