"""The retry plan's decisions, pure and table-driven."""

from __future__ import annotations

import itertools

import pytest

from resilient._machines.retry import GiveUp, RetryPlan, Sleep, parse_retry_after


def plan(attempts: int = 3, deadline: float | None = None, max_retry_after: float | None = 60.0) -> RetryPlan:
    return RetryPlan(
        attempts=attempts,
        delays=itertools.repeat(1.0),
        deadline=deadline,
        max_retry_after=max_retry_after,
        attempt_started=0.0,
    )


def test_sleeps_until_attempts_run_out() -> None:
    """attempts=3 allows two sleeps, then gives up for attempts."""
    p = plan()
    assert p.next(0.0) == Sleep(1.0)
    p.started(1.0)
    assert p.next(1.0) == Sleep(1.0)
    p.started(2.0)
    assert p.next(2.0) == GiveUp("attempts")


def test_single_attempt_never_retries() -> None:
    """attempts=1 gives up at the first failure."""
    assert plan(attempts=1).next(0.0) == GiveUp("attempts")


@pytest.mark.parametrize(
    ("now", "deadline", "expected"),
    [
        (0.0, 10.0, Sleep(1.0)),  # 0 + 1 sleep + 0 attempt time fits
        (9.5, 10.0, GiveUp("deadline")),  # the sleep alone would end past it
        (10.0, 10.0, GiveUp("deadline")),
    ],
)
def test_deadline_rules(now: float, deadline: float, expected: object) -> None:
    """No sleep is begun that would end past the deadline."""
    p = RetryPlan(
        attempts=5, delays=itertools.repeat(1.0), deadline=deadline, max_retry_after=None, attempt_started=now
    )
    assert p.next(now) == expected


def test_deadline_counts_the_last_attempt_duration() -> None:
    """An attempt that took 3 s is assumed to take 3 s again: 5 + 1 + 3 > 8 gives up."""
    p = RetryPlan(attempts=5, delays=itertools.repeat(1.0), deadline=8.0, max_retry_after=None, attempt_started=2.0)
    assert p.next(5.0) == GiveUp("deadline")
    p2 = RetryPlan(attempts=5, delays=itertools.repeat(1.0), deadline=9.5, max_retry_after=None, attempt_started=2.0)
    assert p2.next(5.0) == Sleep(1.0)


def test_retry_after_replaces_the_delay_and_too_long_gives_up() -> None:
    """Retry-After sets the delay; one above max_retry_after ends retries at once."""
    assert plan().next(0.0, retry_after=7.0) == Sleep(7.0)
    assert plan(max_retry_after=5.0).next(0.0, retry_after=7.0) == GiveUp("retry_after")
    assert plan(max_retry_after=None).next(0.0, retry_after=7.0) == Sleep(1.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 12 ", 12.0),
        (" 1.5 ", None),  # delay-seconds is 1*DIGIT
        ("\u0665", None),  # ARABIC-INDIC DIGIT FIVE: float() reads it, RFC 9110 does not
        ("1_000", None),
        ("1e2", None),
        ("inf", None),
        ("nan", None),
        ("+3", None),
        ("Wed Oct 21 07:28:00 2015", 30.0),  # asctime: no zone, meaning GMT
        ("Wed Oct  7 07:28:00 2015", 0.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 30.0),  # RFC 850
        ("0", 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Retry-After is read as RFC 9110 has it: ASCII-digit delay-seconds, or an HTTP-date (any of its three forms)."""
    now = 1445412450.0  # 2015-10-21 07:27:30 UTC
    assert parse_retry_after(header, now) == expected
