"""A circuit breaker's shared state on a :class:`~resilient.stores.redis.RedisStore` (pybreaker's storage interface).

Why not pybreaker's ``CircuitRedisStorage``: it writes to Redis in its
constructor (an application fails to start while Redis is down), logs every
Redis error through ``logging`` (tracebacks on stderr), waits on whatever
timeouts and retries the client has (seconds per call), and keeps the opening
time in whole seconds. This storage keeps the same interface but:

* touches Redis only when the breaker reads or writes its state, never at construction;
* goes through the store: every command is bounded by its ``timeout``, and
  while the store rests after a failure nothing touches the network;
* keeps a mirror in memory of the last state it read or wrote: while Redis is
  away the breaker runs on the mirror (failing open from a closed circuit,
  staying open from an open one), and nothing is logged but the store's own
  ``redis.error`` event;
* resynchronises when Redis answers again: a circuit this process opened while
  Redis was away is written back, so the fleet sees it open.

The state is one Redis hash, ``P{breaker:<name>}:cb``, fields ``state``,
``counter``, ``success`` and ``opened_at`` (epoch seconds, a float).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from pybreaker import STATE_CLOSED, STATE_OPEN, CircuitBreakerStorage, CircuitMemoryStorage

from .redis import RedisStore

__all__ = ["RedisBreakerStorage"]

_MISS = object()


class RedisBreakerStorage(CircuitBreakerStorage):
    """pybreaker's storage interface on a RedisStore, degrading to an in-memory mirror."""

    exact_opened_at = True  # opened_at keeps sub-second precision (pybreaker's Redis storage does not)

    def __init__(self, store: RedisStore, name: str, *, state: str = STATE_CLOSED) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str (it names the shared breaker), got {name!r}")
        super().__init__(name)
        self._store = store
        self._key = f"breaker:{name}"
        self._mirror = CircuitMemoryStorage(state)
        self._dirty = False  # the mirror holds a change Redis has not seen
        self._lock = threading.Lock()

    # -- the network, through the store ------------------------------------------------
    def _read(self, field: str) -> Any:
        if not self._store.available:
            return _MISS
        try:
            value = self._store.command("HGET", self._key, "cb", field)
        except Exception:  # told by the store (redis.error); the breaker runs on the mirror
            return _MISS
        if self._dirty:
            self._resync()
            return self._read_mirror(field)
        return value

    def _write(self, *pairs: Any) -> None:
        if self._store.available:
            try:
                self._store.command("HSET", self._key, "cb", *pairs)
            except Exception:
                pass
            else:
                return
        if self._mirror.state == STATE_OPEN:
            self._dirty = True

    def _incr(self, field: str) -> None:
        if self._store.available:
            try:
                self._store.command("HINCRBY", self._key, "cb", field, 1)
            except Exception:
                pass

    def _resync(self) -> None:
        """Redis is back and this process opened the circuit meanwhile: tell the fleet."""
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
        opened = self._mirror.opened_at
        stamp = repr(opened.timestamp()) if opened is not None else ""
        self._write("state", STATE_OPEN, "opened_at", stamp, "counter", 0, "success", 0)

    def _read_mirror(self, field: str) -> Any:
        m = self._mirror
        if field == "state":
            return m.state.encode()
        if field == "opened_at":
            return None if m.opened_at is None else repr(m.opened_at.timestamp()).encode()
        return str(m.counter if field == "counter" else m.success_counter).encode()

    # -- pybreaker's interface -------------------------------------------------------------
    @property
    def state(self) -> str:
        value = self._read("state")
        if value is _MISS:
            return self._mirror.state
        state = STATE_CLOSED if value is None else value.decode()
        self._mirror.state = state
        return state

    @state.setter
    def state(self, state: str) -> None:
        self._mirror.state = state
        self._write("state", state)

    def increment_counter(self) -> None:
        self._mirror.increment_counter()
        self._incr("counter")

    def reset_counter(self) -> None:
        self._mirror.reset_counter()
        self._write("counter", 0)

    def increment_success_counter(self) -> None:
        self._mirror.increment_success_counter()
        self._incr("success")

    def reset_success_counter(self) -> None:
        self._mirror.reset_success_counter()
        self._write("success", 0)

    @property
    def counter(self) -> int:
        value = self._read("counter")
        return self._mirror.counter if value is _MISS else int(value or 0)

    @property
    def success_counter(self) -> int:
        value = self._read("success")
        return self._mirror.success_counter if value is _MISS else int(value or 0)

    @property
    def opened_at(self) -> datetime | None:
        value = self._read("opened_at")
        if value is _MISS:
            return self._mirror.opened_at
        if not value:
            return None
        opened = datetime.fromtimestamp(float(value), UTC)
        self._mirror.opened_at = opened
        return opened

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._mirror.opened_at = when
        self._write("opened_at", repr(when.timestamp()))

    def __repr__(self) -> str:
        return f"RedisBreakerStorage({self.name!r}, store={self._store!r})"
