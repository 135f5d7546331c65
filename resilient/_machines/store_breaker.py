"""The breaker a shared store keeps around itself, so a dead Redis is not hammered.

States: ``closed`` (calls go to the store) → after ``failure_threshold``
failures ``open`` (calls are refused without touching the network, and one
probe per process runs off the callers' path every ``reset_timeout`` seconds)
→ the probe's success closes it. Callers never probe: a refusal is the store
resting, never a failure of its own.

Failures of one outage count once: a failure counts only if its call started
after the last failure that counted, so twenty callers failing together on the
same dead connection are one failure, not twenty.

Pure: readings of a monotonic clock come in; the caller holds the lock.
"""

from __future__ import annotations

import math

from ._validate import number, whole

__all__ = ["StoreBreaker"]


class StoreBreaker:
    """Failure-counting breaker whose recovery is one background probe; not thread-safe."""

    __slots__ = (
        "caller_probing",
        "failure_threshold",
        "failures",
        "last_failure",
        "opened_at",
        "probing",
        "reset_timeout",
        "state",
    )

    def __init__(self, *, failure_threshold: int = 3, reset_timeout: float = 0.2) -> None:
        self.failure_threshold = whole("failure_threshold", failure_threshold, minimum=1)
        self.reset_timeout = number("reset_timeout", reset_timeout, strict=True)
        if self.reset_timeout > 5:
            raise ValueError(f"reset_timeout must be <= 5 (a dead store is probed within 5 s), got {reset_timeout!r}")
        self.state = "closed"
        self.failures = 0
        self.last_failure = -math.inf  # when the last failure that counted was recorded
        self.opened_at = 0.0
        self.probing = False
        self.caller_probing = False  # admit_probe's single caller probe is out

    @property
    def available(self) -> bool:
        """True while calls may go to the store."""
        return self.state == "closed"

    def admit(self, now: float) -> float:
        """0.0 if a call may go to the store now, else seconds until the next probe (about)."""
        if self.state == "closed":
            return 0.0
        elapsed = (now - self.opened_at) % self.reset_timeout
        return self.reset_timeout - elapsed

    def admit_probe(self, now: float) -> float:
        """For a store without a background probe (callers probe): 0.0 if a call may go now, the one
        probe let through ``reset_timeout`` after opening; else seconds until one may."""
        if self.state == "closed":
            return 0.0
        remaining = self.opened_at + self.reset_timeout - now
        if remaining > 0:
            return remaining
        if self.caller_probing:
            return self.reset_timeout
        self.caller_probing = True
        return 0.0

    def abandon(self) -> None:
        """A caller's probe ended without an answer (cancelled): let the next caller probe."""
        self.caller_probing = False

    def success(self) -> bool:
        """Record a call (or probe) that reached the store; True if this closed an open breaker."""
        reopened = self.state != "closed"
        self.state = "closed"
        self.failures = 0
        self.last_failure = -math.inf
        self.caller_probing = False
        return reopened

    def failure(self, now: float, started: float | None = None) -> bool:
        """Record a failed call begun at ``started`` (default: now); True if the breaker (re)opened because of it.

        A call begun before the last counted failure is part of the same outage: not counted.
        A caller's probe (``admit_probe``) that fails opens the breaker for another ``reset_timeout``.
        """
        if self.caller_probing and self.state != "closed":
            self.caller_probing = False
            self.opened_at = now
            return True
        started = now if started is None else started
        if self.state != "closed" or started < self.last_failure:
            return False
        self.failures += 1
        self.last_failure = now
        if self.failures >= self.failure_threshold:
            self.state = "open"
            self.opened_at = now
            return True
        return False

    def begin_probe(self) -> bool:
        """True if the caller should start the probe (the breaker is open and none runs)."""
        if self.state == "closed" or self.probing:
            return False
        self.probing = True
        return True

    def end_probe(self) -> None:
        """The probe stopped (the store answered, or the probe was cancelled)."""
        self.probing = False
