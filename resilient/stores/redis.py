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

Store failures (connection refused or reset, no answer within ``timeout``, a
cluster that is down) raise :class:`~resilient.StoreUnavailable` and count in a
breaker kept by the store (:mod:`._redis_health`): failures of one outage count
once; after ``failure_threshold`` of them every call is refused at once
(``StoreUnavailable(refused=True)``) without touching the network, while one
probe per process pings Redis every ``reset_timeout`` seconds off the callers'
path and closes the breaker as soon as Redis answers. A closed pooled connection
(left over from before a restart) is retried on a fresh one, not counted. Any
other error (a key that cannot be encoded, OOM on one write, a wrong type) is
that call's alone: it is raised and the store stays healthy. Each real failure
emits ``redis.error``; the recovery ``redis.recovered``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from typing import TYPE_CHECKING, Any

from .._machines._validate import number, whole
from .._machines.store_breaker import StoreBreaker
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import StoreUnavailable
from ..core.events import emit
from ._memo import Memo
from ._redis_client import EXTRA, sorted_clients, warn_unbounded
from ._redis_health import ATTEMPTS, Health, is_failure, is_stale_connection
from ._redis_lua import SCRIPTS, bucket_args, pack, px, unpack_header
from .base import Entry, Lookup
from .near import DROP, NO_SENDER, WAKE, AsyncWaiter, NearCache, Subscriber, Waiter, message, pubsub_factory
from .serializers import resolve_serializer

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisStore"]

_FRESH, _LEASED = 0, 1
_NEVER = 1e308  # a "now" after every expiry: makes the lookup script treat any record as stale
_RELEASE_PAUSES = (0.0, 0.1)  # a cancelled lookup's lease is released at once, then again 0.1 s later


