"""The policy base: one object that decorates and runs sync and async callables.

A policy turns the next step of a pipeline into its own step:
``bind(inner)`` for threads, ``abind(inner)`` for asyncio. A step takes the
call's :class:`~resilient.Context` and returns the call's value. The chain is
built once per policy, so a call costs one ``Context`` and one frame per policy.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from .context import Context

__all__ = ["AsyncStep", "Policy", "SyncStep", "operation_name"]

P = ParamSpec("P")
T = TypeVar("T")

SyncStep = Callable[[Context], Any]
AsyncStep = Callable[[Context], Awaitable[Any]]


def _leaf(ctx: Context) -> Any:
    return ctx.fn(*ctx.args, **ctx.kwargs)


def _aleaf(ctx: Context) -> Awaitable[Any]:
    # Not a coroutine of its own: the decorated coroutine function's awaitable is handed to
    # the step above, which awaits it (one coroutine frame less on every call).
    return ctx.fn(*ctx.args, **ctx.kwargs)  # type: ignore[no-any-return]


async def _aleaf_any(ctx: Context) -> Any:
    result = ctx.fn(*ctx.args, **ctx.kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


def operation_name(fn: Callable[..., Any]) -> str:
    """The ``Context.operation`` of a plain function: its qualified name.

    A ``functools.partial`` is named after the function it wraps; any other
    callable without a ``__qualname__`` (a ``unittest.mock.Mock``, an instance
    with ``__call__``) after its type. Only real partials are unwrapped, so an
    object whose every attribute exists (a mock) cannot send this in circles.
    """
    for _ in range(100):  # partials of partials, bounded
        if not isinstance(fn, functools.partial):
            break
        fn = fn.func
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(fn).__qualname__


class Policy:
    """Base class of every policy.

    Subclasses implement :meth:`bind` and :meth:`abind` (and usually
    :meth:`stats`); everything else (decorating, ``call``, ``acall``) is here.
    """

    #: The key under which a pipeline nests this policy's stats.
    kind: ClassVar[str] = "policy"

    #: The key of the ``PerKey`` partition this policy serves (set by ``PerKey`` when it
    #: makes the policy), carried as ``key`` by its events; ``None`` outside a partition.
    partition: Any = None

    _chain: SyncStep | None = None
    _achain: AsyncStep | None = None
    _achain_any: AsyncStep | None = None

    # -- to implement -------------------------------------------------------
    def bind(self, inner: SyncStep) -> SyncStep:
        """Return the step that runs ``inner`` under this policy, in a thread."""
        raise NotImplementedError

    def abind(self, inner: AsyncStep) -> AsyncStep:
        """Return the step that runs ``inner`` under this policy, in asyncio."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """A plain ``dict`` of this policy's counters."""
        return {}

    # -- provided -----------------------------------------------------------
    def _sync_chain(self) -> SyncStep:
        chain = self._chain
        if chain is None:
            chain = self._chain = self.bind(_leaf)
        return chain

    def _async_chain(self) -> AsyncStep:
        chain = self._achain
        if chain is None:
            chain = self._achain = self.abind(_aleaf)
        return chain

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function (coroutine functions are detected)."""
        if not callable(fn):
            raise TypeError(f"{type(self).__name__} decorates callables, got {fn!r}")
        operation = operation_name(fn)
        if inspect.iscoroutinefunction(fn):
            achain = self._async_chain()

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await achain(Context(operation, fn, args, kwargs))

            return async_wrapper

        chain = self._sync_chain()

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return chain(Context(operation, fn, args, kwargs))

        return wrapper

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` once through this policy."""
        result: T = self._sync_chain()(Context(operation_name(fn), fn, args, kwargs))
        return result

    @overload
    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T: ...

    @overload
    async def acall(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...

    async def acall(self, fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run ``fn(*args, **kwargs)`` once through this policy and await it."""
        chain = self._achain_any
        if chain is None:
            chain = self._achain_any = self.abind(_aleaf_any)
        return await chain(Context(operation_name(fn), fn, args, kwargs))

    def run(self, ctx: Context) -> Any:
        """Run a prepared :class:`Context` (its ``fn`` with its arguments) in a thread."""
        return self._sync_chain()(ctx)

    async def arun(self, ctx: Context) -> Any:
        """Run a prepared :class:`Context` in asyncio (``ctx.fn`` returns an awaitable)."""
        return await self._async_chain()(ctx)


def validate_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def validate_int(name: str, value: int, *, minimum: int) -> int:
    """Return ``value``, or raise naming ``name`` when it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value
