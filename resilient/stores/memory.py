"""The in-process store: entries in a ``cachetools.LRUCache``, leases in a dict."""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Any, ClassVar

from cachetools import LRUCache

from .._machines._validate import whole
from .base import Entry, Lookup, Serializer

__all__ = ["MemoryStore"]


class MemoryStore:
    """Cache entries and refresh leases in this process (the default store).

    Entries live in a ``cachetools.LRUCache`` of ``maxsize`` keys and are
    dropped once past their ``stale_until`` (lazily, on writes).
    Reads take no lock; writes, lookups and leases take one. A lease is a token
    valid ``lease_ttl`` seconds; ``invalidate`` deletes the entry and voids any
    lease, so a refresh started before it cannot write afterwards.

    Args:
        maxsize: most keys kept (least recently used go first), >= 1.
        serializer: encode values on write and decode on read (each read then
            returns a fresh copy); by default the objects themselves are kept.
    """

    #: No I/O: the async twins just call the sync methods (the cache's async
    #: hit path calls ``get`` directly when this is true).
    in_process: ClassVar[bool] = True

    def __init__(self, maxsize: int = 10_000, *, serializer: Serializer | None = None) -> None:
        self.maxsize = whole("maxsize", maxsize, minimum=1)
        if serializer is not None and not isinstance(serializer, Serializer):
            raise TypeError(f"serializer must have dumps() and loads(), got {serializer!r}")
        self.serializer = serializer
        self._data: LRUCache[str, Entry] = LRUCache(self.maxsize)
        self._leases: dict[str, tuple[str, float]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._prefix = f"{id(self):x}:"

    # -- sync ------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The entry (fresh or stale) or None; no lock (a racing delete reads as a miss)."""
        try:
            entry = self._data[key]
        except KeyError:
            return None
        serializer = self.serializer
        return entry if serializer is None else _decoded(entry, serializer)

    def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        """The entry if fresh at ``now``; else a lease if none is held; else ``refreshing``."""
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and entry.stale_until <= now:
                entry = None  # dead as of ``now``, but not deleted: ``now`` may be ahead (an early refresh)
            if entry is not None and now < entry.expires_at:
                return Lookup(self._out(entry), None, False)
            held = self._leases.get(key)
            if held is not None and held[1] > now:
                return Lookup(self._out(entry), None, True)
            token = f"{self._prefix}{next(self._tokens)}"
            self._leases[key] = (token, now + lease_ttl)
            return Lookup(self._out(entry), token, False)

    def set(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        """Write ``entry``; with ``lease``, only while it is still valid (then release it)."""
        if self.serializer is not None:
            entry = Entry(self.serializer.dumps(entry.value), entry.expires_at, entry.stale_until, entry.delta)
        with self._lock:
            if lease is not None:
                held = self._leases.get(key)
                if held is None or held[0] != lease:
                    return False
                del self._leases[key]
                if held[1] <= now:
                    return False
            if entry.stale_until <= now:
                self._data.pop(key, None)
                return True
            self._data[key] = entry
            heapq.heappush(self._expiries, (entry.stale_until, key))
            self._purge(now)
            return True

    def release(self, key: str, lease: str) -> None:
        """Give ``lease`` up without writing."""
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[0] == lease:
                del self._leases[key]

    def invalidate(self, key: str) -> None:
        """Delete the entry and void any outstanding lease on it."""
        with self._lock:
            self._data.pop(key, None)
            self._leases.pop(key, None)

    # -- async twins (no I/O: they call the sync forms) ------------------------
    async def aget(self, key: str) -> Entry | None:
        return self.get(key)

    async def alookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        return self.lookup(key, now=now, lease_ttl=lease_ttl)

    async def aset(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        return self.set(key, entry, now=now, lease=lease)

    async def arelease(self, key: str, lease: str) -> None:
        self.release(key, lease)

    async def ainvalidate(self, key: str) -> None:
        self.invalidate(key)

    # -- internals -------------------------------------------------------------
    def _out(self, entry: Entry | None) -> Entry | None:
        if entry is None or self.serializer is None:
            return entry
        return _decoded(entry, self.serializer)

    def _purge(self, now: float) -> None:
        """Drop entries past their stale deadline (lock held)."""
        heap = self._expiries
        data = self._data
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = data.get(key)
            if entry is not None and entry.stale_until <= now:
                del data[key]
        if len(heap) > 2 * self.maxsize + 64:  # rewritten keys leave old marks behind
            self._expiries = [(e.stale_until, k) for k, e in data.items()]
            heapq.heapify(self._expiries)
        leases = self._leases
        if len(leases) > self.maxsize:
            for k in [k for k, (_, until) in leases.items() if until <= now]:
                del leases[k]

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryStore(maxsize={self.maxsize!r}, size={len(self._data)})"


def _decoded(entry: Entry, serializer: Serializer) -> Entry:
    value: Any = serializer.loads(entry.value)
    return Entry(value, entry.expires_at, entry.stale_until, entry.delta)
