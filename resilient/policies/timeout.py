"""Timeout: a deadline for the whole call, enforced on asyncio and told to inner policies."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from .._machines._validate import number
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context, current_deadline
from ..core.errors import TimeoutExceeded
from ..core.events import emit
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter

__all__ = ["Timeout"]


class Timeout(Policy):
    """Bound a call to ``seconds``.

    The deadline (``clock.monotonic() + seconds``, or an enclosing Timeout's if
    that is sooner) is put in ``ctx.deadline`` and in the context variable
    ``resilient.core.context.current_deadline`` for the duration of the call, so
    inner policies (``Retry``'s deadline) and the httpx transports honour it.

    * **Async calls** are cancelled at the deadline and raise
      :class:`~resilient.TimeoutExceeded` (a ``TimeoutError``), chained from the
      ``asyncio`` timeout; the cancelled work sees ``CancelledError``.
    * **A plain sync function cannot be interrupted in Python.** Around one,
      ``Timeout`` bounds only what consults the deadline (inner retries, lock
      waits, the httpx transports); a sync call that simply runs long returns
      its value late.

    A call that starts with the deadline already past raises at once. Event:
    ``timeout.exceeded``.

    Args:
        seconds: the time allowed (> 0). The cancellation runs on the event
            loop's real clock; ``clock`` only dates the deadline inner policies see.
        clock: time source for the deadline.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "timeout"

    def __init__(self, seconds: float, *, clock: Clock | None = None) -> None:
        self.seconds = number("seconds", seconds, strict=True)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._exceeded = Counter()

    def _deadline(self, ctx: Context) -> float:
        deadline = self.clock.monotonic() + self.seconds
        outer = ctx.effective_deadline()
        return deadline if outer is None or outer > deadline else outer

    def _exceeded_error(self, ctx: Context) -> TimeoutExceeded:
        self._exceeded.incr()
        emit("timeout.exceeded", operation=ctx.operation, key=self.partition, seconds=self.seconds)
        return TimeoutExceeded(f"{ctx.operation} exceeded its {self.seconds}s timeout")

    def bind(self, inner: SyncStep) -> SyncStep:
        def timeout_step(ctx: Context) -> Any:
            deadline = self._deadline(ctx)
            if deadline <= self.clock.monotonic():
                raise self._exceeded_error(ctx)
            saved = ctx.deadline
            token = None
            try:
                ctx.deadline = deadline
                token = current_deadline.set(deadline)
                return inner(ctx)
            finally:
                if token is not None:
                    current_deadline.reset(token)
                ctx.deadline = saved

        return timeout_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        async def timeout_step(ctx: Context) -> Any:
            deadline = self._deadline(ctx)
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise self._exceeded_error(ctx)
            saved = ctx.deadline
            token = None
            timer: asyncio.Timeout | None = None
            try:  # everything that can raise (asyncio.timeout without a running loop) is inside
                ctx.deadline = deadline
                token = current_deadline.set(deadline)
                timer = asyncio.timeout(left)
                async with timer:
                    return await inner(ctx)
            except TimeoutError as exc:
                if timer is not None and timer.expired():
                    raise self._exceeded_error(ctx) from exc
                raise
            finally:
                if token is not None:
                    current_deadline.reset(token)
                ctx.deadline = saved

        return timeout_step

    def stats(self) -> dict[str, Any]:
        return {"exceeded": self._exceeded.value}

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r})"
