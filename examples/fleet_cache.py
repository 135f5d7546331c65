"""A cache shared by a fleet: 3 processes x 10 threads on one cold key make ONE origin call.

Each process builds the same ``rs.Cache`` over a ``rs.RedisStore``. On a miss,
one caller in the whole fleet gets the key's lease (a Lua ``SET NX PX``) and
calls the origin; everyone else waits for its value, polling with jitter. A hit
is then a single Redis GET.

Run: ``python examples/fleet_cache.py [REDIS_URL]`` (default: ``$RESILIENT_REDIS_URL``
or ``redis://127.0.0.1:6379/0``). Without a Redis there, it says so and exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import redis

import resilient as rs

PROCESSES, THREADS = 3, 10


def member(url: str, prefix: str) -> None:
    """One process of the fleet: THREADS callers at once, then print the origin calls made here."""
    calls = 0
    lock = threading.Lock()
    store = rs.RedisStore.from_url(url, prefix=prefix)
    cache = rs.Cache(ttl=60, lock_ttl=5, store=store, key="report:{report_id}")

    @cache
    def build_report(report_id: int) -> dict[str, object]:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.2)  # a slow origin
        return {"id": report_id, "built_by": os.getpid()}

    sys.stdin.readline()  # start with the others
    threads = [threading.Thread(target=build_report, args=(42,)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(calls, build_report(42)["built_by"], flush=True)
    store.close()


def main(url: str) -> int:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        print(f"skipped: no Redis answers at {url}")
        return 0
    prefix = f"example-{os.getpid()}:"
    cmd = [sys.executable, __file__, "--member", url, prefix]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    fleet = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(PROCESSES)
    ]
    for p in fleet:  # all started: let them go at once
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    answers = [p.communicate(timeout=60)[0].split() for p in fleet]
    origin_calls = sum(int(a[0]) for a in answers)
    builders = {a[1] for a in answers}
    print(f"{PROCESSES} processes x {THREADS} threads on one cold key: origin calls: {origin_calls}")
    if len(builders) == 1:
        print(f"every caller got the report built by process {builders.pop()}")
    else:
        print(f"callers got reports built by processes {sorted(builders)}")
    client = redis.Redis.from_url(url)
    for name in client.scan_iter(match=f"{prefix}*"):  # tidy up what the example wrote
        client.delete(name)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--member":
        member(sys.argv[2], sys.argv[3])
    else:
        default = os.environ.get("RESILIENT_REDIS_URL", "redis://127.0.0.1:6379/0")
        sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else default))
