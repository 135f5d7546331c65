"""rs.Spread and rs.OncePer in one process: spread starts, one run per wall-clock period."""

from __future__ import annotations

import asyncio
import math
import random
import threading

import pytest

import resilient as rs
from resilient._machines.schedule import period_of, spread_delay
from resilient.testing import FakeClock, capture_events, no_waiting
from tests.conftest import gather_all, run_threads

HOUR = 1_700_002_800.0  # the top of a clock hour


def ks_statistic(samples: list[float], window: float) -> float:
    """Kolmogorov-Smirnov distance between the samples and uniform(0, window)."""
    xs = sorted(samples)
    n = len(xs)
    return max(max((i + 1) / n - x / window, x / window - i / n) for i, x in enumerate(xs))


# The KS critical value at alpha = 0.001 is 1.95 / sqrt(n).
KS_CRITICAL_1000 = 1.95 / math.sqrt(1000)


def spread_starts(spread: rs.Spread, clock: FakeClock, n: int) -> list[float]:
    starts: list[float] = []

    def job(t0: float) -> None:
        starts.append(clock.monotonic() - t0)

    for _ in range(n):
        spread.call(job, clock.monotonic())
    return starts


def test_thousand_seeded_starts_are_uniform_over_the_window() -> None:
    """1,000 seeded starts pass a KS test against uniform(0, 60) and fill 10 buckets evenly."""
    clock = FakeClock()
    starts = spread_starts(rs.Spread(60, rng=random.Random(7), clock=clock), clock, 1000)
    assert all(0 <= s <= 60 for s in starts)
    assert ks_statistic(starts, 60) < KS_CRITICAL_1000
    buckets = [0] * 10
    for s in starts:
        buckets[min(9, int(s / 6))] += 1
    chi2 = sum((b - 100) ** 2 / 100 for b in buckets)
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, alpha = 0.001
    assert max(starts) > 54 and min(starts) < 6


def test_the_uniformity_check_can_fail() -> None:
    """The same KS check rejects starts bunched at the start of the window."""
    rng = random.Random(7)
    bunched = [rng.uniform(0, 60) ** 2 / 60 for _ in range(1000)]
    assert ks_statistic(bunched, 60) > KS_CRITICAL_1000
    assert ks_statistic([30.0] * 1000, 60) > KS_CRITICAL_1000


async def test_spread_async_waits_on_the_clock() -> None:
    """The async path waits its delay on the clock (asleep), then runs the call."""
    clock = FakeClock()
    spread = rs.Spread(10, rng=random.Random(1), clock=clock)

    @spread
    async def job() -> float:
        return clock.monotonic()

    started = await job()
    assert 0 <= started <= 10
    assert spread.stats()["calls"] == 1


def test_spread_validates_and_honours_no_waiting() -> None:
    """A bad window names the parameter; inside no_waiting() the call starts at once."""
    with pytest.raises(ValueError, match="window"):
        rs.Spread(-1)
    with pytest.raises(TypeError, match="rng"):
        rs.Spread(1, rng=object())  # type: ignore[arg-type]
    clock = FakeClock()
    with no_waiting():
        rs.Spread(100, clock=clock).call(lambda: None)
    assert clock.monotonic() == 0
    assert spread_delay(0, random.Random()) == 0


