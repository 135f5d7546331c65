"""RedisStore: cache entries, leases and token buckets shared by a fleet, on Redis.

Layout (``P`` = ``prefix``, ``k`` = the cache key, used as the hash tag so every
key of one entry lands in one Redis Cluster slot):

* ``P{k}:v`` — the record: one string ``R1 <expires_at> <stale_until> <delta>\\n<payload>``;
  a hit is exactly one ``GET``. Its physical TTL is ``stale_until - now``.
* ``P{k}:l`` — the lease: a random token, ``SET NX PX lease_ttl`` inside the
  lookup script, so it always expires.
* ``P{k}:b`` — a token bucket (hash), for ``RateLimiter(store=...)``.

``lookup`` is one Lua call (fresh value, or lease, or "someone is refreshing",
each with any stale value); ``set(..., lease=)`` is a Lua compare-and-write that
succeeds only while the lease is the key's current one and releases it;
``invalidate`` deletes the record and the lease together, so a refresh that
began before it can no longer write (Facebook's memcache stale-set protection).
Every script that writes a record or frees a lease also ``PUBLISH``es the key on
the channel ``<prefix>near``: the near caches of the fleet drop their copies,
and callers waiting for the refresh wake (:mod:`resilient.stores.near`).

Decoding: a hit whose bytes equal the last record decoded for that key
returns that same :class:`Entry` (and value object) without decoding again, as
an in-memory store would return the object it holds; treat cached values as
read-only. Any change to the record in Redis is decoded afresh, so this is never
stale.

Store failures (connection refused, timeouts) raise :class:`~resilient.StoreUnavailable`
and count in a breaker kept by the store: after ``failure_threshold``
consecutive failures every call raises ``StoreUnavailable`` at once without
touching the network, until one probe per ``reset_timeout`` (at most 5 s)
succeeds. Each real failure emits ``redis.error`` (a Cache above adds ``cache.store_error``).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
from typing import TYPE_CHECKING, Any

from .._machines.store_breaker import StoreBreaker
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import StoreUnavailable
from ..core.events import emit
from ._redis_lua import SCRIPTS, bucket_args, check_bytes_client, client_kinds, pack, px, unpack_header
from .base import Entry, Lookup
from .near import DROP, NO_SENDER, WAKE, AsyncWaiter, NearCache, Subscriber, Waiter, message, pubsub_factory
from .serializers import resolve_serializer

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisStore"]

_FRESH, _LEASED = 0, 1
_DECODED_MAX = 1024  # keys whose last decoded record is remembered (then the memory starts afresh)
_NEVER = 1e308  # a "now" after every expiry: makes the lookup script treat any record as stale


class RedisStore:
    """Cache entries with leases, and token buckets, in Redis (sync and asyncio).

    The sync methods (``get``, ``lookup``, ``set``, ``release``, ``invalidate``,
    ``take``) need a ``redis.Redis``; their async twins (``aget`` ...) need a
    ``redis.asyncio.Redis``. Pass one or both: ``RedisStore(client)``,
    ``RedisStore(aclient)``, ``RedisStore(client, aclient=aclient)`` (two clients
    of the same server), or ``RedisStore.from_url(url)`` which makes the pair. A
    method whose client is missing raises a ``TypeError`` that says which.

    Args:
        client: a ``redis.Redis`` / ``redis.cluster.RedisCluster``, or an asyncio
            one (then taken as ``aclient``). Created with ``decode_responses=False``.
            Give it a ``socket_timeout`` so a hung server fails fast.
        aclient: a ``redis.asyncio.Redis`` for the async twins, beside a sync ``client``.
        prefix: put before every key (must not contain ``{`` or ``}``).
        serializer: JSON (default), or anything with ``dumps``/``loads``
            (``resilient.PickleSerializer(key=...)`` for signed pickle).
        failure_threshold: consecutive store failures that open the breaker.
        reset_timeout: seconds the breaker stays open before one probe (0 < s <= 5). Under
            ``rs.Cache``, whose own store guard backs off 0.5 s, 1 s, 2 s ... 5 s between
            probes, the default 1 s never delays the cache's probe further.
        clock: monotonic time for the breaker (``FakeClock`` in tests).
        near: a :class:`~resilient.NearCache`: reads are served from a process-local
            copy with no Redis command, dropped fleet-wide on any write or
            invalidation of the key (one subscriber thread per store, on the
            channel ``<prefix>near``); waiters for a refresh are woken by it too.
    """

    def __init__(
        self,
        client: redis.Redis | redis.asyncio.Redis | None = None,
        *,
        aclient: redis.asyncio.Redis | None = None,
        prefix: str = "resilient:",
        serializer: object = None,
        failure_threshold: int = 3,
        reset_timeout: float = 1.0,
        clock: Clock | None = None,
        near: NearCache | None = None,
    ) -> None:
        sync_kinds, async_kinds, failures = client_kinds()
        if client is not None and isinstance(client, async_kinds):
            if aclient is not None:
                raise TypeError(
                    f"client is an asyncio client and aclient is given too: pass a sync client, got {client!r}"
                )
            client, aclient = None, client
        if client is not None and not isinstance(client, sync_kinds):
            raise TypeError(f"client must be a redis.Redis or redis.asyncio.Redis, got {client!r}")
        if aclient is not None and not isinstance(aclient, async_kinds):
            raise TypeError(f"aclient must be a redis.asyncio.Redis, got {aclient!r}")
        if client is None and aclient is None:
            raise TypeError("RedisStore needs a client: a redis.Redis, a redis.asyncio.Redis, or both (aclient=)")
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a str without '{{' or '}}', got {prefix!r}")
        for name, c in (("client", client), ("aclient", aclient)):
            if c is not None:
                check_bytes_client(name, c)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.prefix = prefix
        self.serializer = resolve_serializer(serializer)
        self.clock = clock or SYSTEM_CLOCK
        self._breaker = StoreBreaker(failure_threshold=failure_threshold, reset_timeout=reset_timeout)
        self._lock = threading.Lock()
        self._failures = failures
        self._client: Any = client
        self._aclient: Any = aclient
        self._owns_clients = False
        self._decoded: dict[str, tuple[bytes, Entry]] = {}  # per key, the last record decoded and its entry
        self._scripts = {n: client.register_script(s) for n, s in SCRIPTS.items()} if client is not None else {}
        self._ascripts = {n: aclient.register_script(s) for n, s in SCRIPTS.items()} if aclient is not None else {}
        self._channel = f"{prefix}near"
        self._near: NearCache | None = None
        self._subscriber: Subscriber | None = None
        if near is not None:
            self._start_near(near)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "resilient:",
        serializer: object = None,
        failure_threshold: int = 3,
        reset_timeout: float = 1.0,
        clock: Clock | None = None,
        near: NearCache | None = None,
        **options: Any,
    ) -> RedisStore:
        """A store with a sync and an asyncio client of ``url`` (both closed by ``close``/``aclose``).

        One store serves sync and async callers alike (one ``Cache`` for both).
        The keywords are the constructor's; other ``options`` go to both clients.
        ``socket_timeout`` and ``socket_connect_timeout`` default to 1 s, and the
        clients do not retry by themselves (redis-py 8 retries a failed command
        10 times with backoff by default), so a hung or unreachable server fails
        fast and the store's own breaker decides; pass ``retry=`` to change that.
        """
        import redis
        import redis.asyncio
        import redis.asyncio.retry
        import redis.backoff
        import redis.retry

        options.setdefault("socket_timeout", 1.0)
        options.setdefault("socket_connect_timeout", 1.0)
        sync_options, async_options = dict(options), dict(options)
        if "retry" not in options:
            sync_options["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
            async_options["retry"] = redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
        store = cls(
            redis.Redis.from_url(url, **sync_options),
            aclient=redis.asyncio.Redis.from_url(url, **async_options),
            prefix=prefix,
            serializer=serializer,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
            near=near,
        )
        store._owns_clients = True
        return store

    def close(self) -> None:
        """Stop the near cache's subscriber; close the sync client if this store made it (``from_url``)."""
        if self._subscriber is not None:
            self._subscriber.stop()
        if self._owns_clients and self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the clients this store made (``from_url``)."""
        self.close()
        if self._owns_clients and self._aclient is not None:
            await self._aclient.aclose()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, breaker={self._breaker.state!r})"

    # -- keys, records, breaker ------------------------------------------------

    def _tag(self, key: str) -> str:
        if not key or "{" in key or "}" in key:  # keep the hash tag well-formed whatever the key
            key = "#" + hashlib.sha1(key.encode()).hexdigest()
        return f"{self.prefix}{{{key}}}"

    def _decode(self, key: str, data: bytes, now: float | None = None) -> Entry | None:
        last = self._decoded.get(key)
        if last is not None and last[0] == data:  # the same bytes as last time: the same entry
            entry = last[1]
        else:
            try:
                expires_at, stale_until, delta, payload = unpack_header(data)
                entry = Entry(self.serializer.loads(payload), expires_at, stale_until, delta)
            except Exception as exc:  # a record that fails to decode is a miss, never a crash
                emit("cache.decode_error", operation="redis", key=key, error=exc)
                return None
            if len(self._decoded) >= _DECODED_MAX:
                self._decoded.clear()
            self._decoded[key] = (data, entry)
        if now is not None and now >= entry.stale_until:
            return None
        return entry

    def _encode(self, key: str, entry: Entry) -> bytes:
        """The record for ``entry``; a value the serializer refuses raises ``TypeError`` naming type and key."""
        try:
            payload: bytes | str = self.serializer.dumps(entry.value)
        except Exception as exc:  # not a store failure: a value this store can never hold, said at once
            emit("cache.encode_error", operation="redis", key=key, error=exc)
            raise TypeError(
                f"cannot store a {type(entry.value).__qualname__} under key {key!r}: {self.serializer!r} "
                f"cannot encode it ({exc}); return a value it can encode, or pass serializer="
            ) from exc
        if isinstance(payload, str):  # the json module itself, passed as a serializer
            payload = payload.encode()
        return pack(entry, payload)

    def _sync(self, method: str) -> Any:
        if self._client is None:
            raise TypeError(
                "a sync call on this RedisStore needs a sync redis.Redis client, but it was given only a "
                "redis.asyncio one: build it with RedisStore.from_url(url) (both clients), or pass both: "
                "RedisStore(redis.Redis(...), aclient=redis.asyncio.Redis(...))"
            )
        return self._client

    def _async(self, method: str) -> Any:
        if self._aclient is None:
            raise TypeError(
                "an async call on this RedisStore (an async function under rs.Cache, an async RateLimiter) needs "
                "a redis.asyncio client, but it was given only a sync redis.Redis: build it with "
                "RedisStore.from_url(url) (both clients), or pass aclient=: "
                "RedisStore(redis.Redis(...), aclient=redis.asyncio.Redis(...))"
            )
        return self._aclient

    def _admit(self) -> None:
        with self._lock:
            remaining = self._breaker.admit(self.clock.monotonic())
        if remaining > 0:
            raise StoreUnavailable(
                f"redis store unavailable (breaker open, probe in {remaining:.2f}s)", remaining=remaining
            )

    def _ok(self) -> None:
        with self._lock:
            recovered = self._breaker.success()
        if recovered:
            emit("redis.recovered", operation="redis")

    def _failed(self, exc: BaseException, method: str, key: str) -> StoreUnavailable:
        with self._lock:
            opened = self._breaker.failure(self.clock.monotonic())
        emit("redis.error", operation="redis", key=key, error=exc, method=method, breaker_opened=opened)
        return StoreUnavailable(f"redis store failed in {method}(): {exc!r}")

    def _other(self, exc: BaseException) -> None:
        """A call ended by something other than a store failure: an answer (RedisError) or a cancellation."""
        if isinstance(exc, Exception):
            if self._breaker.state != "closed" or self._breaker.failures:
                self._ok()
        elif self._breaker.probing:
            with self._lock:
                self._breaker.abandon()

    # -- the near cache (resilient.stores.near): its hooks are here and in get/lookup/set/release/invalidate --

    def _start_near(self, near: NearCache) -> None:
        if not isinstance(near, NearCache):
            raise TypeError(f"near must be a resilient.NearCache, got {near!r}")
        near.attach(self, self.clock.time)
        self._near = near
        self._subscriber = Subscriber(near, pubsub_factory(self._client, self._aclient), self._channel)

    @property
    def near(self) -> NearCache | None:
        """The near cache given as ``near=``, if any."""
        return self._near

    def near_get(self, key: str) -> Entry | None:
        """The near copy of ``key`` (no Redis command), or None; always None without ``near=``."""
        near = self._near
        return None if near is None else near.get(key)

    def watch(self, key: str) -> Waiter | None:
        """A waiter woken when ``key`` is next written or its lease freed; None without a live near channel."""
        near = self._near
        return None if near is None else near.watch(key)

    def awatch(self, key: str) -> AsyncWaiter | None:
        """The asyncio twin of :meth:`watch`."""
        near = self._near
        return None if near is None else near.awatch(key)

    def _message(self, kind: bytes, key: str) -> bytes:
        return message(kind, NO_SENDER if self._near is None else self._near.sender, key)

    def _dropped(self, key: str) -> None:
        near = self._near
        if near is not None:
            near.invalidate(key)

    # -- sync ------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry (fresh or stale) with exactly one GET, or None."""
        client = self._client or self._sync("get")
        near = self._near
        ticket = None
        if near is not None:
            entry = near.get(key)
            if entry is not None:
                return entry
            ticket = near.begin(key)
        data = self._run(client.get, "get", key, (), (f"{self._tag(key)}:v",))
        entry = None if data is None else self._decode(key, data)
        if entry is not None and near is not None:
            near.install(key, ticket, entry)
        return entry

    def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        """One Lua call: the fresh entry, or a new lease (valid ``lease_ttl`` s), or "refreshing"."""
        self._sync("lookup")
        tag, token = self._tag(key), secrets.token_hex(12)
        keys, script = (f"{tag}:v", f"{tag}:l"), self._scripts["lookup"]
        ticket = None if self._near is None else self._near.begin(key)
        answer = self._lookup_answer(
            key, self._run(script, "lookup", key, keys, (now, token, px(lease_ttl))), now, token
        )
        if answer is None:  # a fresh record that does not decode: a miss, so ask for the lease
            reply = self._run(script, "lookup", key, keys, (_NEVER, token, px(lease_ttl)))
            answer = self._lookup_answer(key, reply, now, token)
        return self._kept(key, ticket, answer)

    def set(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        """Write ``entry`` until ``entry.stale_until``; with ``lease``, only while it is valid (then released).

        A value the serializer refuses raises ``TypeError`` naming its type and the key
        (event ``cache.encode_error``), and its lease is released, so nobody waits for it.
        """
        self._sync("set")
        try:
            record = self._encode(key, entry)
        except TypeError:
            if lease is not None:  # nobody waits for a write that cannot happen
                self.release(key, lease)
            raise
        tag, ttl = self._tag(key), px(entry.stale_until - now)
        message = self._message(DROP, key)
        self._dropped(key)
        try:
            if lease is None:
                script = self._scripts["set_plain"]
                return bool(self._run(script, "set", key, (f"{tag}:v",), (record, ttl, self._channel, message)))
            script, keys = self._scripts["set_leased"], (f"{tag}:v", f"{tag}:l")
            return bool(self._run(script, "set", key, keys, (lease, record, ttl, self._channel, message)))
        finally:
            self._dropped(key)

    def release(self, key: str, lease: str) -> None:
        """Give up ``lease`` (a failed refresh) if it is still the key's lease."""
        self._sync("release")
        args = (lease, self._channel, self._message(WAKE, key))
        self._run(self._scripts["release"], "release", key, (f"{self._tag(key)}:l",), args)

    def invalidate(self, key: str) -> None:
        """Delete the entry and its lease in one script (one DEL, one PUBLISH): no refresh begun before can write."""
        self._sync("invalidate")
        tag, args = self._tag(key), (self._channel, self._message(DROP, key))
        self._dropped(key)
        try:
            self._run(self._scripts["invalidate"], "invalidate", key, (f"{tag}:v", f"{tag}:l"), args)
        finally:
            self._dropped(key)

    def take(self, key: str, *, rate: float, burst: float, now: float, tokens: float = 1.0) -> float:
        """Atomically take ``tokens`` from the shared bucket: 0.0, or seconds until they would be there.

        One Lua call. ``tokens`` more than ``burst`` can never be there: ``math.inf``, without a call.
        """
        self._sync("take")
        args = bucket_args(rate, burst, now, tokens)
        if tokens > burst:  # never there: as the in-process bucket answers
            return math.inf
        return float(self._run(self._scripts["bucket"], "take", key, (f"{self._tag(key)}:b",), args))

    def _run(self, fn: Any, method: str, key: str, keys: tuple[str, ...], args: tuple[Any, ...], **kw: Any) -> Any:
        if self._breaker.state != "closed":
            self._admit()
        try:
            reply = fn(keys, args) if keys else fn(*args, **kw)
        except self._failures as exc:
            raise self._failed(exc, method, key) from exc
        except BaseException as exc:
            self._other(exc)
            raise
        if self._breaker.failures or self._breaker.state != "closed":
            self._ok()
        return reply

    def _kept(self, key: str, ticket: object | None, answer: Lookup | None) -> Lookup:
        """``answer`` (or "refreshing"), its entry kept as the near copy when the read was ticketed."""
        if answer is None:
            return Lookup(None, None, True)
        if ticket is not None and answer.entry is not None and self._near is not None:
            self._near.install(key, ticket, answer.entry)
        return answer

    def _lookup_answer(self, key: str, reply: Any, now: float, token: str) -> Lookup | None:
        code, data = reply
        entry = None if data is None else self._decode(key, data, now)
        if code == _FRESH:
            return Lookup(entry, None, False) if entry is not None else None
        if code == _LEASED:
            return Lookup(entry, token, False)
        return Lookup(entry, None, True)

    # -- async (twins of the above) -----------------------------------------------

    async def aget(self, key: str) -> Entry | None:
        """The async twin of :meth:`get`."""
        aclient = self._aclient or self._async("get")
        near = self._near
        ticket = None
        if near is not None:
            entry = near.get(key)
            if entry is not None:
                return entry
            ticket = near.begin(key)
        data = await self._arun(aclient.get, "get", key, (), (f"{self._tag(key)}:v",))
        entry = None if data is None else self._decode(key, data)
        if entry is not None and near is not None:
            near.install(key, ticket, entry)
        return entry

    async def alookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        """The async twin of :meth:`lookup`."""
        self._async("lookup")
        tag, token = self._tag(key), secrets.token_hex(12)
        keys, script = (f"{tag}:v", f"{tag}:l"), self._ascripts["lookup"]
        ticket = None if self._near is None else self._near.begin(key)
        reply = await self._arun(script, "lookup", key, keys, (now, token, px(lease_ttl)))
        answer = self._lookup_answer(key, reply, now, token)
        if answer is None:  # a fresh record that does not decode: a miss, so ask for the lease
            reply = await self._arun(script, "lookup", key, keys, (_NEVER, token, px(lease_ttl)))
            answer = self._lookup_answer(key, reply, now, token)
        return self._kept(key, ticket, answer)

    async def aset(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        """The async twin of :meth:`set`."""
        self._async("set")
        try:
            record = self._encode(key, entry)
        except TypeError:
            if lease is not None:  # nobody waits for a write that cannot happen
                await self.arelease(key, lease)
            raise
        tag, ttl = self._tag(key), px(entry.stale_until - now)
        message = self._message(DROP, key)
        self._dropped(key)
        try:
            if lease is None:
                script = self._ascripts["set_plain"]
                args: tuple[Any, ...] = (record, ttl, self._channel, message)
                return bool(await self._arun(script, "set", key, (f"{tag}:v",), args))
            script, keys = self._ascripts["set_leased"], (f"{tag}:v", f"{tag}:l")
            return bool(await self._arun(script, "set", key, keys, (lease, record, ttl, self._channel, message)))
        finally:
            self._dropped(key)

    async def arelease(self, key: str, lease: str) -> None:
        """The async twin of :meth:`release`."""
        self._async("release")
        args = (lease, self._channel, self._message(WAKE, key))
        await self._arun(self._ascripts["release"], "release", key, (f"{self._tag(key)}:l",), args)

    async def ainvalidate(self, key: str) -> None:
        """The async twin of :meth:`invalidate`."""
        self._async("invalidate")
        tag, args = self._tag(key), (self._channel, self._message(DROP, key))
        self._dropped(key)
        try:
            await self._arun(self._ascripts["invalidate"], "invalidate", key, (f"{tag}:v", f"{tag}:l"), args)
        finally:
            self._dropped(key)

    async def atake(self, key: str, *, rate: float, burst: float, now: float, tokens: float = 1.0) -> float:
        """The async twin of :meth:`take`."""
        self._async("take")
        args = bucket_args(rate, burst, now, tokens)
        if tokens > burst:
            return math.inf
        return float(await self._arun(self._ascripts["bucket"], "take", key, (f"{self._tag(key)}:b",), args))

    async def _arun(
        self, fn: Any, method: str, key: str, keys: tuple[str, ...], args: tuple[Any, ...], **kw: Any
    ) -> Any:
        if self._breaker.state != "closed":
            self._admit()
        try:
            reply = await (fn(keys, args) if keys else fn(*args, **kw))
        except self._failures as exc:
            raise self._failed(exc, method, key) from exc
        except BaseException as exc:
            self._other(exc)
            raise
        if self._breaker.failures or self._breaker.state != "closed":
            self._ok()
        return reply
