"""A fleet member for the Redis Streams test: a producer or a consumer of one stream, one process.

``python -m tests.buffer.stream_worker URL produce STREAM P N`` puts ``[P, 0..N-1]``
(``consume=False``), waits until they are in the stream, exits.

``python -m tests.buffer.stream_worker URL consume STREAM NAME RATE BATCH HANG_AT``
drains the stream at RATE items/s (fleet-wide) into the Redis list ``STREAM:written``
(one JSON ``[p, seq, NAME, time]`` per item) until the key ``STREAM:stop`` exists.
With HANG_AT > 0 its HANG_AT-th batch is recorded, the key ``STREAM:hung`` set to the
batch, and the write then never returns (the test SIGKILLs it there: mid-batch,
written but not acknowledged).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

import redis
import structlog

import resilient as rs


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def produce(url: str, stream: str, p: int, n: int) -> None:
    r = client(url)
    buffer = rs.WriteBuffer(lambda items: None, queue=rs.RedisStreamQueue(r, stream=stream), consume=False)
    for seq in range(n):
        buffer.put([p, seq])
    buffer.close()
    print("done", flush=True)


def consume(url: str, stream: str, name: str, rate: float, batch: int, hang_at: int) -> None:
    r = client(url)
    sink = client(url)
    batches = 0
    never = threading.Event()

    def write(items: list[Any]) -> None:
        nonlocal batches
        batches += 1
        now = time.time()
        sink.rpush(f"{stream}:written", *(json.dumps([p, seq, name, now]) for p, seq in items))
        if batches == hang_at:
            sink.set(f"{stream}:hung", json.dumps(items))
            never.wait()  # SIGKILLed here: written, never acknowledged

    queue = rs.RedisStreamQueue(r, stream=stream, consumer=name, claim_after=1.0)
    buffer = rs.WriteBuffer(write, queue=queue, rate=rate, batch_size=batch, linger=0.01)
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    while not sink.exists(f"{stream}:stop") and time.monotonic() < deadline:
        time.sleep(0.05)  # a child process polling for the test's stop signal
    buffer.close()
    print("done", flush=True)


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # quiet
    url, role, stream, *rest = sys.argv[1:]
    if role == "produce":
        produce(url, stream, int(rest[0]), int(rest[1]))
    else:
        consume(url, stream, rest[0], float(rest[1]), int(rest[2]), int(rest[3]))


if __name__ == "__main__":
    main()
