"""The store interface the cache, the token provider and the rate limiter build on.

One record per entry (value, logical expiry, stale deadline, and the time the
value took to compute, XFetch's delta), readable in one round trip. Times are
wall-clock epoch seconds (``clock.time()``) so that a fleet agrees on them.

Every method has a sync form and an async twin (``get``/``aget`` ...). A store
that does no I/O (``MemoryStore``) implements the async twins by calling the
sync ones; a Redis store needs the matching client (``redis.Redis`` for the sync
forms, ``redis.asyncio.Redis`` for the async ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["BucketStore", "Entry", "Lookup", "Serializer", "Store"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached value.

    Attributes:
        value: the cached value (a store that serializes returns it decoded).
        expires_at: wall time after which the value is stale.
        stale_until: wall time after which the value must not be served at all.
        delta: seconds the value took to compute (XFetch's delta).
    """

    value: Any
    expires_at: float
    stale_until: float
    delta: float = 0.0


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer of the miss path's single atomic call.

    Exactly one of these holds: ``lease`` is a token (the caller must refresh,
    then ``set(..., lease=lease)`` or ``release``); or ``refreshing`` is true
    (another holder has the lease; ``entry`` is the stale value if there is one).
    ``entry`` may also be a fresh value written meanwhile (then ``lease`` is None
    and ``refreshing`` false).
    """

    entry: Entry | None
    lease: str | None
    refreshing: bool


@runtime_checkable
class Serializer(Protocol):
    """Turns cached values into bytes and back (JSON by default; never pickle by default)."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class Store(Protocol):
    """Entries with leases: what ``rs.Cache`` and ``rs.TokenProvider`` need of a store."""

    def get(self, key: str) -> Entry | None:
        """The entry (fresh or stale) in one read, or None. A hit costs exactly this."""
        ...

    def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        """Atomically: the entry if fresh at ``now``; else a new lease (valid
        ``lease_ttl`` s) if nobody holds one, with any stale entry; else
        ``refreshing=True`` with any stale entry."""
        ...

    def set(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        """Write ``entry`` (kept until ``entry.stale_until``). With ``lease``, only
        while that lease is still the key's valid lease (and then release it);
        returns whether it wrote."""
        ...

    def release(self, key: str, lease: str) -> None:
        """Give up ``lease`` without writing (a failed refresh)."""
        ...

    def invalidate(self, key: str) -> None:
        """Delete the entry and void every outstanding lease on it."""
        ...

    async def aget(self, key: str) -> Entry | None: ...

    async def alookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup: ...

    async def aset(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool: ...

    async def arelease(self, key: str, lease: str) -> None: ...

    async def ainvalidate(self, key: str) -> None: ...


class BucketStore(Protocol):
    """A shared token bucket (``rs.RateLimiter(store=...)``), atomic across processes."""

    def take(self, key: str, *, rate: float, burst: float, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` if the bucket (``rate`` tokens/s, capacity ``burst``) has
        them at wall time ``now``: return 0.0; else take nothing and return the
        seconds until they would be there."""
        ...

    async def atake(self, key: str, *, rate: float, burst: float, now: float, tokens: float = 1.0) -> float: ...
