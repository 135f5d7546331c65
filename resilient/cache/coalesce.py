"""Coalesce: concurrent calls with the same key share one execution."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from ..core.context import Context
from ..core.events import emit
from ..core.keys import check_key, compile_key
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from .singleflight import SingleFlight

__all__ = ["Coalesce"]

P = ParamSpec("P")
T = TypeVar("T")


class Coalesce(Policy):
    """Concurrent calls that build the same key share one execution and its outcome.

    The first call of a key runs; the calls that arrive while it runs wait and
    receive its value or its exception (event ``coalesce.joined`` for each).
    Nothing is kept afterwards: this is coalescing, not caching. In asyncio a
    cancelled caller only stops waiting; the shared call is cancelled when no
    caller is left (see :class:`~resilient.SingleFlight`).

    Args:
        key: a template formatted with the call's arguments bound by name
            (``"product:{id}"``; a field the function lacks is a ``TypeError`` at
            decoration); or a callable taking the function's arguments and
            returning a ``str``; or ``rs.context_key(fn)`` with ``fn(ctx) -> str``
            receiving the :class:`~resilient.Context` (integrations such as the
            httpx transports key on the request this way). Left out:
            ``module:qualname(args)`` with the arguments' reprs; they must be str,
            int, float, bool, None or tuples of them (else a ``TypeError`` asks
            for ``key=``); a ``Context`` subclass with a ``key`` attribute (as
            the httpx transports build) supplies it instead.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "coalesce"

    def __init__(self, *, key: object = None) -> None:
        self._key = compile_key(key)
        self.flight = SingleFlight()
        self._calls = Counter()

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn`` (a template naming an argument ``fn`` lacks is a ``TypeError`` here)."""
        check_key(self._key, fn)
        return super().__call__(fn)

    def bind(self, inner: SyncStep) -> SyncStep:
        key_of = self._key
        do = self.flight.do
        count = self._calls.incr

        def coalesce_step(ctx: Context) -> Any:
            count()
            key = key_of(ctx)
            return do(key, lambda: inner(ctx), on_join=lambda: _joined(ctx, key))

        return coalesce_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        key_of = self._key
        ado = self.flight.ado
        count = self._calls.incr

        async def coalesce_step(ctx: Context) -> Any:
            count()
            key = key_of(ctx)
            return await ado(key, lambda: inner(ctx), on_join=lambda: _joined(ctx, key))

        return coalesce_step

    def stats(self) -> dict[str, Any]:
        """``calls``, ``executions`` (calls that ran) and ``joined`` (calls that shared one)."""
        return {"calls": self._calls.value, **self.flight.stats()}

    def __repr__(self) -> str:
        return f"Coalesce(key={self._key!r})"


def _joined(ctx: Context, key: str) -> None:
    emit("coalesce.joined", operation=ctx.operation, key=key)
