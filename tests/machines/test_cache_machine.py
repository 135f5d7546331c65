"""The cache's pure decisions: fresh/early/stale/miss, XFetch's draw, lifetimes, polling, store health."""

from __future__ import annotations

import ast
import math
import random
from pathlib import Path

import pytest

from resilient._machines import cache as m


@pytest.mark.parametrize(
    ("now", "serve_stale", "expected"),
    [
        (5.0, True, m.FRESH),
        (9.999, False, m.FRESH),
        (10.0, True, m.STALE),  # expiry is exclusive: at expires_at the value is stale
        (15.0, True, m.STALE),
        (15.0, False, m.MISS),
        (20.0, True, m.MISS),  # past stale_until nothing is served
        (25.0, True, m.MISS),
    ],
)
def test_classify_without_xfetch(now: float, serve_stale: bool, expected: str) -> None:
    """An entry is fresh before expires_at, stale until stale_until when allowed, else a miss."""
    assert m.classify(now, 10.0, 20.0, serve_stale=serve_stale) == expected


@pytest.mark.parametrize(
    ("now", "delta", "beta", "u", "expected"),
    [
        (9.0, 1.0, 1.0, 0.5, False),  # 9 + ln2 = 9.69 < 10
        (9.5, 1.0, 1.0, 0.5, True),  # 9.5 + 0.69 >= 10
        (9.0, 1.0, 2.0, 0.5, True),  # beta doubles the reach: 9 + 1.39 >= 10
        (9.0, 0.0, 1.0, 0.01, False),  # no delta: never early
        (9.0, 1.0, 1.0, 1.0, False),  # u = 1: ln(1) = 0
        (9.0, 1.0, 1.0, 0.0, True),  # u = 0: -ln(0) is infinite
        (10.0, 1.0, 1.0, 1.0, True),  # at expiry: due whatever the draw
        (0.0, 1.0, 1.0, math.exp(-10), True),  # exactly reaching expiry counts
    ],
)
def test_xfetch_rule(now: float, delta: float, beta: float, u: float, expected: bool) -> None:
    """XFetch is due when now - delta*beta*ln(u) >= expires_at."""
    assert m.xfetch_due(now, 10.0, delta, beta, u) is expected


def test_classify_reports_early_only_when_xfetch_is_on() -> None:
    """With a beta and a small draw a fresh entry is EARLY; without a beta it stays FRESH."""
    assert m.classify(9.5, 10.0, 20.0, serve_stale=True, delta=1.0, beta=1.0, u=0.5) == m.EARLY
    assert m.classify(9.5, 10.0, 20.0, serve_stale=True, delta=1.0, beta=None, u=0.5) == m.FRESH


def test_xfetch_probability_matches_the_formula() -> None:
    """The chance of an early recompute at gap g is exp(-g / (delta * beta))."""
    rng = random.Random(7)
    gap, delta, beta = 1.0, 0.5, 1.0
    draws = 20_000
    due = sum(m.xfetch_due(10.0 - gap, 10.0, delta, beta, 1.0 - rng.random()) for _ in range(draws))
    assert due / draws == pytest.approx(math.exp(-gap / (delta * beta)), abs=0.01)


@pytest.mark.parametrize("beta", [0, -1, float("nan"), "1"])
def test_xfetch_rejects_bad_beta(beta: object) -> None:
    """XFetch(beta) must be a positive number; the error names beta and the value."""
    with pytest.raises((ValueError, TypeError), match="beta"):
        m.XFetch(beta=beta)  # type: ignore[arg-type]


@pytest.mark.parametrize(("u", "expected"), [(0.0, 90.0), (0.5, 100.0), (0.999999, 110.0)])
def test_lifetime_spreads_over_the_jitter_window(u: float, expected: float) -> None:
    """lifetime = ttl + (2u - 1) * jitter."""
    assert m.lifetime(100.0, 10.0, u) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    ("fresh", "lease", "refreshing", "stale_usable", "serve_stale", "expected"),
    [
        (True, False, False, False, True, m.USE),
        (False, True, False, True, True, m.FETCH),
        (False, False, True, True, True, m.STALE),
        (False, False, True, True, False, m.WAIT),
        (False, False, True, False, True, m.WAIT),
    ],
)
def test_after_lookup(
    fresh: bool, lease: bool, refreshing: bool, stale_usable: bool, serve_stale: bool, expected: str
) -> None:
    """After the atomic lookup: use a fresh value, fetch with the lease, serve stale, or wait."""
    got = m.after_lookup(
        fresh=fresh, lease=lease, refreshing=refreshing, stale_usable=stale_usable, serve_stale=serve_stale
    )
    assert got == expected


def test_poll_plan_backs_off_with_jitter_and_stops_at_the_wait() -> None:
    """Poll delays grow (equal jitter, never below half the ceiling), are capped, and end at the wait."""
    plan = m.PollPlan(started=0.0, wait=1.0, base=0.01, cap=0.08)
    now = 0.0
    delays = []
    while (d := plan.next(now, 0.5)) is not None:
        delays.append(d)
        now += d
    assert delays[:4] == pytest.approx([0.0075, 0.015, 0.03, 0.06])
    assert max(delays) <= 0.08
    assert min(delays[:-1]) >= 0.005
    assert now == pytest.approx(1.0)


def test_poll_plan_is_bounded_when_time_stands_still() -> None:
    """A clock that never moves still ends the polling after max_polls."""
    plan = m.PollPlan(started=0.0, wait=1.0, max_polls=5)
    assert [plan.next(0.0, 0.0) is not None for _ in range(6)] == [True] * 5 + [False]


def test_store_health_backs_off_and_recovers() -> None:
    """Each store failure rests it longer (0.5, 1, 2, 4, 5 s cap); a success resets it."""
    health = m.StoreHealth()
    assert health.usable(0.0)
    pauses = [health.failed(100.0) - 100.0 for _ in range(6)]
    assert pauses == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert not health.usable(104.9)
    assert health.usable(105.0)
    health.succeeded()
    assert health.failed(0.0) == 0.5


def test_machine_is_pure() -> None:
    """The cache machine imports nothing that waits or does I/O."""
    tree = ast.parse(Path(m.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"time", "threading", "asyncio", "httpx", "redis", "random"}


def test_poll_plan_is_cut_short_by_an_earlier_deadline() -> None:
    """A deadline before the end of the wait ends the polling there, and says so."""
    plan = m.PollPlan(started=0.0, wait=5.0, deadline=0.5)
    assert plan.cut_short
    assert plan.next(0.5, 0.0) is None
    assert not m.PollPlan(started=0.0, wait=5.0, deadline=9.0).cut_short