def test_periods_are_aligned_to_the_wall_clock() -> None:
    """Period indexes follow the epoch: every process agrees on the hour."""
    assert period_of(HOUR, 3600) == (HOUR // 3600, HOUR + 3600)
    assert period_of(HOUR + 3599.9, 3600).number == period_of(HOUR, 3600).number
    assert period_of(HOUR + 3600, 3600).number == period_of(HOUR, 3600).number + 1


def test_hundred_threads_run_once_then_once_next_period() -> None:
    """100 threads within one period run the job once (others get None); the next period once more."""
    clock = FakeClock(wall=HOUR + 5)
    runs = 0
    lock = threading.Lock()

    @rs.OncePer(3600, clock=clock)
    def job() -> str:
        nonlocal runs
        with lock:
            runs += 1
        return "ran"

    barrier = threading.Barrier(100)

    def call(_: int) -> object:
        barrier.wait()
        return job()

    first = run_threads(100, call)
    clock.advance(1800)
    assert job() is None  # the same hour: done
    clock.advance(1800)
    second = run_threads(100, call)
    assert first.count("ran") == 1 and first.count(None) == 99
    assert second.count("ran") == 1 and second.count(None) == 99
    assert runs == 2


def test_a_failed_run_releases_the_period_in_process() -> None:
    """A run that raises lets the next caller run in the same period (event once.released)."""
    clock = FakeClock(wall=HOUR)
    attempts = 0

    @rs.OncePer(60, clock=clock)
    def job() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("boom")
        return attempts

    with capture_events() as events:
        with pytest.raises(RuntimeError):
            job()
        assert job() == 2
        assert job() is None
    names = [e["event"] for e in events]
    assert "once.released" in names and names[-1] == "once.skipped"
    assert events[-1]["reason"] == "done" and events[-1]["key"].endswith("job")


def test_a_hung_runner_blocks_only_for_its_lease() -> None:
    """A run still going after lease_ttl no longer blocks the period; it never blocks the next."""
    clock = FakeClock(wall=HOUR)
    entered, release = threading.Event(), threading.Event()
    once = rs.OncePer(3600, lease_ttl=30, clock=clock)
    calls = 0

    def job() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            entered.set()
            assert release.wait(10)
        return "ran"

    hung = threading.Thread(target=once.call, args=(job,))
    hung.start()
    try:
        assert entered.wait(10)
        with capture_events() as events:
            assert once.call(job) is None
        assert events[-1]["reason"] == "running"
        clock.advance(31)
        assert once.call(job) == "ran"
    finally:
        release.set()
        hung.join(10)
    assert calls == 2


async def test_async_tasks_run_once_per_period() -> None:
    """1,000 concurrent tasks run an async job once per period."""
    clock = FakeClock(wall=HOUR)
    runs = 0

    @rs.OncePer(3600, clock=clock)
    async def job() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        return "ran"

    results = await gather_all(*(job() for _ in range(1000)))
    assert results.count("ran") == 1 and runs == 1
    clock.advance(3600)
    assert await job() == "ran"


async def test_a_cancelled_run_releases_the_period() -> None:
    """A run cancelled mid-way releases its lease: the next caller runs."""
    clock = FakeClock(wall=HOUR)
    started = asyncio.Event()
    once = rs.OncePer(3600, clock=clock)

    async def slow() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def quick() -> str:
        return "ran"

    task = asyncio.ensure_future(once.acall(slow))
    try:
        await started.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await once.acall(quick) == "ran"


def test_keys_partition_the_periods() -> None:
    """A key template gives each argument its own once-per-period."""
    clock = FakeClock(wall=HOUR)

    @rs.OncePer(3600, key="report:{tenant}", clock=clock)
    def report(tenant: str) -> str:
        return tenant

    assert [report("a"), report("b"), report("a")] == ["a", "b", None]


async def test_spread_and_once_compose_in_a_pipeline() -> None:
    """Spread + OncePer: 100 servers start spread over the window, the first one runs the hourly job."""
    clock = FakeClock(wall=HOUR)
    store = rs.MemoryStore()
    runs: list[float] = []

    async def hourly() -> str:
        runs.append(clock.monotonic())
        return "ran"

    servers = [
        rs.pipeline(rs.Spread(60, rng=random.Random(i), clock=clock), rs.OncePer(3600, store=store, clock=clock))
        for i in range(100)
    ]
    results = await gather_all(*(s.acall(hourly) for s in servers))
    assert results.count("ran") == 1 and len(runs) == 1


def test_once_validates_its_options() -> None:
    """Bad options raise naming the parameter."""
    with pytest.raises(ValueError, match="period"):
        rs.OncePer(0)
    with pytest.raises(ValueError, match="lease_ttl"):
        rs.OncePer(60, lease_ttl=-1)
    with pytest.raises(TypeError, match="store"):
        rs.OncePer(60, store=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        rs.OncePer(60, clock=1)  # type: ignore[arg-type]
    assert "OncePer(60.0" in repr(rs.OncePer(60))
