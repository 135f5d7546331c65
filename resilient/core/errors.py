"""The exceptions raised by resilient. All derive from :class:`ResilienceError`."""

from __future__ import annotations

__all__ = [
    "BufferFullError",
    "BulkheadFullError",
    "CacheLockTimeout",
    "CircuitOpenError",
    "LoadShedError",
    "RateLimitedError",
    "Rejected",
    "ResilienceError",
    "StoreUnavailable",
    "TimeoutExceeded",
]


class ResilienceError(Exception):
    """Base class of every exception the library raises itself."""


class Rejected(ResilienceError):
    """A call refused without calling the function (open circuit, full bulkhead, ...).

    Retries never handle a rejection by default: retrying it only adds the load
    the rejection was protecting against.
    """


class CircuitOpenError(Rejected):
    """The circuit is open; ``remaining`` seconds until a probe may pass."""

    def __init__(self, message: str = "circuit open", *, remaining: float = 0.0) -> None:
        super().__init__(message)
        self.remaining = remaining


class BulkheadFullError(Rejected):
    """No slot (and no queue place, or the queue wait ran out) in a bulkhead."""


class LoadShedError(Rejected):
    """Load was shed: too many calls in flight, or latency far above its baseline."""


class RateLimitedError(Rejected):
    """A rate limiter had no token for this call; ``retry_after`` seconds until one."""

    def __init__(self, message: str = "rate limited", *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BufferFullError(Rejected):
    """A :class:`~resilient.WriteBuffer` already holds ``max_pending`` unwritten items
    (or its Redis stream ``maxlen``): the put was refused, nothing was queued."""


class TimeoutExceeded(ResilienceError, TimeoutError):
    """A :class:`~resilient.Timeout` deadline passed."""


class CacheLockTimeout(ResilienceError):
    """Waiting for another caller's refresh of a cache entry took longer than allowed."""


class StoreUnavailable(ResilienceError):
    """A shared store (Redis) failed or is behind its open breaker; ``remaining``
    seconds until the store is probed again (0 when the call itself just failed).

    The cache catches it and degrades to in-process protection and the origin.
    """

    def __init__(self, message: str = "store unavailable", *, remaining: float = 0.0) -> None:
        super().__init__(message)
        self.remaining = remaining
