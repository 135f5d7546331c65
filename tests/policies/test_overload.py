"""LoadShedder, AdaptiveThrottle and RateLimiter through their shells."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import resilient as rs
from resilient._machines.bucket import TokenBucket
from resilient.testing import FakeClock, capture_events
from tests.conftest import gather_all


def boom() -> None:
    raise ConnectionError


# -- LoadShedder ---------------------------------------------------------------------


async def test_shedder_rejects_beyond_max_concurrent_tasks() -> None:
    """LoadShedder(2): with two calls in flight a third is shed without calling."""
    shedder = rs.LoadShedder(2)
    release = asyncio.Event()
    running = [asyncio.ensure_future(shedder.acall(release.wait)) for _ in range(2)]
    try:
        await asyncio.sleep(0)
        with pytest.raises(rs.LoadShedError):
            await shedder.acall(pytest.fail)
    finally:
        release.set()
        await gather_all(*running)
    assert shedder.stats()["in_flight"] == 0


def test_shedder_sheds_on_latency_far_above_baseline() -> None:
    """Recent latency above latency_factor x baseline sheds calls, sync path."""
    clock = FakeClock()
    shedder = rs.LoadShedder(10, latency_factor=3, window=10, min_samples=5, clock=clock)

    def takes(seconds: float) -> None:
        clock.advance(seconds)

    for _ in range(50):
        shedder.call(takes, 0.01)
    clock.advance(11)
    shedder.call(takes, 1.0)
    with capture_events() as events, pytest.raises(rs.LoadShedError):
        shedder.call(takes, 0.01)
    assert [e["reason"] for e in events if e["event"] == "shed.rejected"] == ["latency"]
    assert shedder.stats()["shed"] == 1


def test_shedder_counts_failed_calls_as_done() -> None:
    """A call that raises frees its in-flight place."""
    shedder = rs.LoadShedder(1)
    with pytest.raises(ConnectionError):
        shedder.call(boom)
    assert shedder.call(lambda: 1) == 1


# -- AdaptiveThrottle ---------------------------------------------------------------------


def test_throttle_never_rejects_a_healthy_backend() -> None:
    """A backend that accepts everything is never throttled."""
    throttle = rs.AdaptiveThrottle(clock=FakeClock(), rng=random.Random(1))
    assert all(throttle.call(lambda: True) for _ in range(1000))
    assert throttle.stats()["rejected"] == 0


def test_throttle_lets_a_trickle_through_to_a_refusing_backend() -> None:
    """Against a backend refusing everything, most calls are rejected locally, a few still reach it."""
    clock = FakeClock()
    throttle = rs.AdaptiveThrottle(k=2, window=10, clock=clock, rng=random.Random(3))
    reached = local = 0
    for _ in range(1000):
        clock.advance(0.01)
        try:
            throttle.call(boom)
        except ConnectionError:
            reached += 1
        except rs.LoadShedError:
            local += 1
    assert reached + local == 1000
    assert 2 <= reached <= 30  # the harmonic trickle: about ln(1000) + 0.58 = 7.5
    assert throttle.probability() > 0.99


async def test_throttle_async_path_counts_accepts() -> None:
    """The async path counts accepted calls."""
    throttle = rs.AdaptiveThrottle(clock=FakeClock())

    async def ok() -> int:
        return 1

    assert await throttle.acall(ok) == 1
    assert throttle.stats()["accepts"] == 1


# -- RateLimiter ---------------------------------------------------------------------------


def test_rate_limiter_allows_burst_then_rejects_with_retry_after() -> None:
    """RateLimiter(2, per=1, burst=2): two calls pass, the third is rejected with retry_after 0.5 s."""
    clock = FakeClock()
    limiter = rs.RateLimiter(2, clock=clock)
    assert [limiter.call(lambda: 1) for _ in range(2)] == [1, 1]
    with pytest.raises(rs.RateLimitedError) as info:
        limiter.call(pytest.fail)
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.call(lambda: 2) == 2


async def test_rate_limiter_async_path() -> None:
    """The async path takes from the same bucket."""
    limiter = rs.RateLimiter(1, per=60, clock=FakeClock())
    assert limiter.call(lambda: 1) == 1
    with pytest.raises(rs.RateLimitedError):
        await limiter.acall(asyncio.sleep, 0)


class FakeBucketStore:
    """A BucketStore stand-in: one TokenBucket per key, recording what it was asked."""

    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}
        self.asked: list[tuple[Any, ...]] = []

    def take(self, key: str, *, rate: float, burst: float, now: float, tokens: float = 1.0) -> float:
        self.asked.append((key, rate, burst, now))
        bucket = self.buckets.setdefault(key, TokenBucket(rate=rate, burst=burst))
        return bucket.take(now, tokens)

    async def atake(self, key: str, *, rate: float, burst: float, now: float, tokens: float = 1.0) -> float:
        return self.take(key, rate=rate, burst=burst, now=now, tokens=tokens)


async def test_rate_limiters_sharing_a_store_share_one_bucket() -> None:
    """Two limiters on one BucketStore and key share one bucket, asked with tokens/s and wall time."""
    store = FakeBucketStore()
    clock = FakeClock(wall=1000.0)
    a = rs.RateLimiter(6, per=60, burst=2, store=store, key="api", clock=clock)
    b = rs.RateLimiter(6, per=60, burst=2, store=store, key="api", clock=clock)
    a.call(lambda: 1)
    await b.acall(asyncio.sleep, 0)
    with pytest.raises(rs.RateLimitedError) as info:
        a.call(lambda: 1)
    assert info.value.retry_after == pytest.approx(10)
    assert store.asked[0] == ("api", 0.1, 2.0, 1000.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"rate": 0}, ValueError, "rate"),
        ({"rate": 1, "per": 0}, ValueError, "per"),
        ({"rate": 1, "burst": 0}, ValueError, "burst"),
        ({"rate": 1, "store": FakeBucketStore()}, ValueError, "key"),
        ({"rate": 1, "store": object(), "key": "k"}, TypeError, "store"),
    ],
)
def test_rate_limiter_bad_options(kwargs: dict[str, Any], error: type[Exception], param: str) -> None:
    """Bad options raise at construction, naming the parameter."""
    with pytest.raises(error, match=param):
        rs.RateLimiter(**kwargs)


@pytest.mark.parametrize(
    ("factory", "param"),
    [
        (lambda: rs.LoadShedder(0), "max_concurrent"),
        (lambda: rs.LoadShedder(1, latency_factor=0.5), "latency_factor"),
        (lambda: rs.AdaptiveThrottle(k=0), "k"),
        (lambda: rs.AdaptiveThrottle(window=0), "window"),
    ],
)
def test_overload_bad_options(factory: Any, param: str) -> None:
    """Bad options raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        factory()
