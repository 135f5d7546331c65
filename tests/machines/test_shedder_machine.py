"""Load-shedding decisions on the pure machine."""

from __future__ import annotations

import pytest

from resilient._machines.shedder import ADMIT, CONCURRENCY, LATENCY, ShedMachine


def test_rejects_at_the_concurrency_limit() -> None:
    """Calls beyond max_concurrent in flight are refused for concurrency; a finished call frees a place."""
    m = ShedMachine(max_concurrent=2)
    assert [m.admit(0.0), m.admit(0.0), m.admit(0.0)] == [ADMIT, ADMIT, CONCURRENCY]
    m.done(0.1, 0.1)
    assert m.admit(0.1) == ADMIT


def test_sheds_when_recent_latency_exceeds_factor_times_baseline_and_recovers() -> None:
    """Recent latency above latency_factor x baseline sheds; a window later calls pass again."""
    m = ShedMachine(max_concurrent=100, latency_factor=3, window=10, min_samples=20, alpha=0.02)
    now = 0.0
    for _ in range(200):  # a baseline of 10 ms
        assert m.admit(now) == ADMIT
        m.done(now, 0.010)
        now += 0.1
    now += 10  # the window forgets the fast calls
    assert m.admit(now) == ADMIT  # the origin slows to 100 ms
    m.done(now, 0.100)
    assert m.admit(now) == LATENCY
    assert m.admit(now + 9.5) == LATENCY
    assert m.admit(now + 10.5) == ADMIT


def test_no_latency_shedding_before_min_samples() -> None:
    """Fewer than min_samples latencies never shed for latency."""
    m = ShedMachine(max_concurrent=10, min_samples=5)
    m.admit(0.0)
    m.done(0.0, 0.001)
    m.admit(0.0)
    m.done(0.0, 10.0)
    assert m.admit(0.0) == ADMIT


def test_abort_frees_the_place() -> None:
    """A cancelled call frees its in-flight place without a latency sample."""
    m = ShedMachine(max_concurrent=1)
    m.admit(0.0)
    m.abort()
    assert (m.in_flight, m.samples) == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"max_concurrent": 0}, "max_concurrent"), ({"max_concurrent": 1, "latency_factor": 1}, "latency_factor")],
)
def test_bad_options(kwargs: dict[str, float], param: str) -> None:
    """Bad options raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        ShedMachine(**kwargs)  # type: ignore[arg-type]
