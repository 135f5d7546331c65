"""RateLimiter and TokenProvider sharing state through a RedisStore, as a fleet would."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

import resilient as rs
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock

pytestmark = pytest.mark.redis


def admitted(limiter: rs.RateLimiter) -> bool:
    try:
        limiter.call(lambda: None)
    except rs.RateLimitedError:
        return False
    return True


def test_rate_limiters_of_two_members_share_one_bucket(client: redis.Redis) -> None:
    """Two limiters on one Redis bucket admit `burst` calls between them, then refill at `rate`."""
    clock = FakeClock()
    members = [rs.RateLimiter(5, burst=5, store=RedisStore(client), key="api", clock=clock) for _ in range(2)]
    assert sum(admitted(members[i % 2]) for i in range(10)) == 5
    clock.advance(0.4)
    assert sum(admitted(members[i % 2]) for i in range(10)) == 2


async def test_async_rate_limiter_takes_from_the_same_bucket(client: redis.Redis, aclient: Any) -> None:
    """The async path (atake on redis.asyncio) spends tokens of the bucket the sync path uses."""
    clock = FakeClock()
    store = RedisStore(client, aclient=aclient)
    limiter = rs.RateLimiter(1, burst=2, store=store, key="api", clock=clock)

    async def ok() -> str:
        return "ok"

    assert await limiter.acall(ok) == "ok"
    assert admitted(limiter)
    with pytest.raises(rs.RateLimitedError) as caught:
        await limiter.acall(ok)
    assert caught.value.retry_after == pytest.approx(1.0)


def test_token_providers_of_two_members_fetch_once(client: redis.Redis) -> None:
    """A second member reads the token the first one fetched and stored, as JSON."""
    clock = FakeClock()
    fetches = 0

    def fetch() -> rs.Token:
        nonlocal fetches
        fetches += 1
        return rs.Token(f"secret-{fetches}", clock.time() + 3600)

    members = [rs.TokenProvider(fetch, store=RedisStore(client), key="auth", clock=clock) for _ in range(2)]
    assert [m.get() for m in members] == ["secret-1", "secret-1"]
    assert fetches == 1
    raw = client.get("resilient:{auth}:v")
    assert isinstance(raw, bytes)
    assert json.loads(raw.partition(b"\n")[2]) == {"value": "secret-1", "expires_at": clock.time() + 3600}
