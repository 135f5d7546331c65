"""The breaker's pure decisions, table-driven and property-based."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient._machines.breaker import (
    CALL,
    CLOSED,
    HALF_OPEN,
    OPEN,
    PROBE,
    START_PROBE,
    BreakerMachine,
    Reject,
)


def test_closed_admits_calls() -> None:
    """A closed breaker admits every call."""
    assert BreakerMachine().admit(CLOSED, None, 0, 0.0) == CALL


def test_open_rejects_with_remaining_until_reset_timeout_inclusive() -> None:
    """Open, calls are rejected with the seconds left, and the first call at reset_timeout starts a probe."""
    m = BreakerMachine(reset_timeout=30)
    assert m.admit(OPEN, 100.0, 0, 110.0) == Reject(20.0)
    verdict = m.admit(OPEN, 100.0, 0, 129.999)
    assert isinstance(verdict, Reject)
    assert verdict.remaining == pytest.approx(0.001)
    assert m.admit(OPEN, 100.0, 0, 130.0) == START_PROBE


def test_half_open_admits_up_to_max_probes() -> None:
    """Half-open admits probes while fewer than half_open_max_calls are in flight."""
    m = BreakerMachine(half_open_max_calls=2)
    assert m.admit(HALF_OPEN, 0.0, 0, 1.0) == PROBE
    assert m.admit(HALF_OPEN, 0.0, 1, 1.0) == PROBE
    assert m.admit(HALF_OPEN, 0.0, 2, 1.0) == Reject(0.0)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, None), (2, None), (3, OPEN), (7, OPEN)],
)
def test_consecutive_failures_open_at_threshold(failures: int, expected: str | None) -> None:
    """In consecutive mode the failure that brings the count to failure_threshold opens it."""
    assert BreakerMachine(failure_threshold=3).on_failure(CLOSED, False, failures, 0.0) == expected


def test_probe_outcomes() -> None:
    """A failed probe re-opens; success_threshold probe successes close; stale outcomes change nothing."""
    m = BreakerMachine(success_threshold=2)
    assert m.on_failure(HALF_OPEN, True, 0, 0.0) == OPEN
    assert m.on_failure(HALF_OPEN, False, 0, 0.0) is None
    assert m.on_failure(OPEN, False, 99, 0.0) is None
    assert m.on_success(HALF_OPEN, True, 1, 0.0) is None
    assert m.on_success(HALF_OPEN, True, 2, 0.0) == CLOSED
    assert m.on_success(HALF_OPEN, False, 5, 0.0) is None


def test_failure_rate_trips_only_after_minimum_calls() -> None:
    """Rate mode trips at rate >= failure_rate, and never before minimum_calls calls are in the window."""
    m = BreakerMachine(failure_rate=0.5, window=10, minimum_calls=4)
    assert m.on_failure(CLOSED, False, 0, 0.0) is None  # 1 call, 100 % failed, below minimum
    assert m.on_failure(CLOSED, False, 0, 0.1) is None  # 2 calls
    assert m.on_failure(CLOSED, False, 0, 0.2) is None  # 3 calls
    assert m.on_failure(CLOSED, False, 0, 0.3) == OPEN  # 4 calls, 100 %


def test_failure_rate_below_threshold_stays_closed() -> None:
    """Rate mode stays closed while the failure rate is below failure_rate, and trips when it reaches it."""
    m = BreakerMachine(failure_rate=0.5, window=10, minimum_calls=4)
    for t in range(3):
        m.on_success(CLOSED, False, 0, t * 0.1)
    assert m.on_failure(CLOSED, False, 0, 0.5) is None  # 1/4
    assert m.on_failure(CLOSED, False, 0, 0.6) is None  # 2/5
    assert m.on_failure(CLOSED, False, 0, 0.7) == OPEN  # 3/6 = 0.5


def test_failure_rate_forgets_outcomes_older_than_window() -> None:
    """Failures older than the window no longer count towards the rate or the minimum."""
    m = BreakerMachine(failure_rate=0.5, window=10, minimum_calls=4)
    for t in range(3):
        assert m.on_failure(CLOSED, False, 0, float(t)) is None
    # 10 s later the three failures are gone: one more failure is 1 call, below the minimum
    assert m.on_failure(CLOSED, False, 0, 12.5) is None
    assert m.failure_rate_now(12.5) == (1, 1.0)


def test_forget_clears_the_window() -> None:
    """forget() empties the failure-rate window."""
    m = BreakerMachine(failure_rate=0.5, window=10, minimum_calls=2)
    m.on_failure(CLOSED, False, 0, 0.0)
    m.forget()
    assert m.failure_rate_now(0.0) == (0, None)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"failure_rate": 1.5, "window": 10}, "failure_rate"),
        ({"failure_rate": 0, "window": 10}, "failure_rate"),
        ({"failure_rate": 0.5, "window": 0}, "window"),
        ({"failure_rate": 0.5}, "window"),
    ],
)
def test_bad_options_name_the_parameter(kwargs: dict[str, float], param: str) -> None:
    """A bad option raises ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        BreakerMachine(**kwargs)  # type: ignore[arg-type]


