"""Token bucket arithmetic, table-driven and property-based."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient._machines.bucket import TokenBucket


def test_starts_full_and_refills_at_rate() -> None:
    """A new bucket holds burst tokens; once empty it refills at rate per second."""
    b = TokenBucket(rate=2, burst=3)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0.0
    assert b.take(0.5) == pytest.approx(0.5)


def test_never_holds_more_than_burst() -> None:
    """Idle time refills no further than burst."""
    b = TokenBucket(rate=10, burst=2)
    b.take(0.0)
    assert b.available(1000.0) == 2


def test_a_take_larger_than_burst_never_succeeds() -> None:
    """Asking for more than the capacity waits forever (inf), taking nothing."""
    b = TokenBucket(rate=1, burst=2)
    assert b.take(0.0, tokens=3) == float("inf")
    assert b.available(0.0) == 2


@pytest.mark.parametrize(("kwargs", "param"), [({"rate": 0, "burst": 1}, "rate"), ({"rate": 1, "burst": -1}, "burst")])
def test_bad_options(kwargs: dict[str, float], param: str) -> None:
    """Bad options raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        TokenBucket(**kwargs)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.1, 100),
    burst=st.floats(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=100),
)
def test_never_grants_more_than_burst_plus_rate_times_elapsed(rate: float, burst: float, gaps: list[float]) -> None:
    """Over any run of takes, the tokens granted never exceed burst + rate x elapsed time."""
    b = TokenBucket(rate=rate, burst=burst)
    now = 0.0
    granted = 0
    for gap in gaps:
        now += gap
        if b.take(now) == 0.0:
            granted += 1
        assert 0 <= b.available(now) <= burst + 1e-9
    assert granted <= burst + rate * now + 1e-6


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.1, 100), burst=st.floats(1, 50), drained=st.integers(0, 60), at=st.floats(0, 5))
def test_the_wait_returned_is_exact(rate: float, burst: float, drained: int, at: float) -> None:
    """A refused take succeeds exactly after the wait it returned, and not noticeably sooner."""
    b = TokenBucket(rate=rate, burst=burst)
    for _ in range(drained):
        b.take(0.0)
    wait = b.take(at)
    if wait == 0.0:
        return
    probe = TokenBucket(rate=rate, burst=burst)
    probe._tokens, probe._last = b._tokens, b._last
    if wait > 1e-6:
        assert probe.take(at + wait * 0.999) > 0.0
    assert b.take(at + wait + 1e-9) == 0.0


def test_takes_exactly_one_token_apart_are_never_refused_by_rounding() -> None:
    """RateLimiter(10, burst=1) called every 1/rate seconds on a FakeClock: all 200 calls pass."""
    import resilient as rs
    from resilient.testing import FakeClock

    clock = FakeClock()
    limiter = rs.RateLimiter(10, burst=1, clock=clock)
    refused = 0
    for _ in range(200):
        try:
            limiter.call(lambda: None)
        except rs.RateLimitedError:
            refused += 1
        clock.advance(0.1)
    assert refused == 0
    bucket = TokenBucket(rate=10, burst=1)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.05) == pytest.approx(0.05)  # a real shortfall still waits
