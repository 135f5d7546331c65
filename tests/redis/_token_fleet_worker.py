"""One process of the token fleet test: a TokenProvider on a RedisStore, driven line by line.

Run as ``python -m tests.redis._token_fleet_worker URL INDEX``. Commands on
stdin: ``cold`` (note arrival in ``fleet:entered``, then get), ``get``, ``quit``;
each get answers one JSON line ``{"value": ...}`` on stdout once any background
refresh it started has finished. Wall time is the test's (``fleet:now`` in
Redis), so the four processes agree on it and the test moves it; waits are real.
Fetches are counted in Redis (``fleet:fetches``, ``fleet:fetched``); the first
one is held until the test pushes ``fleet:release``, so the others arrive while
it runs.
"""

from __future__ import annotations

import json
import sys

import redis
import structlog

import resilient as rs

LIFE = 3600.0


class SharedClock(rs.Clock):
    """``time()`` is the fleet's wall time set by the test; monotonic time and sleeps are real."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def time(self) -> float:
        return float(self.client.get("fleet:now") or 0.0)


def main(url: str, index: int) -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is the protocol
    client = redis.Redis.from_url(url, socket_timeout=70)  # above the longest BLPOP below: a loaded machine is slow
    clock = SharedClock(client)

    def fetch() -> rs.Token:
        n = int(client.incr("fleet:fetches"))
        at = clock.time()
        client.rpush("fleet:fetched", json.dumps({"n": n, "at": at, "by": index}))
        if n == 1:
            client.blpop(["fleet:release"], timeout=60)
        return rs.Token(f"t{n}", at + LIFE)

    store = rs.RedisStore(redis.Redis.from_url(url, socket_timeout=5), prefix="fleet-test:")
    provider = rs.TokenProvider(
        fetch, store=store, key="api", clock=clock, refresh_before=60, refresh_jitter=0.5, lease_ttl=10
    )
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "cold":
                client.rpush("fleet:entered", index)
            value = provider.get()
            provider.close()
            sys.stdout.write(json.dumps({"value": value}) + "\n")
            sys.stdout.flush()
    finally:
        provider.close()
        client.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
