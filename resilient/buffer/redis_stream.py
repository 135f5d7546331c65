"""RedisStreamQueue: a WriteBuffer's queue on a Redis stream, shared by a fleet.

Layout (``S`` = ``stream``): ``S`` the stream (one field ``d``: the serialized
item), its consumer group ``group`` created at the stream's start (``XGROUP
CREATE S group 0 MKSTREAM``, by producers and consumers alike, so items put
before any consumer ran are delivered), and ``S:rate``, the fleet's token bucket
(the store's bucket script). A consumer reads with ``XREADGROUP``, writes, then
``XACK`` + ``XDEL`` in one transaction: the stream holds only unwritten items
(so ``XLEN`` is the fleet's backlog and ``maxlen`` bounds it without ever
trimming an unwritten item). Entries a crashed consumer left pending longer
than ``claim_after`` are taken over with ``XAUTOCLAIM``. Delivery is at least
once: an item is written twice only when its consumer died between ``write``
and ``XACK``.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._machines._validate import number, whole
from .._machines.buffer import BatchPlan
from .._machines.store_breaker import StoreBreaker
from ..core.clock import Clock
from ..core.errors import BufferFullError, StoreUnavailable
from ..core.events import emit
from ..stores._redis_lua import SCRIPTS, bucket_args, check_bytes_client, client_kinds
from ..stores.serializers import resolve_serializer
from .drain import POLICY, Taken
from .local import LocalQueue

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisStreamQueue"]

# KEYS: stream. ARGV: maxlen, data. Adds unless the stream already holds maxlen entries (then false).
ADD_BOUNDED = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'd', ARGV[2])
"""

_POLL = 0.1  # the longest a consumer blocks in XREADGROUP before it looks at close/flush again
_BACKOFF_MAX = 1.0  # the longest pause between tries while Redis is down


