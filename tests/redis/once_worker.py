"""A fleet member for the OncePer tests: one process, 25 threads, one job under rs.OncePer on Redis.

``python -m tests.redis.once_worker URL MODE WALL LEASE_TTL`` prints ``ready``, waits for a
line on stdin, then:

* ``herd``: 25 threads call the job at once (wall clock fixed at ``WALL``, so the
  test chooses the period); prints ``{"runs": n, "results": [...]}``.
* ``hold``: one call whose job never returns, after printing ``running``
  (the test SIGKILLs this process while it holds the period's lease).
"""

from __future__ import annotations

import json
import logging
import sys
import threading

import redis
import structlog

import resilient as rs

CALLERS = 25
PERIOD = 3600.0


class FixedWall(rs.Clock):
    """The system clock, except that the wall clock reads what the test chose."""

    __slots__ = ("wall",)

    def __init__(self, wall: float) -> None:
        self.wall = wall

    def time(self) -> float:
        return self.wall


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # quiet
    url, mode, wall, lease_ttl = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    runs = 0
    lock = threading.Lock()
    store = rs.RedisStore(redis.Redis.from_url(url, socket_timeout=5))

    @rs.OncePer(PERIOD, store=store, key="nightly-report", lease_ttl=lease_ttl, clock=FixedWall(wall))
    def job() -> str:
        nonlocal runs
        with lock:
            runs += 1
        if mode == "hold":
            print("running", flush=True)
            threading.Event().wait()  # never returns: the test kills us here
        return f"ran-in-{threading.get_native_id()}"

    go = threading.Event()
    n = 1 if mode == "hold" else CALLERS
    results: list[object] = [None] * n

    def caller(i: int) -> None:
        go.wait()
        try:
            results[i] = job()
        except Exception as exc:
            results[i] = f"error: {exc!r}"

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for t in threads:
        t.join(30)
    print(json.dumps({"runs": runs, "results": results}), flush=True)


if __name__ == "__main__":
    main()
