"""Clients of the private redis-server, closed after each test."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

from resilient.stores.redis import RedisStore


def wait_until(condition: Callable[[], bool], *, timeout: float = 20.0, step: float = 0.005) -> float:
    """Wait (real time: a server process is involved) until ``condition()``; the seconds it took.

    Fails the test after ``timeout`` s, so a recovery that never comes cannot hang the run.
    """
    started = time.monotonic()
    pause = threading.Event()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        pause.wait(step)
    return time.monotonic() - started


def kill(server: Any) -> None:
    """SIGKILL the private server (no clean shutdown: clients see reset connections)."""
    if server.proc is not None:
        server.proc.kill()
        server.proc.wait()
        server.proc = None


def freeze(server: Any) -> None:
    """SIGSTOP the server: connections stay open, nothing answers (a hung Redis)."""
    os.kill(server.proc.pid, signal.SIGSTOP)


def thaw(server: Any) -> None:
    """SIGCONT a frozen server."""
    os.kill(server.proc.pid, signal.SIGCONT)


def bounded_sync_client(url: str, timeout: float = 0.25) -> redis.Redis:
    """A sync client bounded by ``timeout`` (socket timeouts, no retries of its own): what RedisStore wants."""
    return redis.Redis.from_url(
        url, retry=SyncRetry(NoBackoff(), 0), socket_timeout=timeout, socket_connect_timeout=timeout
    )


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
