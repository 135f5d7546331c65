"""AdaptiveThrottle: client-side throttling from the Google SRE book."""

from __future__ import annotations

import random
import threading
from typing import Any, ClassVar

from .._machines.throttle import ThrottleWindow
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context
from ..core.errors import LoadShedError
from ..core.events import emit
from ..core.outcome import compile_on
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter

__all__ = ["AdaptiveThrottle"]


class AdaptiveThrottle(Policy):
    """Reject calls locally, at random, in proportion to what the backend refuses.

    Over the last ``window`` seconds it counts ``requests`` (every call) and
    ``accepts`` (calls that did not fail by ``on``), and rejects a new call
    with :class:`~resilient.LoadShedError` with probability::

        max(0, (requests - k * accepts) / (requests + 1))

    (Google SRE, "Handling Overload"). A healthy backend is never throttled; a
    backend refusing everything receives a trickle, enough to see it recover.
    Event: ``throttle.rejected`` (with ``probability``).

    Args:
        k: accepts multiplier (>= 1; 2 is the book's choice, lower is stricter).
        window: seconds of history (the book: 2 minutes).
        on: what counts as a refusal by the backend; default any ``Exception``
            but ``rs.Rejected``.
        clock: time source; ``rng``: a ``random.Random`` for reproducible draws.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "throttle"

    def __init__(
        self,
        *,
        k: float = 2.0,
        window: float = 120,
        on: object = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._machine = ThrottleWindow(k=k, window=window)
        self._on = compile_on(on)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._random = (rng or random.Random()).random
        self._lock = threading.Lock()
        self._rejected = Counter()

    @property
    def k(self) -> float:
        return self._machine.k

    def probability(self) -> float:
        """The current local rejection probability."""
        now = self.clock.monotonic()
        with self._lock:
            return self._machine.probability(now)

    def _admit(self, ctx: Context) -> None:
        now = self.clock.monotonic()
        with self._lock:
            draw = self._random()
            ok = self._machine.admit(now, draw)
        if not ok:
            self._rejected.incr()
            emit("throttle.rejected", operation=ctx.operation, key=self.partition)
            raise LoadShedError("throttled locally: the backend is refusing calls")

    def _accepted(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            self._machine.accepted(now)

    def bind(self, inner: SyncStep) -> SyncStep:
        admit, accepted = self._admit, self._accepted
        matches_error = self._on.matches_error
        matches_result = self._on.result_matcher

        def throttle_step(ctx: Context) -> Any:
            admit(ctx)
            try:
                value = inner(ctx)
            except Exception as exc:
                if not matches_error(exc):
                    accepted()
                raise
            if matches_result is None or not matches_result(value):
                accepted()
            return value

        return throttle_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        admit, accepted = self._admit, self._accepted
        matches_error = self._on.matches_error
        matches_result = self._on.result_matcher

        async def throttle_step(ctx: Context) -> Any:
            admit(ctx)
            try:
                value = await inner(ctx)
            except Exception as exc:
                if not matches_error(exc):
                    accepted()
                raise
            if matches_result is None or not matches_result(value):
                accepted()
            return value

        return throttle_step

    def stats(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        with self._lock:
            requests, accepts = self._machine.totals(now)
            p = self._machine.probability(now)
        return {"requests": requests, "accepts": accepts, "probability": p, "rejected": self._rejected.value}

    def __repr__(self) -> str:
        return f"AdaptiveThrottle(k={self.k!r}, window={self._machine.window!r})"
