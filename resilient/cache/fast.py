"""The decorator's hit path for an in-process store or near cache: no Context unless it misses."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.keys import ArgsKey

if TYPE_CHECKING:
    from ..stores.base import Store
    from .guard import StoreGuard

__all__ = ["fast_path"]


def fast_path(
    fn: Callable[..., Any],
    slow: Callable[..., Any],
    build: ArgsKey,
    *,
    guard: StoreGuard,
    store: Store,
    get: Callable[[str], Any],
    now: Callable[[], float],
    hit: Callable[[], object],
    reach: float,
) -> Callable[..., Any]:
    """``slow`` (the full Context path) behind an inlined hit check on an in-process read.

    ``get`` reads the in-process ``store``, or a RedisStore's near cache (None
    when it holds no copy). Same decision as the hit path of :meth:`Cache.bind`
    (a sure FRESH); anything else, or any error, goes the slow way, which sees it again.
    """
    primary = store

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_cached(*args: Any, **kwargs: Any) -> Any:
            if guard.active is primary:
                try:
                    entry = get(build(args, kwargs))
                except Exception:
                    entry = None
                if entry is not None and now() < entry.expires_at - entry.delta * reach:
                    hit()
                    return entry.value
            return await slow(*args, **kwargs)

        return async_cached

    @functools.wraps(fn)
    def cached(*args: Any, **kwargs: Any) -> Any:
        if guard.active is primary:
            try:
                entry = get(build(args, kwargs))
            except Exception:
                entry = None
            if entry is not None and now() < entry.expires_at - entry.delta * reach:
                hit()
                return entry.value
        return slow(*args, **kwargs)

    return cached
