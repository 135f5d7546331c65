"""The store breaker's decisions, without a store, threads or real time."""

from __future__ import annotations

import pytest

from resilient._machines.store_breaker import StoreBreaker


def test_closed_breaker_admits_and_opens_after_failure_threshold_failures() -> None:
    """Only failure_threshold counted failures open it; a success in between resets the count."""
    b = StoreBreaker(failure_threshold=2, reset_timeout=2)
    assert not b.failure(0.0, started=0.0)
    b.success()
    assert not b.failure(1.0, started=1.0)
    assert b.admit(1.0) == 0.0
    assert b.failure(2.0, started=2.0)
    assert b.state == "open"
    assert not b.available


def test_concurrent_failures_of_one_outage_count_once() -> None:
    """Calls begun before the last counted failure do not count again."""
    b = StoreBreaker(failure_threshold=2, reset_timeout=1)
    assert not b.failure(1.0, started=0.5)
    for _ in range(20):  # the rest of the wave, all begun at 0.5
        assert not b.failure(1.01, started=0.5)
    assert b.failures == 1
    assert b.failure(2.0, started=1.5)  # a call begun after the first failure: the second
    assert b.state == "open"


def test_open_breaker_refuses_and_one_probe_runs_until_it_closes() -> None:
    """While open admit answers the time to the next probe; begin_probe is True once; success closes."""
    b = StoreBreaker(failure_threshold=1, reset_timeout=2)
    b.failure(10.0, started=10.0)
    assert b.admit(11.5) == pytest.approx(0.5)
    assert b.begin_probe()
    assert not b.begin_probe()  # one probe per process
    assert not b.failure(12.0, started=12.0)  # refused calls and late failures change nothing while open
    assert b.success()
    b.end_probe()
    assert b.state == "closed"
    assert not b.begin_probe()


def test_ended_probe_lets_a_later_outage_probe_again() -> None:
    """A cancelled probe does not leave the breaker without one forever."""
    b = StoreBreaker(failure_threshold=1, reset_timeout=1)
    b.failure(0.0, started=0.0)
    assert b.begin_probe()
    b.end_probe()
    assert b.begin_probe()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"reset_timeout": 0}, "reset_timeout"),
        ({"reset_timeout": 6}, "5"),
    ],
)
def test_bad_options_name_the_parameter(kwargs: dict[str, float], match: str) -> None:
    """Invalid thresholds and timeouts are refused at construction."""
    with pytest.raises((ValueError, TypeError), match=match):
        StoreBreaker(**kwargs)  # type: ignore[arg-type]


def test_admit_probe_lets_one_caller_probe_after_reset_timeout() -> None:
    """For stores whose callers probe: one call passes reset_timeout after opening; its failure reopens."""
    b = StoreBreaker(failure_threshold=1, reset_timeout=2)
    b.failure(10.0)
    assert b.admit_probe(11.0) == pytest.approx(1.0)
    assert b.admit_probe(12.0) == 0.0
    assert b.admit_probe(12.0) == 2.0  # one probe at a time
    assert b.failure(12.5)  # the probe failed: open again from 12.5
    assert b.admit_probe(14.0) == pytest.approx(0.5)
    b.abandon()
    assert b.admit_probe(14.5) == 0.0
    assert b.success()
    assert b.admit_probe(14.5) == 0.0
