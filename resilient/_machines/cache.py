"""Cache decisions: fresh, early, stale or miss; XFetch's draw; jittered lifetimes.

Pure: every reading of the clock and every random draw comes in as an argument.
Times on entries are wall-clock seconds (they may be shared by a fleet);
durations (delta, polling) are measured by the caller on the monotonic clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from ._validate import number

__all__ = [
    "EARLY",
    "FETCH",
    "FRESH",
    "MISS",
    "STALE",
    "USE",
    "WAIT",
    "XFETCH_REACH",
    "PollPlan",
    "StoreHealth",
    "Timed",
    "XFetch",
    "after_lookup",
    "classify",
    "lifetime",
    "xfetch_due",
]

# What a read of one entry means for the caller (``classify``).
FRESH: Final = "fresh"  # serve it
EARLY: Final = "early"  # serve it, and refresh it in the background (XFetch)
STALE: Final = "stale"  # serve it at once, and refresh it in the background
MISS: Final = "miss"  # nothing servable: load it (coalesced)

# What the miss path does after the store's atomic ``lookup`` (``after_lookup``).
USE: Final = "use"  # a fresh value is there (written meanwhile): return it
FETCH: Final = "fetch"  # we hold the lease: call the origin, write, release
WAIT: Final = "wait"  # another holder refreshes and there is nothing to serve: poll


#: ``-ln(2**-53)``: with ``u = 1 - random()`` (so ``u >= 2**-53``), XFetch can
#: never fire while ``expires_at - now > delta * beta * XFETCH_REACH``. Hits
#: that far from expiry are surely FRESH and need no draw.
XFETCH_REACH: Final = 53 * math.log(2)


@dataclass(frozen=True, slots=True)
class XFetch:
    """Probabilistic early recomputation (Vattani, Chierichetti, Lowenstein, VLDB 2015).

    A hit recomputes early, in the background, when
    ``now - delta * beta * ln(u) >= expires_at`` with ``u`` uniform in ``(0, 1]``
    and ``delta`` the seconds the entry's value took to compute. ``beta > 1``
    favours earlier refreshes, ``beta < 1`` later ones.

    Args:
        beta: the eagerness factor, > 0 (1.0 is the paper's optimum).
    """

    beta: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", number("beta", self.beta, strict=True))


@dataclass(frozen=True, slots=True)
class Timed:
    """A value with a lifetime of its own, returned by the function a ``Cache`` wraps.

    The cache stores ``value`` fresh for ``ttl`` seconds, then stale for
    ``stale_ttl`` more (instead of its own ``ttl`` and ``stale_ttl``, without
    jitter), and hands out ``value``; with ``ttl + stale_ttl <= 0`` it stores
    nothing. The HTTP response cache gives each response the freshness RFC 9111
    finds in it this way.
    """

    value: Any
    ttl: float
    stale_ttl: float


def xfetch_due(now: float, expires_at: float, delta: float, beta: float, u: float) -> bool:
    """XFetch's rule for one draw ``u`` in ``(0, 1]``: ``now - delta*beta*ln(u) >= expires_at``."""
    if now >= expires_at:
        return True
    if delta <= 0.0 or u >= 1.0:
        return False
    if u <= 0.0:  # ln(0) = -inf: always due
        return True
    return now - delta * beta * math.log(u) >= expires_at


def classify(
    now: float,
    expires_at: float,
    stale_until: float,
    *,
    serve_stale: bool,
    delta: float = 0.0,
    beta: float | None = None,
    u: float = 1.0,
) -> str:
    """What an entry read at wall time ``now`` means: FRESH, EARLY, STALE or MISS.

    ``beta`` is XFetch's (None: no early recomputation) and ``u`` its draw.
    A value past ``expires_at`` is STALE until ``stale_until`` when stale values
    may be served, else MISS. (The cache's hit path inlines the first test,
    ``now < expires_at`` without XFetch, which gives FRESH.)
    """
    if now < expires_at:
        if beta is not None and xfetch_due(now, expires_at, delta, beta, u):
            return EARLY
        return FRESH
    if serve_stale and now < stale_until:
        return STALE
    return MISS


def after_lookup(*, fresh: bool, lease: bool, refreshing: bool, stale_usable: bool, serve_stale: bool) -> str:
    """The miss path's next step after the store's atomic ``lookup``.

    Args:
        fresh: the lookup returned an entry still fresh (written meanwhile).
        lease: the lookup handed us the lease.
        refreshing: another holder has the lease.
        stale_usable: the lookup returned a value still within its stale window.
        serve_stale: stale values may be served while another refreshes.
    """
    if fresh:
        return USE
    if lease:
        return FETCH
    if refreshing and serve_stale and stale_usable:
        return STALE
    return WAIT


def lifetime(ttl: float, jitter: float, u: float) -> float:
    """A write's freshness: ``ttl + (2u - 1) * jitter`` for a draw ``u`` in ``[0, 1)``.

    So keys written together expire spread over ``[ttl - jitter, ttl + jitter]``.
    """
    return ttl + (2.0 * u - 1.0) * jitter


class PollPlan:
    """Bounded, jittered polling while another holder refreshes an entry.

    Delays grow as equal jitter on ``min(cap, base * 2**n)`` (never shorter
    than half the ceiling, so no spinning), cut to what is left of ``wait``
    seconds from ``started``; ``next`` returns None once the wait is over (the
    caller then fetches itself). At most ``max_polls`` polls, so a clock that
    does not move (``no_waiting()``) still ends the loop.
    """

    __slots__ = ("_ceiling", "base", "cap", "cut_short", "deadline", "max_polls", "polls")

    def __init__(
        self,
        *,
        started: float,
        wait: float,
        deadline: float | None = None,
        base: float = 0.005,
        cap: float = 0.1,
        max_polls: int = 1000,
    ) -> None:
        self.deadline = started + wait
        #: True when an enclosing deadline (same clock) ends the wait before ``wait`` does.
        self.cut_short = deadline is not None and deadline < self.deadline
        if deadline is not None and self.cut_short:
            self.deadline = deadline
        self.base = base
        self.cap = cap
        self.max_polls = max_polls
        self.polls = 0
        self._ceiling = base

    def next(self, now: float, u: float) -> float | None:
        """Seconds to wait before the next poll (``u`` uniform in [0, 1)), or None: stop waiting."""
        left = self.deadline - now
        if left <= 0.0 or self.polls >= self.max_polls:
            return None
        self.polls += 1
        t = self._ceiling
        self._ceiling = min(self.cap, t * 2.0)
        return min(left, t / 2.0 + u * t / 2.0)


class StoreHealth:
    """Whether to use the shared store or the in-process fallback after store errors.

    Each failure sends callers to the fallback for ``min(cap, base * 2**k)``
    seconds (k = consecutive failures - 1); then the next call probes the store.
    A success resets it. So a store that is down costs one failed call per
    probe interval, and caching on it resumes by itself within ``cap`` seconds.
    """

    __slots__ = ("base", "cap", "failures", "retry_at")

    def __init__(self, *, base: float = 0.5, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.retry_at = -math.inf

    def failed(self, now: float) -> float:
        """Record a failure at monotonic ``now``; return when to probe again."""
        self.failures += 1
        pause = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 32))
        self.retry_at = now + pause
        return self.retry_at

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = -math.inf

    def usable(self, now: float) -> bool:
        """True when the store may be tried at ``now`` (healthy, or due a probe)."""
        return now >= self.retry_at
