"""Token bucket arithmetic: ``rate`` tokens per second, at most ``burst`` held.

``tokens(now) = min(burst, tokens(last) + (now - last) * rate)``; a take of
``n`` succeeds when ``tokens(now) >= n`` and otherwise waits
``(n - tokens(now)) / rate`` seconds. The same contract as
``resilient.stores.base.BucketStore.take``.

Float rounding must not refuse a call that arrives exactly on time (``1 / rate``
after the last one: ``0.1 * 10`` tokens can come out at ``0.9999999999999998``),
so a take compares with a tolerance: :func:`slack` tokens, a few ulps of the
time reading scaled by ``rate`` (readings of ``clock.time()`` near 1.7e9 carry
~2e-7 s of rounding) plus 1e-9 of a token. The Redis bucket's Lua uses the
same formula.
"""

from __future__ import annotations

from ._validate import number

__all__ = ["TokenBucket", "slack"]


def slack(rate: float, now: float, tokens: float) -> float:
    """Tokens a take may be short by and still succeed (float rounding, not a real shortfall)."""
    return 1e-9 * tokens + 1e-15 * abs(now) * rate


class TokenBucket:
    """An in-process token bucket, full at the start; not thread-safe.

    Args:
        rate: tokens added per second (> 0).
        burst: capacity, the most tokens taken at once (> 0).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate = number("rate", rate, strict=True)
        self.burst = number("burst", burst, strict=True)
        self._tokens = self.burst
        self._last: float | None = None

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (refills it to ``now``)."""
        last = self._last
        if last is None or now > last:
            if last is not None:
                self._tokens = min(self.burst, self._tokens + (now - last) * self.rate)
            self._last = now
        return self._tokens

    def take(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` at ``now``: 0.0 if taken, else the seconds until they would be there."""
        have = self.available(now)
        if have >= tokens - slack(self.rate, now, tokens):
            self._tokens = max(0.0, have - tokens)
            return 0.0
        if tokens > self.burst:
            return float("inf")
        return (tokens - have) / self.rate
