"""What a policy sees of one call."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["Context", "current_deadline", "replay_forbidden"]

#: The absolute deadline (``clock.monotonic()`` seconds) set by an enclosing
#: :class:`~resilient.Timeout`; inner policies and the httpx transports honour it.
current_deadline: ContextVar[float | None] = ContextVar("resilient_deadline", default=None)

#: Why the current call must not be made twice (a POST without ``Idempotency-Key``,
#: a streaming request body), set by the httpx transports around their pipeline;
#: ``None`` when it may. A retry that finds it set gives up at once.
replay_forbidden: ContextVar[str | None] = ContextVar("resilient_replay_forbidden", default=None)


class Context:
    """One call as the policies see it.

    Attributes:
        operation: the function's qualified name, or ``"GET host"`` for HTTP.
        fn: the callable at the end of the pipeline.
        args, kwargs: the call's arguments.
        attempt: 0 for the first attempt, 1 for the first retry, ...
        deadline: absolute monotonic deadline set by a ``Timeout``, or ``None``.
    """

    __slots__ = ("args", "attempt", "deadline", "fn", "kwargs", "operation")

    def __init__(
        self,
        operation: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.operation = operation
        self.fn = fn
        self.args = args
        self.kwargs = {} if kwargs is None else kwargs
        self.attempt = 0
        self.deadline: float | None = None

    def effective_deadline(self) -> float | None:
        """The nearest deadline: this call's own or one set by an enclosing ``Timeout``."""
        outer = current_deadline.get()
        own = self.deadline
        if own is None:
            return outer
        if outer is None:
            return own
        return min(own, outer)

    def __repr__(self) -> str:
        return f"Context(operation={self.operation!r}, attempt={self.attempt})"
