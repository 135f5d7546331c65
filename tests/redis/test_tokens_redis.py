"""TokenProvider on a real Redis: 4 processes share one token, one fetch at cold start and one per expiry."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import pytest
import redis
import structlog

import resilient as rs
from resilient.testing import FakeClock, capture_events

pytestmark = pytest.mark.redis

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROCESSES = 4
LIFE = 3600.0
START = 1_700_000_000.0


class Worker:
    """A child process running ``tests.redis._token_fleet_worker``."""

    def __init__(self, url: str, index: int) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.redis._token_fleet_worker", url, str(index)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        self.proc.stdin.flush()

    def receive(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            raise AssertionError(f"worker gave no answer; its stderr:\n{self.errors()}")
        return dict(json.loads(line))

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("quit")
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.stderr.close()


@pytest.fixture
def fleet(redis_url: str) -> Iterator[list[Worker]]:
    client = redis.Redis.from_url(redis_url)
    client.set("fleet:now", START)
    client.close()
    workers = [Worker(redis_url, i) for i in range(PROCESSES)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()


@pytest.mark.slow
def test_four_processes_fetch_once_on_cold_start_and_once_per_expiry(redis_url: str, fleet: list[Worker]) -> None:
    """4 processes on one Redis store cause 1 fetch at a cold start and 1 per expiry, never serving an expired token."""
    client = redis.Redis.from_url(redis_url, socket_timeout=70)  # redis-py 8 cuts a BLPOP at its default
    try:
        for worker in fleet:
            worker.send("cold")
        for _ in fleet:  # every process is inside get() (or about to be) while the first fetch is held
            assert client.blpop(["fleet:entered"], timeout=60) is not None
        client.rpush("fleet:release", "go")
        assert [w.receive()["value"] for w in fleet] == ["t1"] * PROCESSES
        assert int(client.get("fleet:fetches") or 0) == 1

        expiry: dict[str, float] = {}
        now = START
        while now < START + 3 * LIFE + 60:
            now += 20.0
            client.set("fleet:now", now)
            for worker in fleet:
                worker.send("get")
            for worker in fleet:
                value = worker.receive()["value"]
                if value not in expiry:
                    expiry.update(
                        (f"t{r['n']}", r["at"] + LIFE) for r in map(json.loads, client.lrange("fleet:fetched", 0, -1))
                    )
                assert now < expiry[value], f"{value} served at {now} after its expiry {expiry[value]}"

        fetched = sorted((json.loads(r) for r in client.lrange("fleet:fetched", 0, -1)), key=lambda r: r["n"])
    finally:
        client.close()
    assert len(fetched) == 4  # the cold start, then one per expiry of t1, t2, t3
    for earlier, later in itertools.pairwise(fetched):
        expires = earlier["at"] + LIFE
        assert expires - 60 * 1.5 <= later["at"] < expires


def test_the_redis_record_is_the_token_only_and_no_event_shows_it(redis_url: str) -> None:
    """In Redis the provider writes one record under the store's prefix (value and expiry); no event shows it."""
    clock = FakeClock()
    client = redis.Redis.from_url(redis_url)
    store = rs.RedisStore(client, prefix="tok-test:")
    members = [
        rs.TokenProvider(lambda: rs.Token.expiring_in("s3cret", 3600, clock=clock), store=store, key="api", clock=clock)
        for _ in range(2)
    ]
    try:
        with capture_events() as events, structlog.testing.capture_logs() as logs:
            assert [m.get() for m in members] == ["s3cret", "s3cret"]
            assert members[0].invalidate("s3cret")
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in client.keys("*"))
        assert members[1].get() == "s3cret"  # still its own (the refused value is only the first member's)
        entry = store.get("api")
    finally:
        client.close()
    assert keys == []  # the invalidation deleted the shared record
    assert entry is None
    assert {"token.refreshed", "token.shared", "token.invalidated"} <= {e["event"] for e in events}
    assert "s3cret" not in repr(events) + repr(logs)


def test_the_redis_record_holds_value_and_expiry(redis_url: str) -> None:
    """The record under the store's prefix decodes to the token's value and expiry only."""
    clock = FakeClock()
    client = redis.Redis.from_url(redis_url)
    store = rs.RedisStore(client, prefix="tok-test:")
    provider = rs.TokenProvider(
        lambda: rs.Token.expiring_in("v", 3600, clock=clock), store=store, key="api", clock=clock
    )
    try:
        provider.get()
        keys = sorted(k.decode() if isinstance(k, bytes) else k for k in client.keys("*"))
        entry = store.get("api")
    finally:
        client.close()
    assert keys == ["tok-test:{api}:v"]
    assert entry is not None
    assert entry.value == {"value": "v", "expires_at": clock.time() + 3600}


async def test_async_providers_on_redis_fetch_once(redis_url: str) -> None:
    """4 async providers sharing an asyncio RedisStore, each awaited by 5 tasks, cause one fetch."""
    import redis.asyncio

    from tests.conftest import gather_all

    clock = FakeClock()
    fetches = 0

    async def fetch() -> rs.Token:
        nonlocal fetches
        fetches += 1
        return rs.Token.expiring_in(f"t{fetches}", 3600, clock=clock)

    aclient = redis.asyncio.Redis.from_url(redis_url)
    store = rs.RedisStore(aclient, prefix="tok-test:")
    providers = [rs.TokenProvider(fetch, store=store, key="api", clock=clock) for _ in range(PROCESSES)]
    try:
        results = await gather_all(*(p.aget() for p in providers for _ in range(5)))
    finally:
        await gather_all(*(p.aclose() for p in providers))
        await aclient.aclose()
    assert results == ["t1"] * 20
    assert fetches == 1
