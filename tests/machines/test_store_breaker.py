"""The store breaker's decisions, without a store, threads or real time."""

from __future__ import annotations

import pytest

from resilient._machines.store_breaker import StoreBreaker


def test_closed_breaker_admits_and_opens_after_consecutive_failures() -> None:
    """Only failure_threshold consecutive failures open it; a success in between resets the count."""
    b = StoreBreaker(failure_threshold=2, reset_timeout=2)
    assert not b.failure(0.0)
    b.success()
    assert not b.failure(0.0)
    assert b.admit(0.0) == 0.0
    assert b.failure(1.0)
    assert b.state == "open"


def test_open_breaker_refuses_until_reset_timeout_then_admits_one_probe() -> None:
    """While open, admit answers the time left; at reset_timeout exactly one probe passes."""
    b = StoreBreaker(failure_threshold=1, reset_timeout=2)
    b.failure(10.0)
    assert b.admit(11.5) == pytest.approx(0.5)
    assert b.admit(12.0) == 0.0
    assert b.state == "half_open"
    assert b.admit(12.0) == 2.0  # a second caller while the probe is out


@pytest.mark.parametrize(("probe_ok", "state"), [(True, "closed"), (False, "open")])
def test_probe_outcome_closes_or_reopens(probe_ok: bool, state: str) -> None:
    """A successful probe closes the breaker; a failed one opens it for another reset_timeout."""
    b = StoreBreaker(failure_threshold=1, reset_timeout=2)
    b.failure(0.0)
    b.admit(2.0)
    if probe_ok:
        assert b.success()
    else:
        assert b.failure(2.5)
        assert b.admit(4.0) == pytest.approx(0.5)
    assert b.state == state


def test_abandoned_probe_lets_the_next_caller_probe() -> None:
    """A cancelled probe does not leave the breaker waiting for an answer forever."""
    b = StoreBreaker(failure_threshold=1, reset_timeout=1)
    b.failure(0.0)
    assert b.admit(1.0) == 0.0
    b.abandon()
    assert b.admit(1.0) == 0.0


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
