"""NearCache: a process-local copy of the Redis records this process read, dropped fleet-wide on any write.

A :class:`~resilient.RedisStore` given ``near=NearCache()`` serves a read from
the copy with no Redis command. Every write and invalidation of a key (the
Lua scripts of :mod:`resilient.stores._redis_lua`) publishes the key on the
store's channel (``<prefix>near``); one subscriber thread per store receives it
and drops the copy, and wakes the callers waiting for that key's refresh
(:meth:`NearCache.watch`). So the subscription that keeps the copies honest is
also the notification that ends a wait.

Why Redis pub/sub and not RESP3 client tracking (redis-py's client-side cache):
redis-py 8's ``cache_config`` exists only for sync clients (no asyncio), caches
raw replies per connection (so each hit still checks the socket for pushed
invalidations and decodes again), processes invalidations only when that
connection is next used, cannot be told "the channel is down", and offers no
hook to wake waiters. A channel published from the scripts works the same for
sync and asyncio callers, for any client library, and on Redis Cluster (a
``PUBLISH`` reaches subscribers on every node).

Rules that keep a copy from ever being wrong for longer than the propagation:

* A copy is only installed if no invalidation of its key arrived since its read
  began (``begin`` hands out a ticket that an invalidation voids).
* While the subscription is down or reconnecting, every copy is dropped and
  none is served or kept; it is live again once the channel is subscribed.
* A copy is dropped at its record's ``stale_until`` (the record's own expiry).
* A local write drops the local copy before and after it is sent.

Eviction past ``maxsize`` drops the oldest-installed copy.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.events import emit
from .base import Entry

__all__ = ["DROP", "NO_SENDER", "WAKE", "AsyncWaiter", "NearCache", "Subscriber", "Waiter", "message", "pubsub_factory"]

_RECONNECT_FIRST, _RECONNECT_CAP = 0.05, 1.0
_READ_TIMEOUT = 0.2
_PING_EVERY, _SILENCE = 1.0, 5.0  # a PING after 1 s without traffic; 5 s without any reply: the link is dead
DROP, WAKE = b"i", b"r"  # message kinds: a write/invalidation (drop and wake); a released lease (wake only)
SENDER_BYTES = 12  # a message is kind (1 byte) + the sending near cache's id (12) + the key
NO_SENDER = b"-" * SENDER_BYTES


def message(kind: bytes, sender: bytes, key: str) -> bytes:
    """The channel message telling that ``key`` changed (``DROP``) or its lease was freed (``WAKE``)."""
    return kind + sender + key.encode("utf-8", "surrogateescape")


class Waiter:
    """One sync caller waiting for a key's refresh: woken by the key's next message (or the channel going down)."""

    __slots__ = ("_event", "_key", "_near")

    def __init__(self, near: NearCache, key: str) -> None:
        self._near, self._key, self._event = near, key, threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, seconds: float) -> bool:
        """Block up to ``seconds``; True if woken by a notification."""
        return self._event.wait(seconds)

    def close(self) -> None:
        self._near._forget(self._key, self)


class AsyncWaiter:
    """The asyncio twin of :class:`Waiter` (woken from the subscriber thread, thread-safely)."""

    __slots__ = ("_future", "_key", "_loop", "_near")

    def __init__(self, near: NearCache, key: str) -> None:
        self._near, self._key = near, key
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = self._loop.create_future()

    def wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._set)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _set(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self, seconds: float) -> bool:
        """Await up to ``seconds``; True if woken by a notification."""
        done, _ = await asyncio.wait((self._future,), timeout=seconds)
        return bool(done)

    def close(self) -> None:
        self._near._forget(self._key, self)
        if not self._future.done():
            self._future.cancel()


class NearCache:
    """A process-local copy of the records a :class:`~resilient.RedisStore` read.

    Pass it as ``RedisStore(client, near=NearCache())``. A read that finds a
    copy costs no Redis command; any write or invalidation of the key, by any
    process of the fleet, drops every copy of it (Redis pub/sub, published by
    the store's own Lua scripts). While the invalidation channel is down or
    reconnecting the copies are dropped and the store reads Redis. Callers
    waiting for another process's refresh are woken by the same notification.
    Thread-safe; one ``NearCache`` belongs to one store.

    Args:
        maxsize: copies kept (>= 1); past it the oldest-installed is dropped.

    .. versionadded:: 0.2
    """

    def __init__(self, maxsize: int = 10_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._data: dict[str, Entry] = {}
        self._pending: dict[str, object] = {}
        self._watchers: dict[str, set[Waiter | AsyncWaiter]] = {}
        self._lock = threading.Lock()
        self._live = False
        self._up = threading.Event()
        self._time: Callable[[], float] = time.time
        self._owner: object = None
        # The hit path's read: the copy if live, with no expiry check (the caller checks expires_at).
        self.peek: Callable[[str], Entry | None] = self._peek
        #: Tells this cache's own messages apart: its own writes were already dropped locally.
        self.sender = secrets.token_hex(SENDER_BYTES // 2).encode()

    def __repr__(self) -> str:
        return f"NearCache(maxsize={self.maxsize!r}, size={len(self._data)}, live={self._live})"

    def __len__(self) -> int:
        return len(self._data)

    @property
    def live(self) -> bool:
        """True while the invalidation channel is subscribed (copies are served and kept)."""
        return self._live

    def attach(self, owner: object, wall_time: Callable[[], float]) -> None:
        """Bind to the store ``owner`` (once); ``wall_time`` is its wall clock for expiry checks."""
        if self._owner is not None and self._owner is not owner:
            raise ValueError(f"near: this NearCache already belongs to {self._owner!r}; give each store its own")
        self._owner, self._time = owner, wall_time

    def wait_live(self, timeout: float) -> bool:
        """Block until the channel is subscribed (True), or ``timeout`` s passed (False)."""
        return self._up.wait(timeout)

    # -- the read path ---------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        """The copy of ``key`` if live and before its ``stale_until``; else None."""
        if not self._live:
            return None
        entry = self._data.get(key)
        if entry is None:
            return None
        if self._time() >= entry.stale_until:
            with self._lock:
                if self._data.get(key) is entry:
                    del self._data[key]
            return None
        return entry

    def _peek(self, key: str) -> Entry | None:
        """The copy of ``key`` while live, unchecked: only for a caller that serves it before its ``expires_at``."""
        return self._data.get(key) if self._live else None

    def begin(self, key: str) -> object | None:
        """A ticket for a read of ``key`` about to be sent (None while the channel is down)."""
        if not self._live:
            return None
        ticket = object()
        if len(self._pending) >= self.maxsize:  # reads that failed never finish: keep this bounded
            self._pending.clear()
        self._pending[key] = ticket
        return ticket

    def install(self, key: str, ticket: object | None, entry: Entry) -> None:
        """Keep ``entry`` as the copy of ``key`` unless an invalidation came since ``ticket``."""
        if ticket is None:
            return
        with self._lock:
            if not self._live or self._pending.get(key) is not ticket:
                return
            del self._pending[key]
            data = self._data
            if key not in data and len(data) >= self.maxsize:
                del data[next(iter(data))]
            data[key] = entry

    # -- the write path ----------------------------------------------------------------
    def invalidate(self, key: str) -> None:
        """Drop the copy of ``key`` and void every read of it in flight."""
        with self._lock:
            self._data.pop(key, None)
            self._pending.pop(key, None)

    def notified(self, kind: bytes, key: str, sender: bytes = NO_SENDER) -> None:
        """A message from the channel: drop the copy (``DROP``, unless the write was our own) and wake waiters.

        Our own writes dropped the copy before and after they were sent, so a
        read begun after our write returned may keep the new value at once.
        """
        with self._lock:
            if kind == DROP and sender != self.sender:
                self._data.pop(key, None)
                self._pending.pop(key, None)
            waiters = self._watchers.pop(key, None)
        for waiter in waiters or ():
            waiter.wake()

    # -- the channel's state -------------------------------------------------------------
    def up(self) -> None:
        """The channel is subscribed: serve and keep copies from now on."""
        with self._lock:
            self._live = True
        self._up.set()

    def down(self) -> None:
        """The channel is down: drop every copy, serve none, and wake every waiter (they poll)."""
        with self._lock:
            self._live = False
            self._data.clear()
            self._pending.clear()
            watchers, self._watchers = self._watchers, {}
        self._up.clear()
        for waiters in watchers.values():
            for waiter in waiters:
                waiter.wake()

    # -- waiters -------------------------------------------------------------------------
    def watch(self, key: str) -> Waiter | None:
        """Register a sync waiter for the next message of ``key`` (None while the channel is down)."""
        if not self._live:
            return None
        waiter = Waiter(self, key)
        with self._lock:
            self._watchers.setdefault(key, set()).add(waiter)
        return waiter

    def awatch(self, key: str) -> AsyncWaiter | None:
        """The asyncio twin of :meth:`watch` (call inside the running loop)."""
        if not self._live:
            return None
        waiter = AsyncWaiter(self, key)
        with self._lock:
            self._watchers.setdefault(key, set()).add(waiter)
        return waiter

    def _forget(self, key: str, waiter: Waiter | AsyncWaiter) -> None:
        with self._lock:
            waiters = self._watchers.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._watchers[key]


def pubsub_factory(client: Any, aclient: Any) -> Callable[[], Any]:
    """A maker of PubSub objects for the subscriber thread: from the sync client, or one like the asyncio one."""
    if client is not None:
        factory: Callable[[], Any] = client.pubsub
        return factory
    import redis

    pool = getattr(aclient, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if kwargs is None or "SSL" in type(pool).__name__ + getattr(pool, "connection_class", type).__name__:
        raise TypeError(
            "near= with only an asyncio Redis Cluster or TLS client: pass a sync client of the same server "
            "beside it (RedisStore(sync_client, aclient=async_client, near=...)) for the subscriber thread"
        )
    keep = ("host", "port", "db", "username", "password", "socket_connect_timeout", "client_name", "path")
    options = {k: kwargs[k] for k in keep if k in kwargs}
    if "path" in options:
        options["unix_socket_path"] = options.pop("path")
    sub: Callable[[], Any] = redis.Redis(**options).pubsub
    return sub


class Subscriber:
    """The one thread that keeps a :class:`NearCache` subscribed to its store's channel.

    ``make_pubsub`` returns a fresh redis-py ``PubSub`` (its reconnects are
    ours: any error marks the cache down, then it reconnects with backoff
    50 ms, 100 ms ... 1 s). A connection that goes silent (no RST: a
    partition) is noticed by a PING after each second without traffic: 5 s
    without any reply count as down. The thread is a daemon; ``stop`` ends it.
    """

    def __init__(self, near: NearCache, make_pubsub: Callable[[], Any], channel: str) -> None:
        self.near = near
        self.channel = channel
        self._make = make_pubsub
        self._stop = threading.Event()
        self._pubsub: Any = None
        self._thread = threading.Thread(target=self._run, name="resilient-near", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()  # ends a blocking read at once
            except Exception:  # closing a broken connection may fail; we are leaving anyway
                pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = _RECONNECT_FIRST
        while not self._stop.is_set():
            try:
                self._listen()
                delay = _RECONNECT_FIRST
            except Exception as exc:  # any failure: the copies cannot be trusted until we are back
                if self.near.live and not self._stop.is_set():
                    emit("redis.near_down", operation="redis.near", error=exc)
                self.near.down()
                self._close()
                if self._stop.wait(delay):
                    break
                delay = min(_RECONNECT_CAP, delay * 2)
        self.near.down()
        self._close()

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # the connection is already broken
                pass

    def _listen(self) -> None:
        self._pubsub = pubsub = self._make()
        pubsub.subscribe(self.channel)
        conn = getattr(pubsub, "connection", None)
        if conn is not None:  # redis-py would reconnect silently, losing messages meanwhile: fail instead
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            conn.retry = Retry(NoBackoff(), 0)
        near = self.near
        heard = pinged = time.monotonic()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=_READ_TIMEOUT)
            now = time.monotonic()
            if message is None:
                if now - heard > _SILENCE:
                    raise ConnectionError(f"no reply on the channel for {now - heard:.1f}s")
                if now - max(heard, pinged) >= _PING_EVERY:
                    pubsub.ping()
                    pinged = now
                continue
            heard = now
            kind = message.get("type")
            if kind == "message":
                data = message["data"]
                if isinstance(data, str):
                    data = data.encode()
                kind, sender, key = data[:1], data[1 : 1 + SENDER_BYTES], data[1 + SENDER_BYTES :]
                near.notified(kind, key.decode("utf-8", "surrogateescape"), sender)
            elif kind == "subscribe":
                near.up()
                emit("redis.near_up", operation="redis.near", channel=self.channel)
