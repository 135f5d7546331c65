"""RateLimiter: a token bucket, in process or shared through a ``BucketStore``."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from .._machines._validate import number
from .._machines.bucket import TokenBucket
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context
from ..core.errors import RateLimitedError
from ..core.events import emit
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from ..stores.base import BucketStore

__all__ = ["RateLimiter"]


class RateLimiter(Policy):
    """Allow ``rate`` calls per ``per`` seconds, in bursts of at most ``burst``.

    Each call takes one token from a bucket refilled at ``rate / per`` tokens a
    second and holding at most ``burst`` (default ``rate``); with none left the
    call raises :class:`~resilient.RateLimitedError` at once, its
    ``retry_after`` the seconds until a token is there. It never waits.

    In process by default. With ``store`` (a
    :class:`resilient.stores.base.BucketStore`, such as the Redis one) the bucket
    named ``key`` is shared by every process using it: one limit for the fleet,
    read on the wall clock (``clock.time()``). Event: ``ratelimit.rejected``.

    Args:
        rate: tokens per ``per`` seconds (> 0).
        per: the period, in seconds (> 0).
        burst: bucket capacity (> 0), default ``rate``.
        store: a shared ``BucketStore``; its async twin ``atake`` serves async calls.
        key: the shared bucket's name (required with ``store``).
        clock: time source.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "rate_limit"

    def __init__(
        self,
        rate: float,
        *,
        per: float = 1.0,
        burst: float | None = None,
        store: BucketStore | None = None,
        key: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        rate = number("rate", rate, strict=True)
        self.per = number("per", per, strict=True)
        self.rate = rate
        self.burst = rate if burst is None else number("burst", burst, strict=True)
        self.tokens_per_second = rate / self.per
        if store is not None and not (
            callable(getattr(store, "take", None)) and callable(getattr(store, "atake", None))
        ):
            raise TypeError(f"store must be a BucketStore (take/atake), got {store!r}")
        if store is not None and (key is None or not isinstance(key, str) or not key):
            raise ValueError(f"key must name the shared bucket when store is given, got {key!r}")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str, got {key!r}")
        self.store = store
        self.key = key
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._bucket = TokenBucket(rate=self.tokens_per_second, burst=self.burst)
        self._lock = threading.Lock()
        self._limited = Counter()

    def _take_local(self) -> float:
        now = self.clock.monotonic()
        with self._lock:
            return self._bucket.take(now)

    def _limited_error(self, ctx: Context, wait: float) -> RateLimitedError:
        self._limited.incr()
        emit("ratelimit.rejected", operation=ctx.operation, key=self.key or self.partition, retry_after=wait)
        return RateLimitedError(f"rate limited; next token in {wait:.3f}s", retry_after=wait)

    def bind(self, inner: SyncStep) -> SyncStep:
        store, name, clock = self.store, self.key or "", self.clock
        rate, burst, take_local = self.tokens_per_second, self.burst, self._take_local

        def rate_limit_step(ctx: Context) -> Any:
            wait = store.take(name, rate=rate, burst=burst, now=clock.time()) if store is not None else take_local()
            if wait > 0:
                raise self._limited_error(ctx, wait)
            return inner(ctx)

        return rate_limit_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        store, name, clock = self.store, self.key or "", self.clock
        rate, burst, take_local = self.tokens_per_second, self.burst, self._take_local

        async def rate_limit_step(ctx: Context) -> Any:
            if store is not None:
                wait = await store.atake(name, rate=rate, burst=burst, now=clock.time())
            else:
                wait = take_local()
            if wait > 0:
                raise self._limited_error(ctx, wait)
            return await inner(ctx)

        return rate_limit_step

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limited": self._limited.value}
        if self.store is None:
            now = self.clock.monotonic()
            with self._lock:
                out["tokens"] = self._bucket.available(now)
        return out

    def __repr__(self) -> str:
        return f"RateLimiter({self.rate!r}, per={self.per!r}, burst={self.burst!r})"
