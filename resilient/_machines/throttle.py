"""Client-side adaptive throttling (Google SRE book, "Handling Overload").

Over a sliding window the client counts ``requests`` (every call it was
asked to make, rejected locally or not) and ``accepts`` (calls the backend
accepted). A new call is rejected locally with probability::

    p = max(0, (requests - k * accepts) / (requests + 1))

With ``k = 2`` the client lets through about twice what the backend accepts;
a backend that accepts a fraction ``a`` of what reaches it sees, in the steady
state, a fraction ``f = 1 / (requests + 1 - k * a * requests)`` of the calls
when ``k * a < 1`` (and all of them when ``k * a >= 1``).
"""

from __future__ import annotations

from ._validate import number
from .window import SlidingWindow

__all__ = ["ThrottleWindow", "reject_probability"]


def reject_probability(requests: float, accepts: float, k: float) -> float:
    """``max(0, (requests - k * accepts) / (requests + 1))``."""
    return max(0.0, (requests - k * accepts) / (requests + 1.0))


class ThrottleWindow:
    """Requests and accepts over the last ``window`` seconds; not thread-safe.

    Args:
        k: the multiplier on accepts (>= 1; lower throttles more).
        window: seconds of history (> 0).
    """

    __slots__ = ("_counts", "k")

    def __init__(self, *, k: float = 2.0, window: float = 120.0) -> None:
        self.k = number("k", k, minimum=1.0)
        self._counts = SlidingWindow(window, fields=2)

    @property
    def window(self) -> float:
        return self._counts.window

    def probability(self, now: float) -> float:
        """The local rejection probability at ``now``."""
        requests, accepts = self._counts.totals(now)
        return reject_probability(requests, accepts, self.k)

    def admit(self, now: float, draw: float) -> bool:
        """Count a request at ``now``; True to send it, False to reject it locally.

        ``draw`` is a uniform random number in ``[0, 1)``.
        """
        p = self.probability(now)
        self._counts.add(now, 0)
        return draw >= p

    def accepted(self, now: float) -> None:
        """Count a call the backend accepted."""
        self._counts.add(now, 1)

    def totals(self, now: float) -> tuple[int, int]:
        requests, accepts = self._counts.totals(now)
        return int(requests), int(accepts)
