"""The token value type, shared by the provider, its fleet protocol and the httpx auth."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

from .._machines._validate import number
from ..core.clock import SYSTEM_CLOCK, Clock

__all__ = ["Obtained", "Token", "checked"]


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """A bearer credential and the wall time (epoch seconds) it expires at.

    ``repr()`` and ``str()`` show the expiry only, never the value, so a token
    may be logged or appear in a traceback without leaking.

    Args:
        value: the secret (a non-empty ``str``).
        expires_at: wall-clock expiry, epoch seconds (``clock.time()``).
    """

    value: str
    expires_at: float

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise TypeError(f"value must be a str, got {type(self.value).__name__}")
        if not self.value:
            raise ValueError("value must not be empty")
        if isinstance(self.expires_at, bool) or not isinstance(self.expires_at, (int, float)):
            raise TypeError(f"expires_at must be a number, got {self.expires_at!r}")
        if not math.isfinite(self.expires_at):
            raise ValueError(f"expires_at must be finite, got {self.expires_at!r}")

    @classmethod
    def expiring_in(cls, value: str, seconds: float, *, clock: Clock | None = None) -> Token:
        """A token that expires ``seconds`` from now (``clock.time()``)."""
        seconds = number("seconds", seconds)
        return cls(value, (clock or SYSTEM_CLOCK).time() + seconds)

    def __repr__(self) -> str:
        return f"Token(value=<redacted>, expires_at={self.expires_at!r})"

    __str__ = __repr__


def checked(result: object, now: float) -> Token:
    """The fetch's result as a valid :class:`Token`, or a TypeError/ValueError (never showing the value)."""
    if inspect.iscoroutine(result):
        result.close()
        raise TypeError("fetch returned a coroutine: an async fetch serves `await provider.aget()`, not get()")
    if not isinstance(result, Token):
        raise TypeError(f"fetch must return a resilient.Token, got {type(result).__name__}")
    if result.expires_at <= now:
        raise ValueError(f"fetch returned a token that had already expired ({result!r})")
    return result


@dataclass(frozen=True, slots=True)
class Obtained:
    """A refresh's result: the token, and whether this process fetched it (else: read it from the store)."""

    token: Token
    fetched: bool
