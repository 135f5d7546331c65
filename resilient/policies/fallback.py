"""Fallback: a value or a handler's answer in place of a failure."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from ..core.context import Context
from ..core.events import emit, failure
from ..core.outcome import Outcome, compile_on
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter

__all__ = ["Fallback"]

_MISSING: Any = object()


class Fallback(Policy):
    """Return ``value``, or ``handler(outcome)``, when the call fails.

    Exactly one of ``value`` and ``handler`` is given. ``handler`` receives the
    failed :class:`~resilient.Outcome` (``.error`` or the failing ``.value``)
    and may be sync or async; an async handler serves only async calls (a sync
    call through it raises ``TypeError``). Event: ``fallback.used``.

    Unlike the retrying policies, ``on`` left out handles **every** ``Exception``,
    the library's rejections included: falling back on an open circuit or a full
    bulkhead is what a fallback is for. Cancellation is never handled.

    Args:
        value: returned in place of the failure.
        handler: ``Callable[[Outcome], T]`` or ``Callable[[Outcome], Awaitable[T]]``.
        on: what counts as a failure (exception classes, ``rs.errors``/``rs.results``
            predicates, ``Callable[[Outcome], bool]``); default any ``Exception``.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "fallback"

    def __init__(
        self, *, value: Any = _MISSING, handler: Callable[[Outcome[Any]], Any] | None = None, on: object = None
    ) -> None:
        if value is _MISSING and handler is None:
            raise TypeError(
                "Fallback needs value= (what to return instead) or handler= (outcome -> value), got neither"
            )
        if value is not _MISSING and handler is not None:
            raise TypeError(
                f"Fallback takes one of value= and handler=, not both: got value={value!r}, handler={handler!r}"
            )
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        self.value = None if value is _MISSING else value
        self.handler = handler
        self._on = compile_on(Exception if on is None else on)
        self._used = Counter()

    def _answer(self, ctx: Context, outcome: Outcome[Any]) -> Any:
        self._used.incr()
        emit("fallback.used", operation=ctx.operation, key=self.partition, **failure(outcome.error, outcome.value))
        if self.handler is None:
            return self.value
        return self.handler(outcome)

    def bind(self, inner: SyncStep) -> SyncStep:
        matches_error = self._on.matches_error
        matches_result = self._on.result_matcher

        def fallback_step(ctx: Context) -> Any:
            try:
                value = inner(ctx)
            except Exception as exc:
                if not matches_error(exc):
                    raise
                answer = self._answer(ctx, Outcome(error=exc))
            else:
                if matches_result is None or not matches_result(value):
                    return value
                answer = self._answer(ctx, Outcome(value))
            if inspect.isawaitable(answer):
                if inspect.iscoroutine(answer):
                    answer.close()  # never awaited: close it so it does not warn
                raise TypeError(f"Fallback handler {self.handler!r} is async; it serves only async calls")
            return answer

        return fallback_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        matches_error = self._on.matches_error
        matches_result = self._on.result_matcher

        async def fallback_step(ctx: Context) -> Any:
            try:
                value = await inner(ctx)
            except Exception as exc:
                if not matches_error(exc):
                    raise
                answer = self._answer(ctx, Outcome(error=exc))
            else:
                if matches_result is None or not matches_result(value):
                    return value
                answer = self._answer(ctx, Outcome(value))
            if inspect.isawaitable(answer):
                return await answer
            return answer

        return fallback_step

    def stats(self) -> dict[str, Any]:
        return {"used": self._used.value}

    def __repr__(self) -> str:
        what = f"handler={self.handler!r}" if self.handler is not None else f"value={self.value!r}"
        return f"Fallback({what})"
