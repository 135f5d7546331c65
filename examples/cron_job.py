"""An hourly job on every server of a fleet, run once per hour, its start spread over a minute.

Each server's cron fires at the top of the hour. rs.Spread starts the job at a
random moment of the next ``window`` seconds; rs.OncePer lets the first server
to wake run it and hands the others None at once. With a Redis URL the period is
claimed fleet-wide (``RedisStore``); without one, this demo's "servers" are
threads of one process sharing an in-process store.

Run: python examples/cron_job.py [redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import logging
import sys
import threading

import structlog

import resilient as rs

# resilient tells every decision to structlog at debug level; show warnings only.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

runs: list[str] = []


def make_store() -> rs.MemoryStore | rs.RedisStore:
    if len(sys.argv) > 1:
        return rs.RedisStore.from_url(sys.argv[1])
    return rs.MemoryStore()


store = make_store()
hourly = rs.pipeline(
    rs.Spread(0.2),  # a minute or so in production; 0.2 s so the demo runs in a blink
    rs.OncePer(3600, store=store, key="hourly-report"),
)


@hourly
def send_hourly_report(server: str) -> str:
    runs.append(server)
    return f"report sent by {server}"


def main() -> None:
    results: list[str | None] = [None] * 20

    def server(i: int) -> None:
        results[i] = send_hourly_report(f"server-{i}")

    threads = [threading.Thread(target=server, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"20 servers fired; the job ran {len(runs)} time(s): {[r for r in results if r]}")
    print(f"{results.count(None)} servers got None (the hour is taken)")
    print(hourly.stats())


if __name__ == "__main__":
    main()
