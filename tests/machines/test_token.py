"""The token machine: refresh points, validity, decisions and invalidation, without time or threads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient._machines.token import Action, TokenState, TokenTiming, is_valid, refresh_point

EXPIRES = 10_000.0


@pytest.mark.parametrize(
    ("draw", "obtained_at", "expected"),
    [
        (0.0, 0.0, EXPIRES - 60),  # no jitter drawn: exactly refresh_before early
        (1.0, 0.0, EXPIRES - 90),  # full jitter: refresh_before * (1 + 0.5)
        (0.5, 0.0, EXPIRES - 75),
        (0.0, EXPIRES - 100, EXPIRES - 50),  # 100 s of life < 2 * 60 s lead: half the life
        (1.0, EXPIRES - 30, EXPIRES - 15),
        (0.0, EXPIRES + 5, EXPIRES),  # obtained after expiry: no negative lead
    ],
)
def test_refresh_point_formula(draw: float, obtained_at: float, expected: float) -> None:
    """The refresh point is expires_at - min(refresh_before * (1 + jitter * draw), lifetime / 2)."""
    point = refresh_point(EXPIRES, obtained_at=obtained_at, refresh_before=60, refresh_jitter=0.5, draw=draw)
    assert point == pytest.approx(expected)


def test_window_start_is_the_earliest_point_any_draw_gives() -> None:
    """No draw in [0, 1] yields a refresh point before the window start."""
    timing = TokenTiming.validated(60, 0.5)
    start = timing.window_start(EXPIRES, obtained_at=0.0)
    points = [timing.point(EXPIRES, obtained_at=0.0, draw=i / 100) for i in range(101)]
    assert start == pytest.approx(EXPIRES - 90)
    assert min(points) == pytest.approx(start)
    assert max(points) == pytest.approx(EXPIRES - 60)


@pytest.mark.parametrize(
    ("refresh_before", "refresh_jitter", "error", "match"),
    [
        (0, 0.5, ValueError, "refresh_before must be > 0, got 0"),
        (-1, 0.5, ValueError, "refresh_before"),
        ("60", 0.5, TypeError, "refresh_before must be a number, got '60'"),
        (60, -0.1, ValueError, "refresh_jitter must be >= 0, got -0.1"),
        (60, float("nan"), ValueError, "refresh_jitter must be finite"),
    ],
)
def test_timing_validation_names_the_parameter(
    refresh_before: object, refresh_jitter: object, error: type[Exception], match: str
) -> None:
    """A bad timing option raises an error naming the parameter and the value."""
    with pytest.raises(error, match=match):
        TokenTiming.validated(refresh_before, refresh_jitter)


def test_valid_strictly_before_expiry() -> None:
    """A token is valid strictly before its expiry and not at it."""
    assert is_valid(100.0, 99.999)
    assert not is_valid(100.0, 100.0)
    assert not is_valid(100.0, 101.0)


def _state(value: str = "t1", expires_at: float = 100.0, refresh_at: float = 50.0) -> TokenState:
    state = TokenState()
    state.adopt(value, expires_at, refresh_at)
    return state


def test_empty_state_tells_exactly_one_caller_to_refresh() -> None:
    """With no token, the first caller refreshes and every later one waits."""
    state = TokenState()
    assert state.decide(0.0) is Action.REFRESH
    assert [state.decide(0.0) for _ in range(5)] == [Action.WAIT] * 5


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (10.0, Action.SERVE),
        (49.9, Action.SERVE),
        (50.0, Action.SERVE_AND_REFRESH),
        (99.9, Action.SERVE_AND_REFRESH),
        (100.0, Action.REFRESH),
    ],
)
def test_decisions_along_a_token_life(now: float, expected: Action) -> None:
    """Before the refresh point serve; from it, serve and refresh; at expiry, refresh and block."""
    assert _state().decide(now) is expected


def test_one_background_refresh_at_a_time() -> None:
    """Past the refresh point only the first caller starts a refresh; the rest are served."""
    state = _state()
    assert state.decide(60.0) is Action.SERVE_AND_REFRESH
    assert state.decide(61.0) is Action.SERVE
    assert state.decide(100.0) is Action.WAIT  # expired while the refresh runs: wait for it


def test_failed_background_refresh_waits_for_the_backoff_delay() -> None:
    """After a failed refresh the token serves and the next refresh starts only after the delay."""
    state = _state()
    state.decide(60.0)
    assert state.failed(60.0, 5.0) == 5.0
    assert state.failures == 1
    assert state.decide(64.9) is Action.SERVE
    assert state.decide(65.0) is Action.SERVE_AND_REFRESH


def test_retry_delay_never_reaches_past_expiry() -> None:
    """A backoff longer than the token's remaining life is cut at expiry, where callers block anyway."""
    state = _state()
    state.decide(90.0)
    assert state.failed(90.0, 60.0) == pytest.approx(10.0)
    assert state.decide(100.0) is Action.REFRESH