def _entries(reply: Any) -> list[tuple[bytes, Any]]:
    """The (id, fields) entries of an XREADGROUP reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        groups = list(reply.values())
        return [e for g in groups for e in (g[0] if g and isinstance(g[0], list) else g)]
    return [e for _, entries in reply for e in entries]


def _id_ms(entry_id: bytes | str) -> float:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return float(raw.split("-", 1)[0])


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamQueue:
    """A shared queue for ``rs.WriteBuffer(queue=...)`` on a Redis stream and consumer group.

    Pass a sync ``redis.Redis`` (the buffer's worker is then a thread, ``put`` the
    way in) or a ``redis.asyncio.Redis`` (a task, ``aput``), created with
    ``decode_responses=False`` and a ``socket_timeout`` so a hung server fails fast.
    Items are serialized with JSON by default (never pickle unless you pass
    ``rs.PickleSerializer(key=...)``). One queue object serves one buffer.

    Args:
        client: the Redis client.
        stream: the stream's key.
        group: the consumer group every consumer of the stream joins.
        consumer: this consumer's name in the group (default: host, pid and a random suffix).
        maxlen: the most unwritten items the stream may hold; a put beyond it
            raises ``rs.BufferFullError`` (the stream is never trimmed).
        claim_after: seconds after which another consumer's unacknowledged
            entries are claimed (XAUTOCLAIM) and written by this one.
        serializer: JSON (default) or anything with ``dumps``/``loads``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        client: redis.Redis | redis.asyncio.Redis,
        *,
        stream: str,
        group: str = "resilient",
        consumer: str | None = None,
        maxlen: int | None = None,
        claim_after: float = 30.0,
        serializer: object = None,
    ) -> None:
        sync_kinds, async_kinds, failures = client_kinds()
        if not isinstance(client, (*sync_kinds, *async_kinds)):
            raise TypeError(f"client must be a redis.Redis or redis.asyncio.Redis, got {client!r}")
        check_bytes_client("client", client)
        for name, value in (("stream", stream), ("group", group)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty str, got {value!r}")
        if consumer is not None and (not isinstance(consumer, str) or not consumer):
            raise ValueError(f"consumer must be a non-empty str, got {consumer!r}")
        self.client: Any = client
        self.key = self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.maxlen = None if maxlen is None else whole("maxlen", maxlen, minimum=1)
        self.claim_after = number("claim_after", claim_after, strict=True)
        self.serializer = resolve_serializer(serializer)
        self.is_async = isinstance(client, async_kinds)
        self._failures = failures
        self._add = client.register_script(ADD_BOUNDED) if self.maxlen is not None else None
        self._bucket = client.register_script(SCRIPTS["bucket"])
        self._breaker = StoreBreaker(failure_threshold=1, reset_timeout=0.5)
        self._lock = threading.Lock()
        self._group_ready = False
        self._attached = False
        self._last_id: tuple[int, int] | None = None
        self._unacked: list[Any] = []
        self._backlog = 0
        self._oldest_ms: float | None = None
        self._urgent = 0
        self._closing = False
        self._forwarder: threading.Thread | None = None
        self._aforwarder: Any = None
        self._local_mode = False

    def __repr__(self) -> str:
        return f"RedisStreamQueue(stream={self.stream!r}, group={self.group!r}, consumer={self.consumer!r})"

    # -- wiring (called by WriteBuffer) -------------------------------------------------

    def attach(self, *, plan: BatchPlan, clock: Clock, max_pending: int, on_store_error: str, operation: str) -> None:
        if self._attached:
            raise ValueError(f"this RedisStreamQueue already serves a WriteBuffer: make one per buffer, got {self!r}")
        self._attached = True
        self.plan = plan
        self.clock = clock
        self.on_store_error = on_store_error
        self.operation = operation
        # Items put while Redis is down (on_store_error="local"), forwarded in order when it is back.
        self._outbox = LocalQueue(
            plan=BatchPlan(batch_size=plan.batch_size, linger=0.0), clock=clock, max_pending=max_pending
        )

    def source(self, *, consume: bool) -> Any:
        return _StreamSource(self, consume)

    def gate(self, *, rate: float, burst: float) -> Any:
        return _FleetGate(self, rate=rate, burst=burst)

    # -- calls through the breaker -----------------------------------------------------

    def _fields(self) -> dict[str, Any]:
        return {"policy": POLICY, "operation": self.operation, "key": self.stream}

    def _admit(self) -> None:
        with self._lock:
            remaining = self._breaker.admit(time.monotonic())
        if remaining > 0:
            raise StoreUnavailable(f"redis stream unavailable (probe in {remaining:.2f}s)", remaining=remaining)

    def _failed(self, exc: BaseException, method: str) -> StoreUnavailable:
        with self._lock:
            self._breaker.failure(time.monotonic())
            self._group_ready = False  # a restarted server may have lost the group
        emit(
            "buffer.store_error",
            **self._fields(),
            method=method,
            error=type(exc).__name__,
            error_message=str(exc)[:200],
        )
        return StoreUnavailable(f"redis stream failed in {method}: {exc!r}")

    def _ok(self) -> None:
        if self._breaker.state != "closed" or self._breaker.failures:
            with self._lock:
                self._breaker.success()

    def _call(self, method: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        self._admit()
        try:
            reply = fn(*args, **kw)
        except self._failures as exc:
            raise self._failed(exc, method) from exc
        except BaseException:
            with self._lock:
                self._breaker.abandon()
            raise
        self._ok()
        return reply

    async def _acall(self, method: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        self._admit()
        try:
            reply = await fn(*args, **kw)
        except self._failures as exc:
            raise self._failed(exc, method) from exc
        except BaseException:
            with self._lock:
                self._breaker.abandon()
            raise
        self._ok()
        return reply

    def _is_busygroup(self, exc: BaseException) -> bool:
        return "BUSYGROUP" in str(exc)

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        import redis

        try:
            self._call("xgroup_create", self.client.xgroup_create, self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not self._is_busygroup(exc):
                raise
        self._group_ready = True

    async def _aensure_group(self) -> None:
        if self._group_ready:
            return
        import redis

        try:
            await self._acall(
                "xgroup_create", self.client.xgroup_create, self.stream, self.group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if not self._is_busygroup(exc):
                raise
        self._group_ready = True

    # -- producing ------------------------------------------------------------------------

    def _added(self, reply: Any) -> None:
        if reply is None:
            raise BufferFullError(f"stream {self.stream!r} holds maxlen={self.maxlen} unwritten items")
        entry_id = _id_tuple(reply)
        with self._lock:
            if self._last_id is None or entry_id > self._last_id:
                self._last_id = entry_id

    def _xadd(self, data: bytes) -> None:
        self._ensure_group()
        if self._add is not None:
            reply = self._call("xadd", self._add, keys=[self.stream], args=[self.maxlen, data])
        else:
            reply = self._call("xadd", self.client.xadd, self.stream, {"d": data})
        self._added(reply)

    async def _axadd(self, data: bytes) -> None:
        await self._aensure_group()
        if self._add is not None:
            reply = await self._acall("xadd", self._add, keys=[self.stream], args=[self.maxlen, data])
        else:
            reply = await self._acall("xadd", self.client.xadd, self.stream, {"d": data})
        self._added(reply)

    def _encode(self, item: Any) -> bytes:
        data: Any = self.serializer.dumps(item)
        return data.encode() if isinstance(data, str) else bytes(data)  # a dumps returning str is UTF-8

    def _keep_local(self, data: bytes, error: StoreUnavailable | None) -> None:
        """Hold ``data`` in process (Redis down, ``on_store_error="local"``), in put order."""
        if not self._outbox.offer(data):
            raise BufferFullError(f"redis is down and {self._outbox.max_pending} items wait in process")
        if not self._local_mode:
            self._local_mode = True
            emit("buffer.local", **self._fields())

    def put(self, item: Any) -> None:
        """XADD ``item`` (or hold it in process while Redis is down, with ``on_store_error="local"``)."""
        data = self._encode(item)
        if self._outbox.unsettled():  # earlier items still wait in process: keep the order
            self._keep_local(data, None)
            self._start_forwarder()
            return
        try:
            self._xadd(data)
        except StoreUnavailable as exc:
            if self.on_store_error == "raise":
                raise
            self._keep_local(data, exc)
            self._start_forwarder()

    async def aput(self, item: Any) -> None:
        """The asyncio twin of :meth:`put`."""
        data = self._encode(item)
        if self._outbox.unsettled():
            self._keep_local(data, None)
            self._astart_forwarder()
            return
        try:
            await self._axadd(data)
        except StoreUnavailable as exc:
            if self.on_store_error == "raise":
                raise
            self._keep_local(data, exc)
            self._astart_forwarder()

    # -- forwarding what was held in process ---------------------------------------------

    def _pause(self, attempt: int) -> float:
        return float(min(_BACKOFF_MAX, 0.05 * 2**attempt))

    def _start_forwarder(self) -> None:
        if self._forwarder is not None and self._forwarder.is_alive():
            return
        with self._lock:
            if self._forwarder is None or not self._forwarder.is_alive():
                self._forwarder = threading.Thread(target=self._forward, name="resilient-buffer-forward", daemon=True)
                self._forwarder.start()

    def _forward(self) -> None:
        while (batch := self._outbox.take()) is not None:
            attempt = 0
            done = 0
            while done < len(batch.items):
                try:
                    self._xadd(batch.items[done])
                    done += 1
                except StoreUnavailable:
                    time.sleep(self._pause(attempt))
                    attempt += 1
            self._forwarded(batch)

    def _astart_forwarder(self) -> None:
        import asyncio

        task = self._aforwarder
        if task is None or task.done():
            self._outbox.bind_loop(asyncio.get_running_loop())
            self._aforwarder = asyncio.get_running_loop().create_task(self._aforward())

    async def _aforward(self) -> None:
        import asyncio

        while (batch := await self._outbox.atake()) is not None:
            attempt = 0
            done = 0
            while done < len(batch.items):
                try:
                    await self._axadd(batch.items[done])
                    done += 1
                except StoreUnavailable:
                    await asyncio.sleep(self._pause(attempt))
                    attempt += 1
            self._forwarded(batch)

    def _forwarded(self, batch: Taken) -> None:
        self._outbox.settle(batch)
        emit("buffer.forwarded", **self._fields(), items=len(batch.items))
        if not self._outbox.unsettled():
            self._local_mode = False

    # -- flush, close, readings --------------------------------------------------------------

    def _all_acked(self) -> bool:
        """Every item this process added is acknowledged by the group (sync client)."""
        last = self._last_id
        if last is None:
            return True
        upto = f"{last[0]}-{last[1]}"
        self._ensure_group()
        groups = self._call("xinfo_groups", self.client.xinfo_groups, self.stream)
        return self._acked(
            groups,
            self._call("xpending_range", self.client.xpending_range, self.stream, self.group, "-", upto, 1),
            last,
        )

    async def _aall_acked(self) -> bool:
        last = self._last_id
        if last is None:
            return True
        upto = f"{last[0]}-{last[1]}"
        await self._aensure_group()
        groups = await self._acall("xinfo_groups", self.client.xinfo_groups, self.stream)
        pending = await self._acall("xpending_range", self.client.xpending_range, self.stream, self.group, "-", upto, 1)
        return self._acked(groups, pending, last)

    def _acked(self, groups: Any, pending: Any, last: tuple[int, int]) -> bool:
        if pending:
            return False
        for g in groups:
            name = g.get("name") or g.get(b"name")
            if name in (self.group, self.group.encode()):
                delivered = g.get("last-delivered-id") or g.get(b"last-delivered-id") or b"0-0"
                return _id_tuple(delivered) >= last
        return False

    def flush(self, timeout: float | None, *, consume: bool) -> bool:
        """Wait until the items held in process reached the stream and the group acknowledged this process's items."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._outbox.unsettled():
            self._start_forwarder()
            if not self._outbox.flush(None if deadline is None else max(0.0, deadline - time.monotonic())):
                return False
        with self._lock:
            self._urgent += 1
        try:
            attempt = 0
            while True:
                try:
                    if self._all_acked():
                        return True
                    attempt = 0
                except StoreUnavailable:
                    attempt += 1
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.01 if attempt == 0 else self._pause(attempt))
        finally:
            with self._lock:
                self._urgent -= 1

    async def aflush(self, timeout: float | None, *, consume: bool) -> bool:  # noqa: ASYNC109 (the twin of flush(timeout))
        """The asyncio twin of :meth:`flush`."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        if self._outbox.unsettled():
            self._astart_forwarder()
            if not await self._outbox.aflush(None if deadline is None else max(0.0, deadline - time.monotonic())):
                return False
        with self._lock:
            self._urgent += 1
        try:
            attempt = 0
            while True:
                try:
                    if await self._aall_acked():
                        return True
                    attempt = 0
                except StoreUnavailable:
                    attempt += 1
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(0.01 if attempt == 0 else self._pause(attempt))
        finally:
            with self._lock:
                self._urgent -= 1

    def close(self) -> None:
        """Forward what is held in process to the stream, then stop consuming and forwarding."""
        if self._outbox.unsettled():
            self._start_forwarder()
        self._outbox.close()
        forwarder = self._forwarder
        if forwarder is not None:
            forwarder.join()
        self._closing = True

    async def aclose(self) -> None:
        """The asyncio twin of :meth:`close`."""
        if self._outbox.unsettled():
            self._astart_forwarder()
        self._outbox.close()
        task = self._aforwarder
        if task is not None:
            await task
        self._closing = True

    def pending(self) -> int:
        """Items held in process plus the stream's unwritten items (its length, as last read)."""
        backlog = self._backlog
        if not self.is_async:
            try:
                backlog = int(self._call("xlen", self.client.xlen, self.stream))
            except StoreUnavailable:
                pass
        return self._outbox.pending() + backlog

    def lag(self, now_wall: float) -> float:
        """Age in seconds of the oldest unwritten item in the stream (as last read)."""
        oldest = self._oldest_ms
        if not self.is_async:
            try:
                first = self._call("xrange", self.client.xrange, self.stream, "-", "+", count=1)
                oldest = _id_ms(first[0][0]) if first else None
            except StoreUnavailable:
                pass
        local = self._outbox.oldest()
        ages = [] if oldest is None else [max(0.0, now_wall - oldest / 1000)]
        if local is not None:
            ages.append(max(0.0, self.clock.monotonic() - local))
        return max(ages, default=0.0)


class _FleetGate:
    """The fleet's rate: one token bucket in Redis (the store's bucket script), on wall time."""

    def __init__(self, queue: RedisStreamQueue, *, rate: float, burst: float) -> None:
        self.queue = queue
        self.rate = rate
        self.burst = burst
        self.key = f"{queue.stream}:rate"

    def take(self, n: int) -> float:
        q = self.queue
        try:
            args = bucket_args(self.rate, self.burst, q.clock.time(), n)
            return float(q._call("bucket", q._bucket, keys=[self.key], args=list(args)))
        except StoreUnavailable:
            return 0.2  # no bucket to read: wait, never write past the fleet's rate

    async def atake(self, n: int) -> float:
        q = self.queue
        try:
            args = bucket_args(self.rate, self.burst, q.clock.time(), n)
            return float(await q._acall("bucket", q._bucket, keys=[self.key], args=list(args)))
        except StoreUnavailable:
            return 0.2


class _StreamSource:
    """Batches from the consumer group: claimed entries first, then new ones; XACK + XDEL to settle."""

    def __init__(self, queue: RedisStreamQueue, consume: bool) -> None:
        self.q = queue
        self.consume = consume
        self._next_claim = 0.0

    def _decode(self, entries: list[tuple[bytes, Any]]) -> tuple[list[Any], list[Any], float | None]:
        q = self.q
        items, ids = [], []
        oldest: float | None = None
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile (written by its first consumer): nothing to do
                q._unacked.append(entry_id)
                continue
            try:
                items.append(q.serializer.loads(fields.get(b"d", fields.get("d"))))
            except Exception as exc:  # an entry nobody can decode would block the group forever
                emit("buffer.decode_error", **q._fields(), error=type(exc).__name__, error_message=str(exc)[:200])
                q._unacked.append(entry_id)
                continue
            ids.append(entry_id)
            ms = _id_ms(entry_id)
            oldest = ms if oldest is None else min(oldest, ms)
        return items, ids, oldest

    def _batch(self, items: list[Any], ids: list[Any], oldest_ms: float | None) -> Taken:
        q = self.q
        age = 0.0 if oldest_ms is None else max(0.0, q.clock.time() - oldest_ms / 1000)
        return Taken(items, q.clock.monotonic() - age, ids)

    def _claim_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_claim:
            return False
        self._next_claim = now + min(self.q.claim_after / 2, 5.0)
        return True

    def _claimed(self, reply: Any) -> list[tuple[bytes, Any]]:
        entries = list(reply[1]) if reply and len(reply) > 1 else []
        if entries:
            emit("buffer.claimed", **self.q._fields(), items=len(entries))
        return entries

    def _answer(self, exc: Exception) -> None:
        """Redis answered with an error: a lost group is made again, anything else is told."""
        if "NOGROUP" in str(exc):
            self.q._group_ready = False
        else:
            emit("buffer.worker_error", **self.q._fields(), error=type(exc).__name__, error_message=str(exc)[:200])

    def _finished(self) -> bool:
        return not self.consume or self.q._closing

    def _read_args(self, count: int, block: float) -> dict[str, Any]:
        q = self.q
        return {
            "groupname": q.group,
            "consumername": q.consumer,
            "streams": {q.stream: ">"},
            "count": count,
            "block": max(1, int(block * 1000)),
        }

    def _cut(self, have: int, first_seen: float) -> float:
        """0 to cut now, else seconds to linger (real time: Redis blocks in real time)."""
        decision = self.q.plan.next(time.monotonic(), have, first_seen, urgent=self.q._urgent > 0)
        return getattr(decision, "seconds", 0.0)

    def take(self) -> Taken | None:
        q, attempt = self.q, 0
        while not self._finished():
            try:
                if q._unacked:
                    self._ack(q._unacked)
                    q._unacked = []
                q._ensure_group()
                entries: list[tuple[bytes, Any]] = []
                if self._claim_due():
                    ms = int(q.claim_after * 1000)
                    reply = q._call(
                        "xautoclaim", q.client.xautoclaim, q.stream, q.group, q.consumer, ms, "0-0", q.plan.batch_size
                    )
                    entries = self._claimed(reply)
                if not entries:
                    entries = _entries(
                        q._call("xreadgroup", q.client.xreadgroup, **self._read_args(q.plan.batch_size, _POLL))
                    )
                    first_seen = time.monotonic()
                    while entries and (wait := self._cut(len(entries), first_seen)) > 0:
                        more = _entries(
                            q._call(
                                "xreadgroup",
                                q.client.xreadgroup,
                                **self._read_args(q.plan.batch_size - len(entries), wait),
                            )
                        )
                        entries.extend(more)
                attempt = 0
                if not entries:
                    q._backlog, q._oldest_ms = 0, None
                    continue
                items, ids, oldest = self._decode(entries)
                if items:
                    q._oldest_ms = oldest
                    return self._batch(items, ids, oldest)
            except StoreUnavailable:
                time.sleep(q._pause(attempt))
                attempt += 1
            except Exception as exc:  # an answer from Redis (NOGROUP after a restart, ...): never stop the worker
                self._answer(exc)
                time.sleep(q._pause(attempt))
                attempt += 1
        return None

    async def atake(self) -> Taken | None:
        import asyncio

        q, attempt = self.q, 0
        while not self._finished():
            try:
                if q._unacked:
                    await self._aack(q._unacked)
                    q._unacked = []
                await q._aensure_group()
                entries: list[tuple[bytes, Any]] = []
                if self._claim_due():
                    ms = int(q.claim_after * 1000)
                    reply = await q._acall(
                        "xautoclaim", q.client.xautoclaim, q.stream, q.group, q.consumer, ms, "0-0", q.plan.batch_size
                    )
                    entries = self._claimed(reply)
                if not entries:
                    args = self._read_args(q.plan.batch_size, _POLL)
                    entries = _entries(await q._acall("xreadgroup", q.client.xreadgroup, **args))
                    first_seen = time.monotonic()
                    while entries and (wait := self._cut(len(entries), first_seen)) > 0:
                        args = self._read_args(q.plan.batch_size - len(entries), wait)
                        entries.extend(_entries(await q._acall("xreadgroup", q.client.xreadgroup, **args)))
                attempt = 0
                if not entries:
                    q._backlog, q._oldest_ms = 0, None
                    continue
                items, ids, oldest = self._decode(entries)
                if items:
                    q._oldest_ms = oldest
                    return self._batch(items, ids, oldest)
            except StoreUnavailable:
                await asyncio.sleep(q._pause(attempt))
                attempt += 1
            except Exception as exc:
                self._answer(exc)
                await asyncio.sleep(q._pause(attempt))
                attempt += 1
        return None

    def _ack(self, ids: list[Any]) -> None:
        q = self.q
        pipe = q.client.pipeline(transaction=True)
        pipe.xack(q.stream, q.group, *ids)
        pipe.xdel(q.stream, *ids)
        q._call("xack", pipe.execute)

    async def _aack(self, ids: list[Any]) -> None:
        q = self.q
        pipe = q.client.pipeline(transaction=True)
        pipe.xack(q.stream, q.group, *ids)
        pipe.xdel(q.stream, *ids)
        await q._acall("xack", pipe.execute)

    def settle(self, batch: Taken) -> None:
        """XACK + XDEL the batch (written or dead-lettered); kept for later if Redis is down."""
        try:
            self._ack(batch.ids)
        except StoreUnavailable:
            self.q._unacked.extend(batch.ids)

    async def asettle(self, batch: Taken) -> None:
        try:
            await self._aack(batch.ids)
        except StoreUnavailable:
            self.q._unacked.extend(batch.ids)
