"""Retry decisions: after a failure, sleep how long, or give up and why."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["GiveUp", "RetryPlan", "Sleep", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``delay`` seconds, then make the next attempt."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop: ``reason`` is ``"attempts"``, ``"deadline"``, ``"retry_after"``, ``"budget"``
    or ``"not_replayable"`` (the call must not be made twice)."""

    reason: str


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, as RFC 9110 (section 10.2.3) reads it.

    ``delay-seconds`` is ASCII digits only (``"120"``; not ``"1e2"``, ``"1_000"``,
    ``"inf"`` or other scripts' digits); an ``HTTP-date`` is any of its three forms
    (IMF-fixdate ``Sun, 06 Nov 1994 08:49:37 GMT``, RFC 850, asctime
    ``Sun Nov  6 08:49:37 1994``), always GMT, read against ``now_wall`` (epoch
    seconds). An unreadable or absent value gives ``None``; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip(" \t")
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    if text[0].isdigit() or text[0] in "+-.":  # a number, but not delay-seconds
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime carries no zone; every HTTP-date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_wall)


class RetryPlan:
    """The schedule of one call's retries.

    Created at the first failure; ``next()`` takes the clock's reading and any
    ``Retry-After`` and returns :class:`Sleep` or :class:`GiveUp`. ``deadline``
    is absolute (same clock as ``now``); an attempt is assumed to last as long
    as the previous one did, so no attempt starts that would end past it.
    """

    __slots__ = ("_attempt_started", "_delays", "attempts", "deadline", "made", "max_retry_after")

    def __init__(
        self,
        *,
        attempts: int,
        delays: Iterator[float],
        deadline: float | None,
        max_retry_after: float | None,
        attempt_started: float | None,
    ) -> None:
        self.attempts = attempts
        self._delays = delays
        self.deadline = deadline
        self.max_retry_after = max_retry_after
        self.made = 1
        self._attempt_started = attempt_started

    def next(self, now: float, retry_after: float | None = None) -> Sleep | GiveUp:
        """The decision after attempt number ``made`` failed at ``now``."""
        if self.made >= self.attempts:
            return GiveUp("attempts")
        if retry_after is not None and self.max_retry_after is not None:
            if retry_after > self.max_retry_after:
                return GiveUp("retry_after")
            delay = retry_after
        else:
            delay = next(self._delays)
        if self.deadline is not None:
            last = 0.0 if self._attempt_started is None else max(0.0, now - self._attempt_started)
            if now + delay + last > self.deadline or now >= self.deadline:
                return GiveUp("deadline")
        return Sleep(delay)

    def started(self, now: float) -> None:
        """Record that the next attempt starts at ``now``."""
        self.made += 1
        self._attempt_started = now
