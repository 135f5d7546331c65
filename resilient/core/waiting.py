"""Sleeping on a clock, and the switch behind :func:`resilient.testing.no_waiting`.

Every driver that waits (retry loops, lock polls, token polls) sleeps through
:func:`sleep` / :func:`asleep`, so ``no_waiting()`` reaches them all.
"""

from __future__ import annotations

import threading

from .clock import Clock

__all__ = ["adjust_no_waiting", "asleep", "sleep", "waiting_disabled"]

_no_wait_depth = 0
_no_wait_lock = threading.Lock()


def waiting_disabled() -> bool:
    """True inside :func:`resilient.testing.no_waiting`."""
    return _no_wait_depth > 0


def adjust_no_waiting(delta: int) -> None:
    """Enter (+1) or leave (-1) a :func:`resilient.testing.no_waiting` block."""
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