class Harness:
    """A dict standing in for pybreaker's storage, driven as the shell drives it."""

    def __init__(self, machine: BreakerMachine) -> None:
        self.m = machine
        self.state = CLOSED
        self.failures = 0
        self.successes = 0
        self.opened_at: float | None = None
        self.probes = 0

    def move(self, target: str, now: float) -> None:
        self.state = target
        if target == OPEN:
            self.opened_at = now
        if target == CLOSED:
            self.failures = 0
        self.successes = 0
        self.probes = 0
        self.m.forget()

    def admit(self, now: float) -> str | Reject:
        verdict = self.m.admit(self.state, self.opened_at, self.probes, now)
        if verdict == START_PROBE:
            self.move(HALF_OPEN, now)
        if verdict in (START_PROBE, PROBE):
            self.probes += 1
        return verdict

    def outcome(self, probe: bool, ok: bool, now: float) -> None:
        if probe and self.state == HALF_OPEN:
            self.probes -= 1
        if ok:
            if probe and self.state == HALF_OPEN:
                self.successes += 1
            elif self.state == CLOSED:
                self.failures = 0
            target = self.m.on_success(self.state, probe, self.successes, now)
        else:
            if self.state == CLOSED:
                self.failures += 1
            target = self.m.on_failure(self.state, probe, self.failures, now)
        if target is not None:
            self.move(target, now)


@settings(max_examples=200, deadline=None)
@given(
    threshold=st.integers(1, 5),
    reset=st.floats(0.5, 20),
    max_probes=st.integers(1, 3),
    steps=st.lists(st.tuples(st.floats(0, 10), st.booleans(), st.booleans()), max_size=60),
)
def test_breaker_invariants(
    threshold: int, reset: float, max_probes: int, steps: list[tuple[float, bool, bool]]
) -> None:
    """Whatever the outcomes: never admit while open before reset_timeout, never exceed the probe limit,
    and a closed breaker opens exactly on its threshold-th consecutive failure."""
    h = Harness(BreakerMachine(failure_threshold=threshold, reset_timeout=reset, half_open_max_calls=max_probes))
    now = 0.0
    held: list[bool] = []  # probes admitted and not yet finished
    for dt, ok, finish_now in steps:
        now += dt
        before = h.state
        verdict = h.admit(now)
        if isinstance(verdict, Reject):
            assert before != CLOSED
            if before == OPEN:
                assert h.opened_at is not None
                assert now < h.opened_at + reset
                assert 0 < verdict.remaining <= reset
            continue
        if before == OPEN:
            assert h.opened_at is not None
            assert now >= h.opened_at + reset
        probe = verdict != CALL
        assert h.probes <= max_probes
        if probe and not finish_now:
            held.append(ok)
            continue
        failures_before = h.failures
        state_before = h.state
        h.outcome(probe, ok, now)
        if state_before == CLOSED and not probe:
            if ok:
                assert h.state == CLOSED
            else:
                assert (h.state == OPEN) == (failures_before + 1 >= threshold)
        if held and h.state == HALF_OPEN:
            h.outcome(True, held.pop(), now)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.05, 1.0),
    minimum=st.integers(1, 20),
    outcomes=st.lists(st.tuples(st.floats(0, 3), st.booleans()), max_size=80),
)
def test_failure_rate_opens_only_at_rate_and_minimum(
    rate: float, minimum: int, outcomes: list[tuple[float, bool]]
) -> None:
    """In rate mode the breaker opens exactly when the window holds >= minimum_calls calls at >= failure_rate."""
    m = BreakerMachine(failure_rate=rate, window=10, minimum_calls=minimum)
    now = 0.0
    for dt, ok in outcomes:
        now += dt
        if ok:
            assert m.on_success(CLOSED, False, 0, now) is None
            continue
        target = m.on_failure(CLOSED, False, 0, now)
        calls, observed = m.failure_rate_now(now)
        assert observed is not None
        assert (target == OPEN) == (calls >= minimum and observed >= rate - 1e-12)
        if target == OPEN:
            m.forget()
