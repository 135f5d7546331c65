"""Circuit-breaker decisions: admit, probe or reject; open, close or stay.

The machine decides and the shell (``resilient.policies.breaker``) acts: the
shell reads the shared state (pybreaker's storage) and the clock, asks the
machine, and writes the transition back. States are pybreaker's strings
(``"closed"``, ``"open"``, ``"half-open"``) so a breaker can share pybreaker's
storage with pybreaker itself.

Two ways to trip, chosen at construction:

* consecutive failures: ``failures >= failure_threshold`` (the count lives in
  the storage, so a fleet sharing a Redis storage shares it);
* failure rate: in a sliding window of ``window`` seconds, once
  ``calls >= minimum_calls``, trip when ``failures / calls >= failure_rate``
  (the window is this process's, as resilience4j's time-based window).

Open until ``now >= opened_at + reset_timeout`` (inclusive); then up to
``half_open_max_calls`` probes at a time; ``success_threshold`` probe successes
close it, one failed probe re-opens it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._validate import number, whole
from .window import SlidingWindow

__all__ = ["CALL", "CLOSED", "HALF_OPEN", "OPEN", "PROBE", "START_PROBE", "BreakerMachine", "Reject"]

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"

#: Admit the call as usual (closed).
CALL: Final = "call"
#: Admit the call as a half-open probe.
PROBE: Final = "probe"
#: The reset timeout has passed: move the state to half-open, then probe.
START_PROBE: Final = "start_probe"


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call; ``remaining`` seconds until a probe may pass (0 when probes are busy)."""

    remaining: float


class BreakerMachine:
    """The breaker's decisions; holds only the failure-rate window (not thread-safe).

    Args:
        failure_threshold: consecutive failures that open the circuit (>= 1).
        reset_timeout: seconds open before probes may pass (>= 0).
        success_threshold: probe successes that close it (>= 1).
        failure_rate: in ``(0, 1]``; set with ``window`` for failure-rate mode.
        window: seconds of history for the failure rate (> 0).
        minimum_calls: calls the window must hold before the rate can trip it (>= 1).
        half_open_max_calls: probes allowed at a time in half-open (>= 1).
    """

    __slots__ = (
        "failure_rate",
        "failure_threshold",
        "half_open_max_calls",
        "minimum_calls",
        "reset_timeout",
        "success_threshold",
        "window",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 1,
        failure_rate: float | None = None,
        window: float | None = None,
        minimum_calls: int = 10,
        half_open_max_calls: int = 1,
    ) -> None:
        self.failure_threshold = whole("failure_threshold", failure_threshold, minimum=1)
        self.reset_timeout = number("reset_timeout", reset_timeout)
        self.success_threshold = whole("success_threshold", success_threshold, minimum=1)
        self.minimum_calls = whole("minimum_calls", minimum_calls, minimum=1)
        self.half_open_max_calls = whole("half_open_max_calls", half_open_max_calls, minimum=1)
        if (failure_rate is None) != (window is None):
            raise ValueError(
                f"failure_rate and window go together (failure-rate mode); got failure_rate={failure_rate!r}, "
                f"window={window!r}"
            )
        self.failure_rate: float | None = None
        self.window: SlidingWindow | None = None
        if failure_rate is not None and window is not None:
            rate = number("failure_rate", failure_rate, strict=True)
            if rate > 1:
                raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate!r}")
            self.failure_rate = rate
            self.window = SlidingWindow(number("window", window, strict=True), fields=2)

    @property
    def consecutive(self) -> bool:
        """True in consecutive-failure mode, False in failure-rate mode."""
        return self.window is None

    def admit(self, state: str, opened_at: float | None, probes: int, now: float) -> str | Reject:
        """What to do with a call arriving at ``now``.

        Args:
            state: the stored state.
            opened_at: when it opened (same clock as ``now``), None if unknown.
            probes: probes in flight now.
        """
        if state == CLOSED:
            return CALL
        if state == OPEN:
            if opened_at is None:
                return START_PROBE
            remaining = opened_at + self.reset_timeout - now
            if remaining <= 0:
                return START_PROBE
            return Reject(min(remaining, self.reset_timeout))
        # half-open
        if probes < self.half_open_max_calls:
            return PROBE
        return Reject(0.0)

    def remaining(self, opened_at: float | None, now: float) -> float:
        """Seconds of the open period left at ``now`` (0 once probes may pass)."""
        if opened_at is None:
            return 0.0
        return max(0.0, opened_at + self.reset_timeout - now)

    def on_failure(self, state: str, probe: bool, failures: int, now: float) -> str | None:
        """The state to move to after a failure at ``now``, or None to stay.

        ``failures`` is the stored consecutive count including this failure
        (consecutive mode). A failure of a call admitted before the state
        changed (not a probe, state not closed) changes nothing.
        """
        if state == HALF_OPEN:
            return OPEN if probe else None
        if state != CLOSED:
            return None
        window = self.window
        if window is None:
            return OPEN if failures >= self.failure_threshold else None
        window.add2(now, 1.0, 1.0)
        calls, failed = window.totals(now)
        if calls >= self.minimum_calls and failed >= calls * self.failure_rate:  # type: ignore[operator]
            return OPEN
        return None

    def on_success(self, state: str, probe: bool, successes: int, now: float) -> str | None:
        """The state to move to after a success at ``now``, or None to stay.

        ``successes`` is the stored probe-success count including this one.
        """
        if state == CLOSED:
            if self.window is not None:
                self.window.add2(now, 1.0, 0.0)
            return None
        if state == HALF_OPEN and probe and successes >= self.success_threshold:
            return CLOSED
        return None

    def success_recorder(self) -> Callable[[float], None]:
        """``record(now)``: count a success while closed in failure-rate mode, the fast form of
        ``on_success`` (it never changes the state). Calls are field 0, failures field 1."""
        if self.window is None:
            raise ValueError("success_recorder() is for failure-rate mode")
        return self.window.tick

    def failure_rate_now(self, now: float) -> tuple[int, float | None]:
        """Calls in the window and their failure rate (None when empty or not in rate mode)."""
        if self.window is None:
            return 0, None
        calls, failed = self.window.totals(now)
        return int(calls), (failed / calls if calls else None)

    def forget(self) -> None:
        """Clear the failure-rate window (on every transition)."""
        if self.window is not None:
            self.window.clear()
