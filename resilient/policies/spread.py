"""Spread: start each call after a random delay, so a fleet's cron jobs do not all start at once."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from .._machines._validate import number
from .._machines.schedule import spread_delay
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context
from ..core.events import emit
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from ..core.waiting import asleep, sleep

__all__ = ["Spread"]


class Spread(Policy):
    """Start the wrapped call after ``uniform(0, window)`` seconds.

    100 servers whose cron fires at the top of the hour then reach their
    dependency spread over ``window`` seconds instead of in the same second.
    Put it outside :class:`~resilient.OncePer` (``rs.pipeline(rs.Spread(60),
    rs.OncePer(3600, store=...))``): the first server to wake runs the job, the
    others find it done. The delay is waited on ``clock`` (asyncio: ``asleep``;
    not at all inside ``resilient.testing.no_waiting()``). Event:
    ``spread.delayed`` (``delay`` in seconds).

    Args:
        window: the spread in seconds (>= 0; 0 starts at once).
        rng: a ``random.Random`` (seed it for a reproducible spread).
        clock: what the delay is waited on.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "spread"

    def __init__(self, window: float, *, rng: random.Random | None = None, clock: Clock | None = None) -> None:
        self.window = number("window", window)
        if rng is not None and not callable(getattr(rng, "uniform", None)):
            raise TypeError(f"rng must be a random.Random, got {rng!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.rng = rng or random.Random()
        self.clock = clock or SYSTEM_CLOCK
        self._calls = Counter()

    def _delay(self, ctx: Context) -> float:
        delay = spread_delay(self.window, self.rng)
        self._calls.incr()
        emit("spread.delayed", policy="spread", operation=ctx.operation, key=None, delay=round(delay, 6))
        return delay

    def bind(self, inner: SyncStep) -> SyncStep:
        def spread_step(ctx: Context) -> Any:
            sleep(self.clock, self._delay(ctx))
            return inner(ctx)

        return spread_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        async def spread_step(ctx: Context) -> Any:
            await asleep(self.clock, self._delay(ctx))
            return await inner(ctx)

        return spread_step

    def stats(self) -> dict[str, Any]:
        """``calls`` delayed."""
        return {"calls": self._calls.value}

    def __repr__(self) -> str:
        return f"Spread({self.window!r})"