def test_adopt_resets_failures_and_retry() -> None:
    """A successful refresh clears the failure count and the retry gate."""
    state = _state()
    state.decide(60.0)
    state.failed(60.0, 30.0)
    state.adopt("t2", 200.0, 150.0)
    assert (state.value, state.failures, state.retry_at, state.refreshing) == ("t2", 0, 0.0, False)
    assert state.decide(150.0) is Action.SERVE_AND_REFRESH


def test_invalidate_only_drops_the_current_token() -> None:
    """invalidate(value) drops the token only while it is current; later calls for it do nothing."""
    state = _state()
    assert not state.invalidate("other")
    assert state.value == "t1"
    assert state.invalidate("t1")
    assert not state.servable(10.0)
    assert not state.invalidate("t1")
    assert state.decide(10.0) is Action.REFRESH


def test_acceptable_refuses_rejected_expired_and_older_tokens() -> None:
    """A token from elsewhere replaces ours only if valid, not refused, not ours and not older."""
    state = _state("t1", expires_at=100.0)
    assert state.acceptable("t2", 200.0, 10.0)
    assert not state.acceptable("t1", 100.0, 10.0)  # the one we hold
    assert not state.acceptable("t0", 90.0, 10.0)  # older
    assert not state.acceptable("t2", 5.0, 10.0)  # expired
    state.invalidate("t1")
    assert not state.acceptable("t1", 100.0, 10.0)  # refused by the server
    assert state.acceptable("t0", 90.0, 10.0)  # anything valid beats nothing


def test_pending_with_no_token_does_not_gate_the_next_caller() -> None:
    """With no token, a refresh left to another process lets the next caller try at once."""
    state = TokenState()
    state.decide(0.0)
    assert state.pending(0.0, 1.0) == 0.0
    assert state.decide(0.0) is Action.REFRESH


def test_a_failed_blocking_refresh_is_not_cached() -> None:
    """After a refresh that callers waited for fails, the next caller starts a new one at once."""
    state = TokenState()
    assert state.decide(0.0) is Action.REFRESH
    state.failed_blocking()
    assert state.failures == 1
    assert state.decide(0.0) is Action.REFRESH


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["decide", "adopt", "fail", "fail_blocking", "pending", "abandon", "invalidate"]),
        st.floats(min_value=0, max_value=50),
    ),
    max_size=60,
)


@given(_OPS)
def test_never_an_expired_token_and_never_two_refreshes(ops: list[tuple[str, float]]) -> None:
    """Whatever happens, decide() serves only unexpired tokens and never starts a second refresh while one runs."""
    state = TokenState()
    now = 0.0
    running = False
    issued = 0
    for op, step in ops:
        now += step
        if op == "decide":
            action = state.decide(now)
            if action in (Action.SERVE, Action.SERVE_AND_REFRESH):
                assert state.value is not None
                assert now < state.expires_at
            if action in (Action.REFRESH, Action.SERVE_AND_REFRESH):
                assert not running, "a second refresh started while one was running"
                running = True
            if action is Action.WAIT:
                assert running
        elif running and op == "adopt":
            issued += 1
            state.adopt(f"t{issued}", now + 100, now + 40)
            running = False
        elif running and op == "fail":
            state.failed(now, step)
            running = False
        elif running and op == "fail_blocking":
            state.failed_blocking()
            running = False
        elif running and op == "pending":
            state.pending(now, step)
            running = False
        elif running and op == "abandon":
            state.abandoned()
            running = False
        elif op == "invalidate" and state.value is not None:
            assert state.invalidate(state.value)
