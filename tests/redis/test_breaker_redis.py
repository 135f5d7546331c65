"""A breaker shared by a fleet through pybreaker's Redis storage, against a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

import resilient as rs

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    import redis
    import resilient as rs

    url, action = sys.argv[1], sys.argv[2]
    client = redis.Redis.from_url(url)
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=60, storage=client, name="payments")
    calls = []
    if action == "trip":
        try:
            breaker.call(lambda: 1 / 0)
        except ZeroDivisionError:
            pass
        print(breaker.state)
    else:
        try:
            breaker.call(calls.append, 1)
            print("called")
        except rs.CircuitOpenError as exc:
            print(f"rejected {exc.remaining:.0f}")
    """
)


def run_child(url: str, action: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, action], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


def test_another_process_sees_this_process_open_the_circuit(redis_url: str, client: redis.Redis) -> None:
    """A breaker opened here is seen open by a breaker of the same name in another process."""
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=60, storage=client, name="payments")
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.state == "open"
    assert run_child(redis_url, "probe").startswith("rejected")


def test_this_process_sees_another_process_open_the_circuit(redis_url: str, client: redis.Redis) -> None:
    """A breaker opened in another process rejects here without calling."""
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=60, storage=client, name="payments")
    assert run_child(redis_url, "probe") == "called"
    assert run_child(redis_url, "trip") == "open"
    calls: list[int] = []
    with pytest.raises(rs.CircuitOpenError) as info:
        breaker.call(calls.append, 1)
    assert calls == []
    assert 59 <= info.value.remaining <= 61
    assert breaker.state == "open"


async def test_async_path_reads_the_shared_state(redis_url: str, client: redis.Redis) -> None:
    """The async path of a Redis-backed breaker rejects while another process holds it open."""
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=60, storage=client, name="payments")
    run_child(redis_url, "trip")

    async def fn() -> int:
        return 1

    with pytest.raises(rs.CircuitOpenError):
        await breaker.acall(fn)


def test_consecutive_failures_are_counted_across_breakers(client: redis.Redis) -> None:
    """Failures from two breakers on one Redis storage add up to the threshold."""
    a = rs.CircuitBreaker(failure_threshold=2, storage=client, name="shared")
    b = rs.CircuitBreaker(failure_threshold=2, storage=client, name="shared")
    with pytest.raises(ZeroDivisionError):
        a.call(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    assert a.state == b.state == "open"


def test_an_async_redis_client_is_refused(redis_url: str) -> None:
    """pybreaker's storage is sync: a redis.asyncio client raises TypeError naming storage."""
    aclient = redis.asyncio.Redis.from_url(redis_url)
    with pytest.raises(TypeError, match="storage"):
        rs.CircuitBreaker(storage=aclient, name="x")


def test_a_redis_client_needs_a_name(client: redis.Redis) -> None:
    """A Redis storage without a name raises ValueError naming name."""
    with pytest.raises(ValueError, match="name"):
        rs.CircuitBreaker(storage=client)


def test_calls_go_through_while_redis_is_down(redis_server: Any, redis_url: str) -> None:
    """With Redis unreachable the shared breaker fails open: calls still reach the function."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        breaker = rs.CircuitBreaker(failure_threshold=1, storage=client, name="down")
        redis_server.stop()
        try:
            assert breaker.call(lambda: "through") == "through"
            assert breaker.state == "closed"
        finally:
            redis_server.start()
    finally:
        client.close()
