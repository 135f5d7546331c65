"""Absorb a write spike: 5,000 writes at once, fed to a "database" at 1,000 rows a second.

First in process (a drain thread), then on Redis Streams (the fleet form: any
process may put, consumers feed the database at one fleet-wide rate, and an
item survives the crash of the process that put it).

Run: ``python examples/write_buffer.py [REDIS_URL]`` (default: ``$RESILIENT_REDIS_URL``
or ``redis://127.0.0.1:6379/0``). Without a Redis there, the second part says so and is skipped.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from typing import Any

import redis
import structlog

import resilient as rs

SPIKE, RATE, BATCH = 5_000, 1_000.0, 100


class Database:
    """Counts rows and remembers the busiest second it saw."""

    def __init__(self) -> None:
        self.rows = 0
        self.per_second: dict[int, int] = {}
        self.lock = threading.Lock()

    def insert_many(self, rows: list[Any]) -> None:
        with self.lock:
            self.rows += len(rows)
            second = int(time.monotonic())
            self.per_second[second] = self.per_second.get(second, 0) + len(rows)


def in_process() -> None:
    db = Database()
    started = time.monotonic()
    with rs.WriteBuffer(db.insert_many, rate=RATE, batch_size=BATCH, max_pending=SPIKE) as buffer:
        for i in range(SPIKE):
            buffer.put({"follower": i, "post": 42})  # returns at once
        put_done = time.monotonic() - started
        print(f"in process: {SPIKE:,} puts took {put_done * 1000:.0f} ms; pending {buffer.stats()['pending']:,}")
    # leaving the block closed the buffer: flushed, nothing lost
    stats = buffer.stats()
    print(
        f"in process: written {stats['written']:,} in {stats['batches']} batches,"
        f" lost {SPIKE - db.rows}, in {time.monotonic() - started:.1f} s"
        f" (busiest second {max(db.per_second.values()):,} rows, rate {RATE:,.0f}/s)"
    )


def on_redis(url: str) -> int:
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=0.5)
        client.ping()
    except redis.RedisError:
        print(f"redis: skipped, no Redis answers at {url}")
        return 0
    stream = f"example:writes:{secrets.token_hex(4)}"
    db = Database()
    try:
        # A producer-only buffer (a web process) and a consumer (a worker process); here, both in one.
        producer = rs.WriteBuffer(db.insert_many, queue=rs.RedisStreamQueue(client, stream=stream), consume=False)
        for i in range(SPIKE):
            producer.put({"follower": i, "post": 42})  # one XADD each; JSON in the stream
        producer.close()
        print(f"redis: {SPIKE:,} items in the stream {stream!r}: {client.xlen(stream):,} waiting")
        consumer = rs.WriteBuffer(
            db.insert_many, queue=rs.RedisStreamQueue(client, stream=stream), rate=RATE, batch_size=BATCH
        )
        deadline = time.monotonic() + 60
        while db.rows < SPIKE and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer.close()
        print(f"redis: written {db.rows:,}, lost {SPIKE - db.rows}, left in the stream {client.xlen(stream)}")
    finally:
        client.delete(stream, f"{stream}:rate")
        client.close()
    return 0 if db.rows == SPIKE else 1


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # quiet
    in_process()
    default = os.environ.get("RESILIENT_REDIS_URL", "redis://127.0.0.1:6379/0")
    return on_redis(sys.argv[1] if len(sys.argv) > 1 else default)


if __name__ == "__main__":
    sys.exit(main())
