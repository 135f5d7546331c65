"""Shared-token decisions: when to refresh, whether a token may be served, whether an invalidation applies.

Pure: readings of the wall clock (``now``, epoch seconds) and random draws come
in as arguments; the provider shell (``resilient.tokens.provider``) holds the lock and
carries the decisions out.

The refresh point of a token (wall time at which a refresh begins while the
token still serves) is::

    lead  = min(refresh_before * (1 + refresh_jitter * draw), lifetime / 2)
    point = expires_at - lead

with ``draw`` uniform in ``[0, 1]`` per process and token, so a fleet sharing one
credential spreads its refreshes over ``[expires_at - refresh_before * (1 +
refresh_jitter), expires_at - refresh_before]`` instead of calling the auth
server in the same second. ``lifetime`` is the time from when the token was
obtained to its expiry: a token that lives less than twice the lead is refreshed
at half its life instead of at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._validate import number

__all__ = ["Action", "TokenState", "TokenTiming", "is_valid", "refresh_point"]


def is_valid(expires_at: float, now: float) -> bool:
    """A token may be served strictly before its expiry."""
    return now < expires_at


def refresh_point(
    expires_at: float, *, obtained_at: float, refresh_before: float, refresh_jitter: float, draw: float
) -> float:
    """The wall time at which to start refreshing (see the module docstring for the formula)."""
    lead = refresh_before * (1.0 + refresh_jitter * draw)
    lifetime = expires_at - obtained_at
    if lifetime < 2 * lead:
        lead = max(lifetime, 0.0) / 2
    return expires_at - lead


@dataclass(frozen=True, slots=True)
class TokenTiming:
    """The validated timing options of a provider.

    Args:
        refresh_before: seconds before expiry at which a refresh begins (> 0).
        refresh_jitter: extra lead as a fraction of ``refresh_before``, drawn per
            process and token from ``[0, refresh_jitter]`` (>= 0).
    """

    refresh_before: float
    refresh_jitter: float

    @classmethod
    def validated(cls, refresh_before: object, refresh_jitter: object) -> TokenTiming:
        return cls(
            refresh_before=number("refresh_before", refresh_before, strict=True),
            refresh_jitter=number("refresh_jitter", refresh_jitter),
        )

    def point(self, expires_at: float, *, obtained_at: float, draw: float) -> float:
        """This process's refresh point for a token (``draw`` in ``[0, 1]``)."""
        return refresh_point(
            expires_at,
            obtained_at=obtained_at,
            refresh_before=self.refresh_before,
            refresh_jitter=self.refresh_jitter,
            draw=draw,
        )

    def window_start(self, expires_at: float, *, obtained_at: float) -> float:
        """The earliest refresh point any process may draw for this token (``draw = 1``)."""
        return self.point(expires_at, obtained_at=obtained_at, draw=1.0)


class Action(enum.Enum):
    """What a caller of ``get()`` does next."""

    SERVE = "serve"
    """Return the current token."""
    SERVE_AND_REFRESH = "serve_and_refresh"
    """Return the current token; this caller starts the one background refresh."""
    REFRESH = "refresh"
    """No token may be served; this caller starts the one refresh and waits for it."""
    WAIT = "wait"
    """No token may be served; a refresh is running: wait for it."""


class TokenState:
    """One process's view of the shared token, and whether a refresh is running.

    Every method is called under the shell's lock. ``decide`` marks a refresh
    as running when it tells a caller to start one, so exactly one caller does;
    ``adopt``/``failed``/``pending``/``abandoned`` end it.
    """

    __slots__ = ("expires_at", "failures", "refresh_at", "refreshing", "rejected", "retry_at", "value")

    def __init__(self) -> None:
        self.value: str | None = None
        self.expires_at = 0.0
        self.refresh_at = 0.0
        self.retry_at = 0.0
        self.failures = 0
        self.refreshing = False
        self.rejected: str | None = None

    def servable(self, now: float) -> bool:
        """There is a token and it has not expired."""
        return self.value is not None and now < self.expires_at

    def decide(self, now: float) -> Action:
        """Serve, serve and refresh in the background, refresh and wait, or wait."""
        if not self.servable(now):
            if self.refreshing:
                return Action.WAIT
            self.refreshing = True
            return Action.REFRESH
        if self.refreshing or now < self.refresh_at or now < self.retry_at:
            return Action.SERVE
        self.refreshing = True
        return Action.SERVE_AND_REFRESH

    def acceptable(self, value: str, expires_at: float, now: float) -> bool:
        """A token read or fetched may replace the current one: valid, not the
        invalidated value, and not older than what we hold."""
        if value == self.rejected or not is_valid(expires_at, now):
            return False
        if not self.servable(now):
            return True
        return value != self.value and expires_at >= self.expires_at

    def adopt(self, value: str, expires_at: float, refresh_at: float) -> None:
        """Make ``value`` current; the running refresh (if any) ends, failures reset."""
        self.value = value
        self.expires_at = expires_at
        self.refresh_at = refresh_at
        self.retry_at = 0.0
        self.failures = 0
        self.refreshing = False

    def failed(self, now: float, delay: float) -> float:
        """A refresh failed: try again no sooner than ``delay`` seconds from now
        (and no later than expiry, when callers block anyway). Returns the wait."""
        self.failures += 1
        return self.pending(now, delay)

    def failed_blocking(self) -> None:
        """A refresh that callers waited for failed: they get the error; the next caller tries again at once."""
        self.failures += 1
        self.refreshing = False

    def pending(self, now: float, delay: float) -> float:
        """Another process holds the refresh: look again ``delay`` seconds from now."""
        self.refreshing = False
        self.retry_at = min(now + delay, self.expires_at) if self.value is not None else now
        return max(self.retry_at - now, 0.0)

    def abandoned(self) -> None:
        """The refresh ended without an outcome (cancelled): the next caller starts another."""
        self.refreshing = False

    def invalidate(self, value: str) -> bool:
        """Drop the current token if it is ``value`` (a 401 for it); True if it was current.

        ``value`` is remembered as rejected so a stale copy (say, in a shared
        store) is never adopted again.
        """
        self.rejected = value
        if self.value is None or self.value != value:
            return False
        self.value = None
        self.expires_at = 0.0
        return True
