"""Adaptive throttling (Google SRE) on the pure machine."""

from __future__ import annotations

import random

import pytest

from resilient._machines.throttle import ThrottleWindow, reject_probability


@pytest.mark.parametrize(
    ("requests", "accepts", "k", "expected"),
    [(0, 0, 2, 0.0), (10, 10, 2, 0.0), (10, 5, 2, 0.0), (10, 4, 2, 2 / 11), (100, 0, 2, 100 / 101), (10, 5, 1, 5 / 11)],
)
def test_reject_probability_formula(requests: int, accepts: int, k: float, expected: float) -> None:
    """The probability is max(0, (requests - k*accepts) / (requests + 1))."""
    assert reject_probability(requests, accepts, k) == pytest.approx(expected)


def simulate(accept_fraction: float, *, k: float = 2.0, calls: int = 100_000, seed: int = 7) -> float:
    """Ten calls a second for 10 000 s through a 10 s window; the fraction that reaches the origin."""
    rng = random.Random(seed)
    origin = random.Random(seed + 1)
    machine = ThrottleWindow(k=k, window=10)
    reached = 0
    for i in range(calls):
        now = i * 0.1
        if machine.admit(now, rng.random()):
            reached += 1
            if origin.random() < accept_fraction:
                machine.accepted(now)
    return reached / calls


def predicted(accept_fraction: float, k: float, requests: float) -> float:
    """Steady state f = 1 / (R + 1 - k*a*R) for k*a < 1 (f = (1 + k*a*f*R) / (R + 1) solved for f)."""
    return min(1.0, 1.0 / (requests + 1.0 - k * accept_fraction * requests))


def test_origin_rejecting_everything_gets_the_predicted_trickle() -> None:
    """Against an origin that rejects everything, the fraction reaching it converges to 1/(R+1)."""
    # The 10-slot window holds between 90 and 100 requests at 10/s: R averages 95.
    observed = simulate(0.0)
    assert predicted(0.0, 2, 100) <= observed * 1.05
    assert observed <= predicted(0.0, 2, 90) * 1.05
    assert observed == pytest.approx(predicted(0.0, 2, 95), rel=0.08)


def test_origin_accepting_a_quarter_gets_the_predicted_fraction() -> None:
    """With k=2 and a quarter accepted, the fraction reaching the origin converges to 1/(R+1-k*a*R)."""
    observed = simulate(0.25)
    assert observed == pytest.approx(predicted(0.25, 2, 95), rel=0.1)


def test_origin_accepting_more_than_one_over_k_is_not_throttled() -> None:
    """When k x the accepted fraction exceeds 1, (nearly) every call reaches the origin."""
    assert simulate(0.9) > 0.99


def test_window_forgets_old_refusals() -> None:
    """Once a window passes, old refusals no longer throttle."""
    machine = ThrottleWindow(k=2, window=10)
    for _ in range(100):
        machine.admit(0.0, 0.999)
    assert machine.probability(0.0) > 0.9
    assert machine.probability(20.0) == 0.0


def test_bad_k() -> None:
    """k below 1 raises ValueError naming k."""
    with pytest.raises(ValueError, match="k"):
        ThrottleWindow(k=0.5)
