"""Backoff schedules (AWS "Exponential Backoff and Jitter") as pure iterators.

Attempt index ``n`` counts retries from 0: the first retry waits ``delay(0)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ._validate import number

__all__ = ["Backoff", "Constant", "DecorrelatedJitter", "EqualJitter", "Exponential", "FullJitter", "jittered"]


class Backoff:
    """A schedule of delays; ``delays(rng)`` is an endless iterator of seconds."""

    __slots__ = ()

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        raise NotImplementedError


class _Exponential(Backoff):
    __slots__ = ("base", "cap", "multiplier")

    def __init__(self, base: float, cap: float, *, multiplier: float = 2.0) -> None:
        self.base = number("base", base)
        self.cap = number("cap", cap)
        self.multiplier = number("multiplier", multiplier, minimum=1.0)
        if self.cap < self.base:
            raise ValueError(f"cap must be >= base ({base!r}), got {cap!r}")

    def _ceilings(self) -> Iterator[float]:
        """``min(cap, base * multiplier**n)`` for n = 0, 1, ... without overflow."""
        t = self.base
        while t < self.cap:
            yield t
            t *= self.multiplier
            if self.multiplier == 1.0:
                while True:
                    yield t
        while True:
            yield self.cap

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base={self.base!r}, cap={self.cap!r})"


class FullJitter(_Exponential):
    """``uniform(0, min(cap, base * 2**n))``: the least total work under contention."""

    __slots__ = ()

    def __init__(self, base: float, cap: float) -> None:
        super().__init__(base, cap)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        uniform = (rng or random).uniform
        for t in self._ceilings():
            yield uniform(0.0, t)


class EqualJitter(_Exponential):
    """``t/2 + uniform(0, t/2)`` with ``t = min(cap, base * 2**n)``: never shorter than half."""

    __slots__ = ()

    def __init__(self, base: float, cap: float) -> None:
        super().__init__(base, cap)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        uniform = (rng or random).uniform
        for t in self._ceilings():
            half = t / 2
            yield half + uniform(0.0, half)


class Exponential(_Exponential):
    """``min(cap, base * multiplier**n)``, no jitter (prefer a jittered schedule)."""

    __slots__ = ()

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        return self._ceilings()

    def __repr__(self) -> str:
        return f"Exponential(base={self.base!r}, cap={self.cap!r}, multiplier={self.multiplier!r})"


class DecorrelatedJitter(Backoff):
    """``s0 = base``; ``s(n) = min(cap, uniform(base, 3 * s(n-1)))``."""

    __slots__ = ("base", "cap")

    def __init__(self, base: float, cap: float) -> None:
        self.base = number("base", base)
        self.cap = number("cap", cap)
        if self.cap < self.base:
            raise ValueError(f"cap must be >= base ({base!r}), got {cap!r}")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        uniform = (rng or random).uniform
        base, cap = self.base, self.cap
        sleep = base
        while True:
            sleep = min(cap, uniform(base, sleep * 3))
            yield sleep

    def __repr__(self) -> str:
        return f"DecorrelatedJitter(base={self.base!r}, cap={self.cap!r})"


class Constant(Backoff):
    """The same ``delay`` before every retry."""

    __slots__ = ("delay",)

    def __init__(self, delay: float) -> None:
        self.delay = number("delay", delay)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        delay = self.delay
        while True:
            yield delay

    def __repr__(self) -> str:
        return f"Constant({self.delay!r})"


def jittered(ttl: float, spread: float, *, rng: random.Random | None = None) -> float:
    """``ttl + uniform(-spread, spread)``: spread expiries so keys written together
    do not expire together. ``spread`` must lie in ``[0, ttl]``."""
    ttl = number("ttl", ttl)
    spread = number("spread", spread)
    if spread > ttl:
        raise ValueError(f"spread must be <= ttl ({ttl!r}), got {spread!r}")
    return ttl + (rng or random).uniform(-spread, spread)
