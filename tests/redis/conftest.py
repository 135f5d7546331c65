"""Clients of the private redis-server, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

from resilient.stores.redis import RedisStore


def sync_client(url: str) -> redis.Redis:
    """A sync client that does not retry by itself (so a dead server fails at once)."""
    return redis.Redis.from_url(url, retry=SyncRetry(NoBackoff(), 0), socket_timeout=2)


def async_client(url: str) -> redis.asyncio.Redis:
    """An asyncio client that does not retry by itself."""
    return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), socket_timeout=2)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A sync client of the private server."""
    c = sync_client(redis_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def aclient(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client of the private server."""
    c = async_client(redis_url)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def store(client: redis.Redis) -> RedisStore:
    """A RedisStore on the sync client."""
    return RedisStore(client)


@pytest.fixture
def astore(aclient: redis.asyncio.Redis) -> RedisStore:
    """A RedisStore on the asyncio client."""
    return RedisStore(aclient)