class RedisStore:
    """Cache entries with leases, and token buckets, in Redis (sync and asyncio).

    The sync methods (``get``, ``lookup``, ``set``, ``release``, ``invalidate``,
    ``take``) need a sync client; their async twins (``aget`` ...) an asyncio
    one. Pass one or both: ``RedisStore(client)``, ``RedisStore(aclient)``,
    ``RedisStore(client, aclient=aclient)`` (two clients of the same server), or
    ``RedisStore.from_url(url)`` which makes a bounded pair. A method whose
    client is missing raises a ``TypeError`` that says which. redis-py and
    valkey-py clients (plain or Cluster) are accepted alike.

    No caller waits on the store longer than ``timeout``: asyncio calls are cut
    there; a sync client cannot be interrupted, so one whose settings could
    block longer (``socket_timeout``, ``socket_connect_timeout``, ``retry``) is
    reported with a ``RuntimeWarning`` naming the setting at construction.

    Args:
        client: a sync client (``redis.Redis``, ``redis.cluster.RedisCluster``,
            ``valkey.Valkey`` ...), or an asyncio one (then taken as ``aclient``),
            created with ``decode_responses=False``.
        aclient: an asyncio client for the async twins, beside a sync ``client``.
        prefix: put before every key (must not contain ``{`` or ``}``).
        serializer: JSON (default), or anything with ``dumps``/``loads``
            (``resilient.PickleSerializer(key=...)`` for signed pickle).
        timeout: seconds a call may take before it counts as a store failure (> 0).
        failure_threshold: failures (those of one outage counting once) that open the breaker; with
            the default 1 the first failure rests the store and its probe brings it back within reset_timeout.
        reset_timeout: seconds between the probe's pings while the breaker is open (0 < s <= 5).
        memo_bytes: bound of the per-process memo of decoded records (>= 0; 0 keeps none).
        clock: monotonic time for the breaker (``FakeClock`` in tests).
        near: a :class:`~resilient.NearCache`: reads are served from a process-local
            copy with no Redis command, dropped fleet-wide on any write or
            invalidation of the key (one subscriber thread per store, on the
            channel ``<prefix>near``); waiters for a refresh are woken by it too.
    """

    def __init__(
        self,
        client: redis.Redis | redis.asyncio.Redis | Any = None,
        *,
        aclient: redis.asyncio.Redis | Any = None,
        prefix: str = "resilient:",
        serializer: object = None,
        timeout: float = 0.25,
        failure_threshold: int = 1,
        reset_timeout: float = 0.2,
        memo_bytes: int = 32 * 1024 * 1024,
        clock: Clock | None = None,
        near: NearCache | None = None,
    ) -> None:
        client, aclient = sorted_clients(client, aclient)
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a str without '{{' or '}}', got {prefix!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.timeout = number("timeout", timeout, strict=True)
        self.prefix = prefix
        self.serializer = resolve_serializer(serializer)
        self.clock = clock or SYSTEM_CLOCK
        self._client: Any = client
        self._aclient: Any = aclient
        self._owns_clients = False
        self._memo: Memo[Entry] = Memo(whole("memo_bytes", memo_bytes, minimum=0))
        self._health = Health(
            StoreBreaker(failure_threshold=failure_threshold, reset_timeout=reset_timeout),
            self.clock,
            None if client is None else client.ping,
            None if aclient is None else self._aping,
        )
        self._cleanups: set[asyncio.Task[Any]] = set()
        self._scripts = {n: client.register_script(s) for n, s in SCRIPTS.items()} if client is not None else {}
        self._ascripts = {n: aclient.register_script(s) for n, s in SCRIPTS.items()} if aclient is not None else {}
        self._channel = f"{prefix}near"
        self._near: NearCache | None = None
        self._subscriber: Subscriber | None = None
        if near is not None:
            self._start_near(near)
        if client is not None:
            warn_unbounded(client, self.timeout)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "resilient:",
        serializer: object = None,
        timeout: float = 0.25,
        failure_threshold: int = 1,
        reset_timeout: float = 0.2,
        memo_bytes: int = 32 * 1024 * 1024,
        clock: Clock | None = None,
        near: NearCache | None = None,
        **options: Any,
    ) -> RedisStore:
        """A store with a sync and an asyncio client of ``url`` (both closed by ``close``/``aclose``).

        The keywords are the constructor's; other ``options`` go to both clients.
        The clients are bounded by ``timeout``: ``socket_timeout`` and
        ``socket_connect_timeout`` default to it, and they do not retry by
        themselves (the store retries a closed connection once on a fresh one).
        """
        try:
            import redis
            import redis.asyncio
            from redis.asyncio.retry import Retry as AsyncRetry
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ImportError(f"RedisStore.from_url needs redis-py: {EXTRA}") from exc

        bound = number("timeout", timeout, strict=True)
        options.setdefault("socket_timeout", bound)
        options.setdefault("socket_connect_timeout", bound)
        sync_retry = options.pop("retry", None) or Retry(NoBackoff(), 0)
        async_retry = options.pop("aretry", None) or AsyncRetry(NoBackoff(), 0)
        store = cls(
            redis.Redis.from_url(url, retry=sync_retry, **options),
            aclient=redis.asyncio.Redis.from_url(url, retry=async_retry, **options),
            prefix=prefix,
            serializer=serializer,
            timeout=bound,
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            memo_bytes=memo_bytes,
            clock=clock,
            near=near,
        )
        store._owns_clients = True
        return store

    def close(self) -> None:
        """Stop the probe and the near subscriber; close the sync client if this store made it (``from_url``)."""
        self._health.close()
        if self._subscriber is not None:
            self._subscriber.stop()
        if self._owns_clients and self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Stop the probe; close the clients this store made (``from_url``)."""
        self.close()
        if self._owns_clients and self._aclient is not None:
            await self._aclient.aclose()

    @property
    def available(self) -> bool:
        """False while the store rests after failures (its probe runs); policies then use their fallback."""
        return self._health.available

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, breaker={self._health.breaker.state!r})"

    # -- keys, records, breaker ------------------------------------------------

    def _tag(self, key: str) -> str:
        """``P{key}``; a key that is empty, holds a brace, starts with ``#`` or is not valid
        UTF-8 is hashed to ``#<sha1>`` instead (so no plain key can equal a hashed one)."""
        if not key or "{" in key or "}" in key or key[0] == "#" or (not key.isascii() and not _utf8(key)):
            key = "#" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}{{{key}}}"

    def _decode(self, key: str, data: bytes, now: float | None = None) -> Entry | None:
        entry = self._memo.get(key, data)  # the same bytes as last time: the same entry
        if entry is None:
            try:
                expires_at, stale_until, delta, payload = unpack_header(data)
                entry = Entry(self.serializer.loads(payload), expires_at, stale_until, delta)
            except Exception as exc:  # a record that fails to decode is a miss, never a crash
                emit("cache.decode_error", operation="redis", key=key, error=exc)
                return None
            self._memo.put(key, data, entry)
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
        try:
            answer = self._lookup_answer(
                key, self._run(script, "lookup", key, keys, (now, token, px(lease_ttl))), now, token
            )
            if answer is None:  # a fresh record that does not decode: a miss, so ask for the lease
                reply = self._run(script, "lookup", key, keys, (_NEVER, token, px(lease_ttl)))
                answer = self._lookup_answer(key, reply, now, token)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted: the lease may be granted, give it back
                self._release_quietly(key, token)
            raise
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

    def command(self, name: str, key: str, part: str, *args: Any) -> Any:
        """Run one Redis command on ``P{key}:part`` (then ``args``) through the store's timeout and breaker.

        For state of the store's own kind kept beside the cache's (a shared
        circuit breaker's hash, say). Raises ``StoreUnavailable`` as the other
        methods do.
        """
        client = self._sync(name.lower())
        return self._run(client.execute_command, name.lower(), key, (), (name, f"{self._tag(key)}:{part}", *args))

    def _run(self, fn: Any, method: str, key: str, keys: tuple[str, ...], args: tuple[Any, ...], **kw: Any) -> Any:
        health = self._health
        if not health.available:
            raise health.refusal()
        started, answers = self.clock.monotonic(), health.answers
        for attempt in range(ATTEMPTS):
            try:
                reply = fn(keys, args) if keys else fn(*args, **kw)
            except Exception as exc:
                if attempt + 1 < ATTEMPTS and is_stale_connection(exc):
                    continue  # a pooled connection closed by a restart: try a fresh one
                if is_failure(exc):
                    raise health.failed(exc, method, key, started, answers) from exc
                health.ok()  # the store answered: this call's own error
                raise
            health.ok()
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

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
        try:
            reply = await self._arun(script, "lookup", key, keys, (now, token, px(lease_ttl)))
            answer = self._lookup_answer(key, reply, now, token)
            if answer is None:  # a fresh record that does not decode: a miss, so ask for the lease
                reply = await self._arun(script, "lookup", key, keys, (_NEVER, token, px(lease_ttl)))
                answer = self._lookup_answer(key, reply, now, token)
        except BaseException as exc:
            if not isinstance(exc, Exception) or _cut_short(exc):  # the request may have been granted
                self._arelease_later(key, token)
            raise
        return self._kept(key, ticket, answer)

    def _release_quietly(self, key: str, token: str) -> None:
        """Give back a lease that an interrupted lookup may have been granted (best effort)."""
        try:
            self.release(key, token)
        except Exception as exc:
            emit("redis.release_failed", operation="redis", key=key, error=exc)

    def _arelease_later(self, key: str, token: str) -> None:
        """Give back, in a task of its own (the caller is being cancelled), a lease maybe granted."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - alookup always runs on a loop
            return
        task = loop.create_task(self._arelease_quietly(key, token))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _arelease_quietly(self, key: str, token: str) -> None:
        """Release now, and once more a moment later: the cancelled request, flushed by its closing
        connection, may reach Redis after the first release (a second release of the token is harmless)."""
        for pause in _RELEASE_PAUSES:
            await asyncio.sleep(pause)
            try:
                await self.arelease(key, token)
            except Exception as exc:
                emit("redis.release_failed", operation="redis", key=key, error=exc)
                return

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
        health = self._health
        if not health.available:
            raise health.refusal()
        started, answers = self.clock.monotonic(), health.answers
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._attempts(fn, keys, args, kw)
        except Exception as exc:
            if is_failure(exc):
                raise health.failed(exc, method, key, started, answers) from exc
            health.ok()
            raise
        health.ok()
        return reply

    @staticmethod
    async def _attempts(fn: Any, keys: tuple[str, ...], args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                return await (fn(keys, args) if keys else fn(*args, **kw))
            except Exception as exc:
                if attempt + 1 < ATTEMPTS and is_stale_connection(exc):
                    continue  # a pooled connection closed by a restart: try a fresh one
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _aping(self) -> Any:
        async with asyncio.timeout(self.timeout):
            return await self._aclient.ping()


def _cut_short(exc: BaseException) -> bool:
    """A lookup that failed after its request may have been sent (a timeout), not one refused unsent."""
    return isinstance(exc, TimeoutError) or (isinstance(exc, StoreUnavailable) and not exc.refused)


def _utf8(key: str) -> bool:
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True
