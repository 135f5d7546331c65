"""WriteBuffer on Redis Streams, against a real redis-server: a fleet, a crash, a dead server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

import resilient as rs
from resilient.lab.vloop import quiet_logs

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, retry=SyncRetry(NoBackoff(), 0), socket_timeout=2, socket_connect_timeout=1)


def async_client(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), socket_timeout=2)


class Sink:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[Any]) -> None:
        with self.lock:
            self.items.extend(items)


def wait_for(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)  # polling child processes / a real server, not test logic
    return False


def test_in_one_process_items_are_written_once_in_order(redis_url: str) -> None:
    """Put 2,000 items through the stream and back: each written once, in order, JSON in the stream."""
    client = sync_client(redis_url)
    sink = Sink()
    try:
        with quiet_logs():
            queue = rs.RedisStreamQueue(client, stream="once")
            buffer = rs.WriteBuffer(sink, queue=queue, batch_size=50)
            for i in range(2_000):
                buffer.put({"n": i})
            assert buffer.flush(timeout=30)
            buffer.close()
        assert sink.items == [{"n": i} for i in range(2_000)]
        assert client.xlen("once") == 0  # written entries are acknowledged and deleted
        stats = buffer.stats()
        assert stats["written"] == 2_000 and stats["pending"] == 0
    finally:
        client.close()


def test_items_are_json_in_the_stream_and_wait_for_a_consumer(redis_url: str) -> None:
    """A producer-only buffer XADDs JSON; a consumer started later (group at the stream's start) writes them."""
    client = sync_client(redis_url)
    sink = Sink()
    try:
        with quiet_logs():
            producer = rs.WriteBuffer(
                lambda items: None, queue=rs.RedisStreamQueue(client, stream="late"), consume=False
            )
            for i in range(30):
                producer.put([i, "x"])
            producer.close()
            first: Any = client.xrange("late", count=1)
            assert json.loads(first[0][1][b"d"]) == [0, "x"]
            consumer = rs.WriteBuffer(sink, queue=rs.RedisStreamQueue(client, stream="late"))
            assert wait_for(lambda: len(sink.items) == 30, 30)
            consumer.close()
        assert sink.items == [[i, "x"] for i in range(30)]
    finally:
        client.close()


def test_maxlen_refuses_rather_than_trims(redis_url: str) -> None:
    """With maxlen=10 and no consumer, the 11th put raises BufferFullError and the 10 stay in the stream."""
    client = sync_client(redis_url)
    try:
        queue = rs.RedisStreamQueue(client, stream="bounded", maxlen=10)
        buffer = rs.WriteBuffer(lambda items: None, queue=queue, consume=False)
        with quiet_logs():
            for i in range(10):
                buffer.put(i)
            with pytest.raises(rs.BufferFullError):
                buffer.put(10)
        assert client.xlen("bounded") == 10
        assert buffer.stats()["rejected"] == 1 and buffer.stats()["pending"] == 10
    finally:
        client.close()


async def test_the_async_twin_on_a_redis_asyncio_client(redis_url: str) -> None:
    """aput through a redis.asyncio client: a task drains the stream, each item once, in order."""
    client = async_client(redis_url)
    written: list[Any] = []

    async def write(items: list[Any]) -> None:
        written.extend(items)

    try:
        with quiet_logs():
            buffer = rs.WriteBuffer(
                write, queue=rs.RedisStreamQueue(client, stream="async"), rate=5_000, batch_size=100
            )
            for i in range(500):
                await buffer.aput(i)
            assert await buffer.aflush(timeout=30)
            await buffer.aclose()
        assert written == list(range(500))
    finally:
        await client.aclose()


def test_redis_stopped_put_raises_and_nothing_accepted_is_lost(redis_server: Any, redis_url: str) -> None:
    """Default on_store_error: with Redis down put raises StoreUnavailable; every accepted item is written."""
    client = sync_client(redis_url)
    sink = Sink()
    accepted: list[int] = []
    try:
        with quiet_logs():
            buffer = rs.WriteBuffer(sink, queue=rs.RedisStreamQueue(client, stream="down"), batch_size=20)
            for i in range(100):
                buffer.put(i)
                accepted.append(i)
            assert buffer.flush(timeout=30)
            redis_server.stop()
            refused = 0
            for i in range(100, 150):
                try:
                    buffer.put(i)
                    accepted.append(i)
                except rs.StoreUnavailable:
                    refused += 1
            assert refused == 50
            redis_server.start()
            for i in range(150, 250):  # the queue's breaker probes Redis again within 0.5 s
                try:
                    buffer.put(i)
                    accepted.append(i)
                except rs.StoreUnavailable:
                    time.sleep(0.05)  # waiting for a real server's breaker probe, not for test logic
            assert len(accepted) > 150
            assert buffer.flush(timeout=30)
            buffer.close()
        assert sorted(set(sink.items)) == accepted
    finally:
        redis_server.start()
        client.close()


def test_redis_stopped_local_mode_buffers_and_forwards_when_back(redis_server: Any, redis_url: str) -> None:
    """on_store_error="local": puts succeed while Redis is down, and reach the stream (and the sink) once it is back."""
    client = sync_client(redis_url)
    sink = Sink()
    try:
        with quiet_logs():
            buffer = rs.WriteBuffer(
                sink, queue=rs.RedisStreamQueue(client, stream="local"), batch_size=20, on_store_error="local"
            )
            buffer.put(-1)
            assert buffer.flush(timeout=30)
            redis_server.stop()
            for i in range(100):
                buffer.put(i)
            assert buffer.stats()["pending"] >= 100
            redis_server.start()
            assert buffer.flush(timeout=30)
            buffer.close()
        assert sink.items == [-1, *range(100)]
    finally:
        redis_server.start()
        client.close()


@pytest.mark.slow
def test_a_fleet_of_4_producers_and_2_consumers_survives_a_killed_consumer(redis_url: str) -> None:
    """4 producers x 5,000, 2 consumers, one SIGKILLed mid-batch: none lost, duplicates only its batch, rate held."""
    rate, batch, producers, per = 1_000.0, 100, 4, 5_000  # a rate below what 4 producers put: it binds
    stream = "fleet"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "tests.buffer.stream_worker", redis_url]
    procs: list[subprocess.Popen[str]] = []
    client = sync_client(redis_url)
    try:

        def start(*args: str) -> subprocess.Popen[str]:
            p = subprocess.Popen([*base, *args], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
            procs.append(p)
            return p

        steady = start("consume", stream, "steady", repr(rate), str(batch), "0")
        victim = start("consume", stream, "victim", repr(rate), str(batch), "3")
        for p in (steady, victim):
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        makers = [start("produce", stream, str(i), str(per)) for i in range(producers)]
        assert wait_for(lambda: client.exists(f"{stream}:hung"), 90), "the victim never reached its third batch"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        for p in makers:
            assert p.wait(120) == 0
        total = producers * per

        def written() -> list[list[Any]]:
            return [json.loads(x) for x in client.lrange(f"{stream}:written", 0, -1)]

        assert wait_for(lambda: len({(p, s) for p, s, *_ in written()}) == total, 90), "items were lost"
        client.set(f"{stream}:stop", 1)
        assert steady.wait(30) == 0
        rows = written()
        counts = Counter((p, s) for p, s, *_ in rows)
        assert set(counts) == {(p, s) for p in range(producers) for s in range(per)}  # none lost
        hung = {tuple(x) for x in json.loads(client.get(f"{stream}:hung") or b"[]")}
        duplicates = {k for k, n in counts.items() if n > 1}
        assert duplicates <= hung and len(hung) <= batch  # only the killed batch, at most batch_size
        assert all(n <= 2 for n in counts.values())
        times = sorted(t for *_, t in rows)
        t0 = times[0]
        worst = max(i + 1 - (rate * (t - t0) + batch) for i, t in enumerate(times))
        span = times[-1] - t0
        print(
            f"fleet: {len(rows):,} writes, {len(duplicates)} duplicates (killed batch {len(hung)}),"
            f" {len(rows) / max(span, 1e-9):,.0f} items/s over {span:.2f} s, worst excess over rate*t+batch {worst:.0f}"
        )
        assert worst <= rate * 0.05  # within rate*t + batch_size (50 ms of clock slack between processes)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        client.close()
