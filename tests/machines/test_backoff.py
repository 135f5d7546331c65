"""Backoff schedules follow DESIGN.md's formulas exactly, reproducibly."""

from __future__ import annotations

import itertools
import random

import pytest

import resilient as rs

N = 20_000
BASE, CAP = 0.1, 10.0


def samples(backoff: rs.Backoff, index: int, n: int = N, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(next(itertools.islice(backoff.delays(rng), index, None)))
    return out


@pytest.mark.parametrize("n", range(9))
def test_full_jitter_bounds_and_mean(n: int) -> None:
    """FullJitter(n) lies in [0, min(cap, base*2^n)] and its mean is within 5 % of half that."""
    ceiling = min(CAP, BASE * 2**n)
    xs = samples(rs.FullJitter(BASE, CAP), n)
    assert all(0.0 <= x <= ceiling for x in xs)
    assert abs(sum(xs) / len(xs) - ceiling / 2) <= 0.05 * ceiling / 2


@pytest.mark.parametrize("n", range(9))
def test_equal_jitter_bounds(n: int) -> None:
    """EqualJitter(n) lies in [t/2, t] with t = min(cap, base*2^n)."""
    t = min(CAP, BASE * 2**n)
    xs = samples(rs.EqualJitter(BASE, CAP), n)
    assert all(t / 2 <= x <= t for x in xs)
    assert abs(sum(xs) / len(xs) - 0.75 * t) <= 0.05 * 0.75 * t


@pytest.mark.parametrize("n", range(9))
def test_decorrelated_jitter_bounds(n: int) -> None:
    """DecorrelatedJitter stays in [base, min(cap, 3^(n+1)*base)]."""
    xs = samples(rs.DecorrelatedJitter(BASE, CAP), n, n=2_000)
    assert all(BASE <= x <= min(CAP, BASE * 3 ** (n + 1)) for x in xs)


def test_decorrelated_first_delay_and_recurrence() -> None:
    """The first delay is uniform(b, 3b) and each next one uniform(b, 3*previous), capped."""
    rng = random.Random(3)
    ref = random.Random(3)
    delays = list(itertools.islice(rs.DecorrelatedJitter(0.005, 2.0).delays(rng), 50))
    prev = 0.005
    for d in delays:
        expected = min(2.0, ref.uniform(0.005, prev * 3))
        assert d == expected
        prev = expected


def test_exponential_and_constant() -> None:
    """Exponential doubles from base up to cap; Constant repeats its delay."""
    assert list(itertools.islice(rs.Exponential(0.1, 1.0).delays(), 6)) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert list(itertools.islice(rs.Exponential(1, 100, multiplier=3).delays(), 4)) == [1, 3, 9, 27]
    assert list(itertools.islice(rs.Constant(0.5).delays(), 3)) == [0.5, 0.5, 0.5]


def test_seeded_rng_is_reproducible() -> None:
    """Two runs with the same seed give the same delays."""
    for cls in (rs.FullJitter, rs.EqualJitter, rs.DecorrelatedJitter):
        a = list(itertools.islice(cls(0.1, 5).delays(random.Random(42)), 20))
        b = list(itertools.islice(cls(0.1, 5).delays(random.Random(42)), 20))
        assert a == b


def test_jittered_spreads_within_bounds() -> None:
    """jittered(ttl, spread) lies in [ttl - spread, ttl + spread] and is not constant."""
    rng = random.Random(1)
    xs = [rs.jittered(60, 6, rng=rng) for _ in range(1_000)]
    assert all(54 <= x <= 66 for x in xs)
    assert max(xs) - min(xs) > 10


@pytest.mark.parametrize(
    ("make", "name", "value"),
    [
        (lambda: rs.FullJitter(-1, 10), "base", "-1"),
        (lambda: rs.EqualJitter(1, 0.5), "cap", "0.5"),
        (lambda: rs.DecorrelatedJitter(2, 1), "cap", "1"),
        (lambda: rs.Exponential(0.1, 1, multiplier=0.5), "multiplier", "0.5"),
        (lambda: rs.Constant(-0.1), "delay", "-0.1"),
        (lambda: rs.jittered(10, 11), "spread", "11"),
        (lambda: rs.FullJitter(float("nan"), 1), "base", "nan"),
    ],
)
def test_bad_arguments_name_parameter_and_value(make, name: str, value: str) -> None:
    """A bad backoff argument raises ValueError naming the parameter and the value."""
    with pytest.raises(ValueError, match=rf"{name}.*{value}"):
        make()


def test_non_numbers_are_type_errors() -> None:
    """A string base is a TypeError naming base."""
    with pytest.raises(TypeError, match="base"):
        rs.FullJitter("1", 2)  # type: ignore[arg-type]
