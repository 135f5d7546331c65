"""rs.OncePer on a real Redis: one run per period for threads and processes, a crashed runner's lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import resilient as rs
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock, capture_events

from ..conftest import run_threads
from .conftest import async_client, sync_client
from .once_worker import PERIOD, FixedWall

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
HOUR = 1_700_002_800.0  # the top of a clock hour (a multiple of 3600)


def start_workers(url: str, mode: str, n: int, wall: float, lease_ttl: float = 60.0) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.redis.once_worker", url, mode, repr(wall), repr(lease_ttl)]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def reap(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for stream in (p.stdin, p.stdout):
            if stream is not None:
                stream.close()


def fleet_runs(url: str, wall: float) -> tuple[int, list[object]]:
    procs = start_workers(url, "herd", 4, wall)
    try:
        outs = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in procs]
    finally:
        reap(procs)
    return sum(o["runs"] for o in outs), [r for o in outs for r in o["results"]]


def test_four_processes_of_25_threads_run_once_per_period(redis_url: str) -> None:
    """100 callers in 4 processes within one hour run the job once; the next hour once more."""
    runs, results = fleet_runs(redis_url, HOUR + 5)
    assert runs == 1
    assert len(results) == 100 and results.count(None) == 99
    runs, results = fleet_runs(redis_url, HOUR + 1800)  # later in the same hour: still done
    assert runs == 0 and results.count(None) == 100
    runs, results = fleet_runs(redis_url, HOUR + PERIOD + 5)  # the next hour
    assert runs == 1 and results.count(None) == 99


def test_hundred_threads_on_one_store_run_once_per_period(redis_url: str) -> None:
    """100 threads sharing a RedisStore run the job once per period (FakeClock moves the wall)."""
    client = sync_client(redis_url)
    clock = FakeClock(wall=HOUR)
    runs = 0
    lock = threading.Lock()

    @rs.OncePer(60, store=RedisStore(client), clock=clock)
    def job() -> str:
        nonlocal runs
        with lock:
            runs += 1
        return "done"

    try:
        barrier = threading.Barrier(100)

        def call(_: int) -> object:
            barrier.wait()
            return job()

        with capture_events() as events:
            first = run_threads(100, call)
            clock.advance(60)
            second = run_threads(100, call)
    finally:
        client.close()
    assert first.count("done") == 1 and first.count(None) == 99
    assert second.count("done") == 1 and second.count(None) == 99
    assert runs == 2
    assert sum(e["event"] == "once.skipped" for e in events) == 198


def test_a_failed_run_releases_the_period(redis_url: str) -> None:
    """A run that raises lets the next caller run in the same period."""
    client = sync_client(redis_url)
    attempts = 0

    @rs.OncePer(3600, store=RedisStore(client), clock=FixedWall(HOUR + 10))
    def job() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("dependency down")
        return attempts

    try:
        with pytest.raises(ConnectionError):
            job()
        assert job() == 2
        assert job() is None
    finally:
        client.close()


async def test_async_callers_share_the_period(redis_url: str) -> None:
    """The asyncio path claims the same period as the sync one on the same Redis."""
    import asyncio

    client, aclient = sync_client(redis_url), async_client(redis_url)
    store = RedisStore(client, aclient=aclient)
    once = rs.OncePer(3600, store=store, key="sweep", clock=FixedWall(HOUR + 20))
    runs = 0

    async def sweep() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        return "swept"

    def sweep_sync() -> str:
        nonlocal runs
        runs += 1
        return "swept"

    try:
        results = await asyncio.gather(*(once.acall(sweep) for _ in range(50)))
        assert results.count("swept") == 1
        assert once.call(sweep_sync) is None
    finally:
        client.close()
        await aclient.aclose()
    assert runs == 1


def test_a_sigkilled_runner_blocks_the_period_at_most_for_the_lease_ttl(redis_url: str) -> None:
    """A runner killed mid-run blocks its period until its lease expires, and the next period not at all."""
    lease_ttl = 0.5
    [holder] = start_workers(redis_url, "hold", 1, HOUR + 30, lease_ttl)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "running"  # it holds the period's lease now
        claimed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    finally:
        reap([holder])
    client = sync_client(redis_url)
    store = RedisStore(client)
    runs = 0

    def report() -> str | None:  # None: what OncePer returns to a skipped caller
        nonlocal runs
        runs += 1
        return "ran"

    this_hour = rs.OncePer(PERIOD, store=store, key="nightly-report", lease_ttl=lease_ttl, clock=FixedWall(HOUR + 40))
    next_hour = rs.OncePer(PERIOD, store=store, key="nightly-report", clock=FixedWall(HOUR + PERIOD + 1))
    try:
        assert next_hour.call(report) == "ran"  # the next period is never blocked
        outcome: object = None
        for _ in range(200):  # bounded: 10 s at most
            outcome = this_hour.call(report)
            if outcome is not None:
                break
            threading.Event().wait(0.05)  # Redis expires the lease in real time
        waited = time.monotonic() - claimed
    finally:
        client.close()
    assert outcome == "ran"
    assert runs == 2
    assert waited < lease_ttl + 1.0


def test_a_store_that_fails_degrades_to_this_process() -> None:
    """With Redis unreachable the job still runs once per period in this process, raising no store error."""
    from ..conftest import free_port

    client = sync_client(f"redis://127.0.0.1:{free_port()}/0")
    once = rs.OncePer(3600, store=RedisStore(client), clock=FixedWall(HOUR))
    try:
        with capture_events() as events:
            assert once.call(lambda: "ran") == "ran"
            assert once.call(lambda: "ran") is None
    finally:
        client.close()
    assert "once.store_error" in [e["event"] for e in events]
    assert once.stats()["store_errors"] >= 1
