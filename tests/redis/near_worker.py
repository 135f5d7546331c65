"""A fleet member with a near cache, for the near-cache tests (and the benchmark).

``python -m tests.redis.near_worker URL MODE`` builds ``RedisStore(..., near=NearCache())``,
waits until its channel is subscribed, prints ``ready``, then:

* ``herd`` / ``aherd`` (``herd-poll`` / ``aherd-poll``: without a near cache): waits
  for a line on stdin; 25 threads (or 25 asyncio tasks)
  call the cached function of one cold key at once (the origin, simulated here,
  takes 0.3 s); prints ``{"calls", "values", "latencies", "finished", "origin",
  "commands", "notified"}`` where ``finished`` are the callers' wall end times,
  ``origin`` the wall times the origin call began and ended (if here),
  ``commands`` counts the commands this process sent (pub/sub excluded) and
  ``notified`` the waits that a notification could end.
* ``serve``: answers JSON lines on stdin, one JSON line each on stdout:
  ``{"op": "read", "key"}`` → ``{"value", "near"}`` (``near``: served from the copy);
  ``{"op": "arm", "key"}`` → a waiter on the key's next message;
  ``{"op": "woken"}`` → ``{"woken", "at", "held"}`` (wall time when woken; whether a copy is still held);
  ``{"op": "write", "key", "value"}`` / ``{"op": "invalidate", "key"}`` → ``{"at"}`` (wall time it returned);
  ``{"op": "quit"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import warnings
from typing import Any

import redis
import redis.asyncio
import structlog

import resilient as rs
from resilient.stores.base import Entry
from resilient.testing import capture_events

ORIGIN_SECONDS = 0.3
CALLERS = 25


class CountingRedis(redis.Redis):
    """A sync client that counts the commands it sends."""

    sent = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        type(self).sent += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


class CountingAsyncRedis(redis.asyncio.Redis):
    """An asyncio client that counts the commands it sends."""

    sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        type(self).sent += 1
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def herd(url: str, near: bool = True) -> None:
    client = CountingRedis.from_url(url)
    store = rs.RedisStore(client, near=rs.NearCache() if near else None)
    assert not near or (store.near is not None and store.near.wait_live(10))
    warm = [threading.Thread(target=client.ping) for _ in range(CALLERS)]  # a running process has its pool
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    calls, lock = 0, threading.Lock()
    window: list[float] = []

    def origin() -> str:
        nonlocal calls
        with lock:
            calls += 1
        window.append(time.time())
        time.sleep(ORIGIN_SECONDS)  # the simulated origin's latency
        window.append(time.time())
        return f"value-from-{threading.get_native_id()}"

    cache = rs.Cache(ttl=60, lock_ttl=5, store=store, key=lambda: "cold")
    cached = cache(origin)
    go = threading.Barrier(CALLERS + 1)
    results: list[Any] = [None] * CALLERS

    def caller(i: int) -> None:
        go.wait()
        t0 = time.perf_counter()
        try:
            value: object = cached()
        except Exception as exc:
            value = f"error: {exc!r}"
        results[i] = (str(value), time.perf_counter() - t0, time.time())

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(CALLERS)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.readline()
    with capture_events() as events:
        CountingRedis.sent = 0
        go.wait()
        for t in threads:
            t.join(30)
    report(calls, results, CountingRedis.sent, events, window)
    store.close()


def aherd(url: str, near: bool = True) -> None:
    async def run() -> None:
        aclient = CountingAsyncRedis.from_url(url)
        store = rs.RedisStore(aclient, near=rs.NearCache() if near else None)
        assert not near or (store.near is not None and store.near.wait_live(10))
        await asyncio.gather(*(aclient.ping() for _ in range(CALLERS)))  # a running process has its pool
        calls = 0
        window: list[float] = []

        async def origin() -> str:
            nonlocal calls
            calls += 1
            window.append(time.time())
            await asyncio.sleep(ORIGIN_SECONDS)  # the simulated origin's latency
            window.append(time.time())
            return f"value-from-{id(asyncio.current_task())}"

        cache = rs.Cache(ttl=60, lock_ttl=5, store=store, key=lambda: "cold")
        cached = cache(origin)

        async def caller() -> tuple[str, float, float]:
            t0 = time.perf_counter()
            try:
                value: object = await cached()
            except Exception as exc:
                value = f"error: {exc!r}"
            return str(value), time.perf_counter() - t0, time.time()

        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        with capture_events() as events:
            CountingAsyncRedis.sent = 0
            results = await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(CALLERS))), 30)
        report(calls, list(results), CountingAsyncRedis.sent, events, window)
        await cache.aclose()
        await store.aclose()

    asyncio.run(run())


def report(calls: int, results: list[Any], sent: int, events: list[dict[str, Any]], window: list[float]) -> None:
    notified = sum(1 for e in events if e["event"] == "cache.waiting" and e.get("notified"))
    out = {
        "calls": calls,
        "values": [r[0] for r in results],
        "latencies": [r[1] for r in results],
        "finished": [r[2] for r in results],
        "origin": window,
        "commands": sent,
        "notified": notified,
    }
    print(json.dumps(out), flush=True)


def serve(url: str) -> None:
    store = rs.RedisStore(redis.Redis.from_url(url), near=rs.NearCache())
    near = store.near
    assert near is not None and near.wait_live(10)
    watching: threading.Thread | None = None
    woke_at: list[float] = []
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        answer: dict[str, Any] = {}
        if op == "quit":
            break
        if op == "read":
            held = store.near_get(cmd["key"]) is not None
            entry = store.get(cmd["key"])
            answer = {"value": None if entry is None else entry.value, "near": held}
        elif op == "arm":
            waiter = store.watch(cmd["key"])
            answer = {"armed": waiter is not None}
            if waiter is not None:
                woke_at.clear()
                watching = threading.Thread(target=watch, args=(waiter, woke_at), daemon=True)
                watching.start()
        elif op == "woken":
            if watching is not None:
                watching.join(15)
            watching = None
            at = woke_at[0] if woke_at else None
            answer = {"woken": at is not None, "at": at, "held": store.near_get(cmd["key"]) is not None}
        elif op == "write":
            now = time.time()
            store.set(cmd["key"], Entry(cmd["value"], now + 60, now + 120), now=now)
            answer = {"at": time.time()}
        elif op == "invalidate":
            store.invalidate(cmd["key"])
            answer = {"at": time.time()}
        print(json.dumps(answer), flush=True)
    store.close()


def watch(waiter: Any, woke_at: list[float]) -> None:
    """Note the wall time the waiter is woken (the key's copy is dropped just before)."""
    if waiter.wait(10):
        woke_at.append(time.time())
    waiter.close()


def main() -> None:
    # The counting clients are plain redis-py ones (no socket timeouts): the store's advice
    # about them is not what this worker measures.
    warnings.filterwarnings("ignore", message=r"RedisStore\(timeout=", category=RuntimeWarning)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # quiet
    url, mode = sys.argv[1], sys.argv[2]
    if mode.endswith("-poll"):  # the same herd without a near cache: waiters poll
        {"herd-poll": herd, "aherd-poll": aherd}[mode](url, near=False)
    else:
        {"herd": herd, "aherd": aherd, "serve": serve}[mode](url)


if __name__ == "__main__":
    main()
