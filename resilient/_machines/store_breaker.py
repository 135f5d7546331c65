"""The breaker a shared store keeps around itself, so a dead Redis is not hammered.

States: ``closed`` (calls go to the store) → after ``failure_threshold``
consecutive failures ``open`` (calls are refused without touching the network)
→ after ``reset_timeout`` seconds one probe is let through (``half_open``): its
success closes the breaker, its failure opens it again for another
``reset_timeout``. Pure: readings of a monotonic clock come in; the caller holds
the lock.
"""

from __future__ import annotations

from ._validate import number, whole

__all__ = ["StoreBreaker"]


class StoreBreaker:
    """Consecutive-failure breaker with a single half-open probe; not thread-safe."""

    __slots__ = ("failure_threshold", "failures", "opened_at", "probing", "reset_timeout", "state")

    def __init__(self, *, failure_threshold: int = 3, reset_timeout: float = 1.0) -> None:
        self.failure_threshold = whole("failure_threshold", failure_threshold, minimum=1)
        self.reset_timeout = number("reset_timeout", reset_timeout, strict=True)
        if self.reset_timeout > 5:
            raise ValueError(f"reset_timeout must be <= 5 (a dead store is probed within 5 s), got {reset_timeout!r}")
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False

    def admit(self, now: float) -> float:
        """0.0 if a call may go to the store now (maybe as the probe), else seconds until a probe may."""
        if self.state == "closed":
            return 0.0
        if self.state == "open":
            remaining = self.opened_at + self.reset_timeout - now
            if remaining > 0:
                return remaining
            self.state = "half_open"
        if self.probing:
            return self.reset_timeout  # one probe at a time; the others stay off the network
        self.probing = True
        return 0.0

    def success(self) -> bool:
        """Record a call that reached the store; True if this closed an open breaker."""
        reopened = self.state != "closed"
        self.state = "closed"
        self.failures = 0
        self.probing = False
        return reopened

    def failure(self, now: float) -> bool:
        """Record a failed call; True if the breaker (re)opened because of it."""
        self.failures += 1
        self.probing = False
        if self.state == "half_open" or (self.state == "closed" and self.failures >= self.failure_threshold):
            self.state = "open"
            self.opened_at = now
            return True
        return False

    def abandon(self) -> None:
        """A probe ended without an answer (cancelled): let the next caller probe."""
        self.probing = False
