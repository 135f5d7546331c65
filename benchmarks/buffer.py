"""WriteBuffer against the bare primitives it stands on.

Run: ``python -m benchmarks.buffer`` (starts its own redis-server on a free loopback port).

1. ``put`` in process (a drain thread writing to a no-op sink) beside a bare
   ``queue.Queue.put`` with a consumer thread doing ``get``: ns per put.
2. ``put`` on Redis Streams (``consume=False``: one XADD) beside a bare redis-py
   ``XADD`` of the same JSON: median microseconds, taking turns.
3. Sustained drain throughput: a stream pre-filled with 20,000 items drained by
   a WriteBuffer consumer (batches of 100, no rate) beside a bare loop of
   ``XREADGROUP COUNT 100`` + ``XACK`` + ``XDEL``: items per second.
"""

from __future__ import annotations

import json
import queue
import statistics
import threading
import time
from typing import Any

import redis

import resilient as rs

from ._util import quiet
from .redis import start_server

PUTS, REDIS_PUTS, DRAIN = 200_000, 3_000, 20_000


def put_in_process() -> tuple[float, float]:
    """(ns per WriteBuffer.put, ns per queue.Queue.put), both with a consumer thread draining."""
    buffer = rs.WriteBuffer(lambda items: None, max_pending=PUTS + 1, linger=0.001)
    t0 = time.perf_counter_ns()
    for i in range(PUTS):
        buffer.put(i)
    ours = (time.perf_counter_ns() - t0) / PUTS
    buffer.close()

    q: queue.Queue[Any] = queue.Queue()

    def consume() -> None:
        while q.get() is not None:
            pass

    thread = threading.Thread(target=consume)
    thread.start()
    t0 = time.perf_counter_ns()
    for i in range(PUTS):
        q.put(i)
    bare = (time.perf_counter_ns() - t0) / PUTS
    q.put(None)
    thread.join()
    return ours, bare


def put_on_redis(client: redis.Redis) -> tuple[float, float]:
    """(median us of WriteBuffer.put on a stream, median us of a bare XADD), taking turns."""
    buffer = rs.WriteBuffer(lambda items: None, queue=rs.RedisStreamQueue(client, stream="bench:put"), consume=False)
    ours: list[float] = []
    bare: list[float] = []
    clock = time.perf_counter
    for i in range(REDIS_PUTS):
        item = {"id": i, "user": "celebrity", "text": "hello"}
        t0 = clock()
        buffer.put(item)
        t1 = clock()
        client.xadd("bench:bare", {"d": json.dumps(item, separators=(",", ":")).encode()})
        t2 = clock()
        ours.append(t1 - t0)
        bare.append(t2 - t1)
    buffer.close()
    client.delete("bench:put", "bench:bare")
    return statistics.median(ours) * 1e6, statistics.median(bare) * 1e6


def fill(client: redis.Redis, stream: str) -> None:
    client.delete(stream)
    client.xgroup_create(stream, "resilient", id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for i in range(DRAIN):
        pipe.xadd(stream, {"d": b'{"id":%d}' % i})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def drain_ours(client: redis.Redis) -> float:
    fill(client, "bench:drain")
    done = threading.Event()
    seen = 0

    def write(items: list[Any]) -> None:
        nonlocal seen
        seen += len(items)
        if seen >= DRAIN:
            done.set()

    t0 = time.perf_counter()
    buffer = rs.WriteBuffer(write, queue=rs.RedisStreamQueue(client, stream="bench:drain"), batch_size=100)
    done.wait(120)
    elapsed = time.perf_counter() - t0
    buffer.close()
    return DRAIN / elapsed


def drain_bare(client: redis.Redis) -> float:
    stream = "bench:drain"
    fill(client, stream)
    seen = 0
    t0 = time.perf_counter()
    while seen < DRAIN:
        reply: Any = client.xreadgroup("resilient", "bare", {stream: ">"}, count=100, block=100)
        ids = [entry_id for _, entries in reply for entry_id, fields in entries if json.loads(fields[b"d"]) is not None]
        if not ids:
            continue
        pipe = client.pipeline(transaction=True)
        pipe.xack(stream, "resilient", *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
        seen += len(ids)
    return DRAIN / (time.perf_counter() - t0)


def main() -> None:
    quiet()
    ours, bare = put_in_process()
    print("\n1. put in process (ns per put, with a consumer draining)")
    print(f"  {'rs.WriteBuffer.put':40} {ours:10.0f} ns  {ours / bare:6.2f}x queue.Queue.put")
    print(f"  {'queue.Queue.put':40} {bare:10.0f} ns  {1.0:6.2f}x")
    proc, port, _ = start_server()
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        ours_us, bare_us = put_on_redis(client)
        print("\n2. put on Redis Streams (median us per put)")
        print(f"  {'rs.WriteBuffer.put (RedisStreamQueue)':40} {ours_us:10.1f} us  {ours_us / bare_us:6.2f}x bare XADD")
        print(f"  {'bare redis-py XADD':40} {bare_us:10.1f} us  {1.0:6.2f}x")
        ours_rate, bare_rate = drain_ours(client), drain_bare(client)
        print(f"\n3. sustained drain of {DRAIN:,} items (items/s, batches of 100)")
        print(f"  {'rs.WriteBuffer consumer':40} {ours_rate:10,.0f} /s  {ours_rate / bare_rate:6.2f}x bare loop")
        print(f"  {'bare XREADGROUP + XACK + XDEL loop':40} {bare_rate:10,.0f} /s  {1.0:6.2f}x")
    finally:
        client.close()
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
