"""A CircuitBreaker sharing its state through Redis, with Redis down: no error, no stall, no stderr, resync."""

from __future__ import annotations

import time
from typing import Any

import pytest

import resilient as rs
from resilient.stores.redis import RedisStore
from tests.redis.conftest import bounded_sync_client, wait_until
from tests.redis.test_breaker_redis import run_child

pytestmark = pytest.mark.redis


def fail() -> None:
    raise ZeroDivisionError


def test_a_breaker_built_while_redis_is_down_works_quietly_and_resyncs(
    redis_server: Any, redis_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Built with Redis down: no error; each call < 100 ms; nothing on stderr; opened meanwhile, seen open after."""
    client = bounded_sync_client(redis_url, 0.25)
    store = RedisStore(client)
    redis_server.stop()
    try:
        breaker = rs.CircuitBreaker(failure_threshold=3, reset_timeout=60, storage=store, name="payments")
        also = rs.CircuitBreaker(failure_threshold=3, storage=client, name="payments")  # a plain client too
        durations = []
        for _ in range(2):  # closed: calls go through (fails open)
            for b in (breaker, also):
                started = time.monotonic()
                assert b.call(lambda: "through") == "through"
                durations.append(time.monotonic() - started)
        for _ in range(3):  # the dependency fails too: the breaker opens on its own, locally
            started = time.monotonic()
            with pytest.raises(ZeroDivisionError):
                breaker.call(fail)
            durations.append(time.monotonic() - started)
        started = time.monotonic()
        with pytest.raises(rs.CircuitOpenError):
            breaker.call(lambda: "never")
        durations.append(time.monotonic() - started)
        assert capfd.readouterr().err == ""
        print(f"\nper call while Redis is down: max {max(durations) * 1000:.1f} ms over {len(durations)} calls")
        assert max(durations) < 0.1

        redis_server.start()
        wait_until(lambda: store.available)
        assert breaker.state == "open"  # this read finds Redis back and writes the opened circuit back
        assert run_child(redis_url, "probe").startswith("rejected")  # another process sees it open
    finally:
        redis_server.start()
        store.close()
        client.close()
