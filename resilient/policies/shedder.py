"""LoadShedder: refuse work when too much is in flight or latency has run away."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from .._machines.shedder import ADMIT, ShedMachine
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context
from ..core.errors import LoadShedError
from ..core.events import emit
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter

__all__ = ["LoadShedder"]


class LoadShedder(Policy):
    """Reject with :class:`~resilient.LoadShedError` when overloaded, without calling.

    Overloaded means ``max_concurrent`` calls already in flight, or the mean
    latency of the calls completed in the last ``window`` seconds above
    ``latency_factor`` x the baseline (a slow moving average of all latencies,
    trusted after ``min_samples`` calls). Latency shedding ends by itself once
    a window passes with no slow completion. Event: ``shed.rejected`` (with
    ``reason``: ``"concurrency"`` or ``"latency"``).

    Args:
        max_concurrent: calls in flight at most (>= 1).
        latency_factor: how far above the baseline recent latency may go (> 1).
        window: seconds over which recent latency is averaged.
        min_samples: completed calls before latency is judged.
        clock: time source (latency is measured on ``clock.monotonic()``).

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "shedder"

    def __init__(
        self,
        max_concurrent: int,
        *,
        latency_factor: float = 3.0,
        window: float = 10.0,
        min_samples: int = 20,
        clock: Clock | None = None,
    ) -> None:
        self._machine = ShedMachine(
            max_concurrent=max_concurrent, latency_factor=latency_factor, window=window, min_samples=min_samples
        )
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._shed = Counter()

    def _admit(self, ctx: Context) -> float:
        now = self.clock.monotonic()
        with self._lock:
            verdict = self._machine.admit(now)
        if verdict != ADMIT:
            self._shed.incr()
            emit("shed.rejected", operation=ctx.operation, key=self.partition, reason=verdict)
            raise LoadShedError(f"load shed ({verdict})")
        return now

    def _done(self, started: float) -> None:
        now = self.clock.monotonic()
        with self._lock:
            self._machine.done(now, now - started)

    def _abort(self) -> None:
        with self._lock:
            self._machine.abort()

    def bind(self, inner: SyncStep) -> SyncStep:
        admit, done, abort = self._admit, self._done, self._abort

        def shed_step(ctx: Context) -> Any:
            started = admit(ctx)
            try:
                value = inner(ctx)
            except Exception:
                done(started)
                raise
            except BaseException:
                abort()
                raise
            done(started)
            return value

        return shed_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        admit, done, abort = self._admit, self._done, self._abort

        async def shed_step(ctx: Context) -> Any:
            started = admit(ctx)
            try:
                value = await inner(ctx)
            except Exception:
                done(started)
                raise
            except BaseException:
                abort()
                raise
            done(started)
            return value

        return shed_step

    def stats(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        with self._lock:
            m = self._machine
            return {
                "in_flight": m.in_flight,
                "shed": self._shed.value,
                "recent_latency": m.recent(now),
                "baseline_latency": m.baseline,
            }

    def __repr__(self) -> str:
        m = self._machine
        return f"LoadShedder({m.max_concurrent}, latency_factor={m.latency_factor})"
