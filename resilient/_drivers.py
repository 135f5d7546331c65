"""The only places that wait: sync loops beside their async twins.

Machines decide (``Sleep``/``GiveUp``); these carry the decisions out. Keep
each sync driver next to its async twin so a change to one is seen in both.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._clock import Clock
from ._context import Context
from ._machines.retry import GiveUp
from ._outcome import Outcome

if TYPE_CHECKING:
    from ._policy import AsyncStep, SyncStep
    from .policies.retry import RetryCall

__all__ = ["asleep", "drive_retry", "drive_retry_async", "sleep", "waiting_disabled"]

_no_wait_depth = 0
_no_wait_lock = threading.Lock()


def waiting_disabled() -> bool:
    """True inside :func:`resilient.testing.no_waiting`."""
    return _no_wait_depth > 0


def _set_no_wait(delta: int) -> None:
    global _no_wait_depth
    with _no_wait_lock:
        _no_wait_depth += delta


def sleep(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` on ``clock`` (not at all under ``no_waiting()``)."""
    if seconds > 0 and not _no_wait_depth:
        clock.sleep(seconds)


async def asleep(clock: Clock, seconds: float) -> None:
    """Await ``seconds`` on ``clock`` (not at all under ``no_waiting()``)."""
    if seconds > 0 and not _no_wait_depth:
        await clock.asleep(seconds)


# -- retry ---------------------------------------------------------------------


def drive_retry(call: RetryCall, inner: SyncStep, ctx: Context, outcome: Outcome[Any]) -> Any:
    """Retry ``inner`` after its first failure ``outcome`` until it succeeds or the plan gives up."""
    while True:
        decision = call.decide(outcome)
        if isinstance(decision, GiveUp):
            return outcome.unwrap()
        sleep(call.clock, decision.delay)
        call.starting()
        try:
            value = inner(ctx)
        except Exception as exc:
            if not call.is_failure_error(exc):
                raise
            outcome = Outcome(error=exc)
            continue
        if call.is_failure_result(value):
            outcome = Outcome(value)
            continue
        call.succeeded()
        return value


async def drive_retry_async(call: RetryCall, inner: AsyncStep, ctx: Context, outcome: Outcome[Any]) -> Any:
    """The async twin of :func:`drive_retry`."""
    while True:
        decision = call.decide(outcome)
        if isinstance(decision, GiveUp):
            return outcome.unwrap()
        await asleep(call.clock, decision.delay)
        call.starting()
        try:
            value = await inner(ctx)
        except Exception as exc:
            if not call.is_failure_error(exc):
                raise
            outcome = Outcome(error=exc)
            continue
        if call.is_failure_result(value):
            outcome = Outcome(value)
            continue
        call.succeeded()
        return value
