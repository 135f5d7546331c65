"""A fleet member for the end-to-end tests: one process, many threads, one rs.Cache on Redis.

``python -m tests.redis.fleet_worker URL MODE LOCK_TTL`` prints ``ready``, waits for a
line on stdin, then:

* ``herd``: 25 threads call the cached function of one cold key at once (the
  origin takes 0.3 s); prints ``{"calls": n, "values": [...]}``.
* ``hold``: one call whose origin never returns, after printing ``fetching``
  (the test SIGKILLs this process while it holds the lease).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import redis
import structlog

import resilient as rs

ORIGIN_SECONDS = 0.3
CALLERS = 25


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # quiet
    url, mode, lock_ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    calls = 0
    lock = threading.Lock()

    def origin() -> str:
        nonlocal calls
        with lock:
            calls += 1
        if mode == "hold":
            print("fetching", flush=True)
            threading.Event().wait()  # never returns: the test kills us here
        else:
            time.sleep(ORIGIN_SECONDS)  # the origin's latency is the scenario
        return f"value-from-{threading.get_native_id()}"

    cache = rs.Cache(ttl=60, lock_ttl=lock_ttl, store=rs.RedisStore(redis.Redis.from_url(url)), key=lambda: "cold")
    cached = cache(origin)
    go = threading.Event()
    results: list[object] = [None] * CALLERS

    def caller(i: int) -> None:
        go.wait()
        try:
            results[i] = cached()
        except Exception as exc:
            results[i] = f"error: {exc!r}"

    n = 1 if mode == "hold" else CALLERS
    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for t in threads:
        t.join(30)
    print(json.dumps({"calls": calls, "values": [str(v) for v in results[:n]]}), flush=True)


if __name__ == "__main__":
    main()
