"""The policies composed: Fallback, CircuitBreaker, Retry, Timeout, Bulkhead on sync and async functions."""

from __future__ import annotations

import asyncio

import pytest

import resilient as rs
from resilient.testing import FakeClock, no_waiting


def test_full_pipeline_on_one_sync_and_one_async_function() -> None:
    """pipeline(Fallback, CircuitBreaker, Retry, Timeout, Bulkhead) serves a sync and an async function alike."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=2, reset_timeout=30, clock=clock)
    policy = rs.pipeline(
        rs.Fallback(value="fallback"),
        breaker,
        rs.Retry(attempts=3, backoff=rs.Constant(0.1), clock=clock),
        rs.Timeout(5, clock=clock),
        rs.Bulkhead(4),
    )
    sync_calls = async_calls = 0
    healthy = True

    @policy
    def price(item: str) -> str:
        nonlocal sync_calls
        sync_calls += 1
        if not healthy:
            raise ConnectionError(item)
        return f"sync {item}"

    @policy
    async def aprice(item: str) -> str:
        nonlocal async_calls
        async_calls += 1
        if not healthy:
            raise ConnectionError(item)
        return f"async {item}"

    async def scenario() -> None:
        nonlocal healthy
        assert price("a") == "sync a"
        assert await aprice("b") == "async b"
        healthy = False
        with no_waiting():
            assert price("c") == "fallback"  # 3 attempts, then the breaker counts one failure
            assert await aprice("d") == "fallback"  # the second failure opens it
        assert breaker.state == "open"
        assert price("e") == "fallback"  # rejected by the breaker, no call
        assert await aprice("f") == "fallback"
        clock.advance(30)
        healthy = True
        assert await aprice("g") == "async g"  # the probe closes it
        assert price("h") == "sync h"

    asyncio.run(scenario())
    assert (sync_calls, async_calls) == (1 + 3 + 1, 1 + 3 + 1)
    assert breaker.state == "closed"
    stats = policy.stats()
    assert stats["fallback"]["used"] == 4
    assert stats["breaker"]["rejected"] == 2
    assert stats["retry"]["retries"] == 4
    assert stats["bulkhead"]["active"] == 0


def test_retry_does_not_retry_an_open_circuit() -> None:
    """Retry outside a breaker surfaces CircuitOpenError at once instead of retrying it."""
    breaker = rs.CircuitBreaker(failure_threshold=1, clock=FakeClock())
    retry = rs.Retry(attempts=5, clock=FakeClock())
    policy = rs.pipeline(retry, breaker)

    def boom() -> None:
        raise ConnectionError

    with no_waiting(), pytest.raises(ConnectionError):
        rs.pipeline(breaker).call(boom)
    with pytest.raises(rs.CircuitOpenError):
        policy.call(boom)
    assert retry.stats()["retries"] == 0
