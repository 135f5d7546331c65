"""Shared auth tokens: one refresh at a time per process (threads and asyncio) and per fleet.

:class:`Token` is a credential with a wall-clock expiry whose ``repr`` never
shows the secret. :class:`TokenProvider` hands out a valid token's value to any
number of threads and tasks, refreshing it early (jittered, in the background)
while the current token still serves, and blocking callers on the single
refresh only when no valid token is left. :class:`TokenAuth` plugs a provider
into httpx. The decisions live in ``resilient._machines.token``; the waiting in
``resilient.tokens.wait``; the fleet protocol in ``resilient.tokens.record``.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .._machines._validate import number
from .._machines.backoff import Backoff, EqualJitter
from .._machines.token import Action, TokenState, TokenTiming
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.errors import ResilienceError
from ..core.events import emit
from ..core.stats import Counter
from ..stores.base import Store
from .record import Owner, SharedToken
from .token import Obtained, Token, checked
from .wait import Flight

__all__ = ["Token", "TokenProvider"]

_ROUNDS = 8  # a caller re-decides after each refresh it waited for; bounded
_DEFAULT_JITTER = 0.5


class TokenProvider:
    """A valid token for any number of threads and tasks, refreshed once at a time.

    * ``get()`` / ``await aget()`` return a valid token's value, fetching it on
      first use. Concurrent callers share one fetch.
    * From this process's refresh point on (``refresh_before`` seconds before
      expiry, plus up to ``refresh_jitter`` of that, drawn per process and token)
      one caller starts a refresh in the background while everyone keeps the
      still-valid token. A failed background refresh is retried after a
      ``backoff`` delay; the old token keeps serving until it expires.
    * With no valid token, callers wait for the one refresh; its error reaches
      every caller that waited for it, and the next call tries again (a failure
      is never cached).
    * ``invalidate(value)`` (a 401 for ``value``) drops the token only if it is
      still the current one, so 30 concurrent 401s cost one refresh.
    * With ``store`` (any :class:`resilient.stores.base.Store`, such as
      ``rs.RedisStore``), the token is shared by a fleet: one process refreshes
      under the store's lease, the others wait for and read the token it wrote.
      The store then holds a live credential (the entry under ``key`` is
      ``{"value": ..., "expires_at": ...}`` until the token expires): protect it
      as you protect the credential itself.

    Events (``token.refreshed``, ``token.shared``, ``token.refresh_failed``,
    ``token.invalidated``, ``token.store_error``) never carry the token value.

    Args:
        fetch: returns a :class:`Token`; a plain function serves ``get()`` (and
            ``aget()``, in a worker thread), a coroutine function serves ``aget()``.
        refresh_before: seconds before expiry at which refreshing begins (> 0).
        refresh_jitter: extra lead, as a fraction of ``refresh_before`` (>= 0;
            None: 0.5), so a fleet spreads its refreshes over
            ``[expires_at - refresh_before * (1 + refresh_jitter), expires_at - refresh_before]``.
        store: share the token through this store (None: in this process only).
        key: the store key of the token record.
        lease_ttl: seconds a process may hold the store's refresh lease (> 0);
            a process waits for another's refresh up to twice this, then fetches
            for itself (without writing to the store: only a lease holder writes).
        backoff: delays between failed background refreshes (default
            ``EqualJitter(1, 30)``).
        clock: time source (``resilient.testing.FakeClock`` in tests).
        rng: randomness for the refresh jitter and backoff (``random.Random``).
    """

    def __init__(
        self,
        fetch: Callable[[], Token] | Callable[[], Awaitable[Token]],
        *,
        refresh_before: float = 60,
        refresh_jitter: float | None = None,
        store: Store | None = None,
        key: str = "token",
        lease_ttl: float = 10.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not callable(fetch):
            raise TypeError(f"fetch must be callable, got {type(fetch).__name__}")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty str, got {key!r}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a resilient.Backoff, got {backoff!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, got {rng!r}")
        self._timing = TokenTiming.validated(
            refresh_before, _DEFAULT_JITTER if refresh_jitter is None else refresh_jitter
        )
        self._fetch = fetch
        self._async_fetch = inspect.iscoroutinefunction(fetch) or inspect.iscoroutinefunction(
            getattr(fetch, "__call__", None)  # noqa: B004 - an object whose __call__ is async
        )
        self.clock = clock or SYSTEM_CLOCK
        self.key = key
        self._rng = rng if rng is not None else random.Random()
        self._backoff = backoff or EqualJitter(1.0, 30.0)
        self._retry_delays = self._backoff.delays(self._rng)
        self._operation = getattr(fetch, "__qualname__", None) or type(fetch).__name__
        lease_ttl = number("lease_ttl", lease_ttl, strict=True)
        self._shared = (
            None
            if store is None
            else SharedToken(
                Owner(
                    clock=self.clock,
                    key=self.key,
                    operation=self._operation,
                    rng=self._rng,
                    fetch=self._fetch_sync,
                    afetch=self._afetch,
                    accepts=self._accepts,
                    rejected=self._rejected,
                    window_start=self._timing.window_start,
                ),
                store,
                lease_ttl=lease_ttl,
            )
        )
        self._lock = threading.Lock()
        self._state = TokenState()
        self._fast: tuple[str, float] | None = None  # (value, refresh point): served without the lock
        self._flight: Flight[Obtained] | None = None
        self._threads: set[threading.Thread] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetches = Counter()
        self._reads = Counter()
        self._failures = Counter()
        self._invalidations = Counter()

    @property
    def refresh_before(self) -> float:
        return self._timing.refresh_before

    @property
    def refresh_jitter(self) -> float:
        return self._timing.refresh_jitter

    # -- threads ------------------------------------------------------------------

    def get(self) -> str:
        """A valid token's value, fetching or refreshing it as needed (see the class docstring)."""
        if self._async_fetch:
            raise TypeError("fetch is a coroutine function: use `await provider.aget()`")
        fast = self._fast
        if fast is not None and self.clock.time() < fast[1]:
            return fast[0]
        for _ in range(_ROUNDS):
            action, value, flight = self._decide(None)
            if action is Action.SERVE:
                return value  # type: ignore[return-value]
            if action is Action.SERVE_AND_REFRESH:
                thread = threading.Thread(
                    target=self._refresh, args=(flight,), name="resilient-token-refresh", daemon=True
                )
                self._threads.add(thread)
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had: serve, and let a later call try again
                    self._threads.discard(thread)
                    self._settle(flight, None, None, abandoned=True)
                return value  # type: ignore[return-value]
            if action is Action.REFRESH:
                self._refresh(flight)
            else:
                flight.wait()
            result = self._outcome(flight)
            if result is not None:
                return result
        raise ResilienceError("the token refresh was abandoned too many times")

    def _refresh(self, flight: Flight[Obtained]) -> None:
        """Run one refresh in this thread (blocking the callers, or in the background)."""
        flight.owner = threading.get_ident()
        try:
            if self._shared is None:
                got: Obtained | None = Obtained(self._fetch_sync(), fetched=True)
            else:
                got = self._shared.refresh(blocking=not flight.background)
        except Exception as exc:
            self._settle(flight, None, exc)
        except BaseException:
            self._settle(flight, None, None, abandoned=True)
            raise
        else:
            self._settle(flight, got, None)
        finally:
            self._threads.discard(threading.current_thread())

    def _fetch_sync(self) -> Token:
        self._fetches.incr()
        return checked(self._fetch(), self.clock.time())

    def invalidate(self, value: str) -> bool:
        """Drop the current token if it is ``value`` (the server refused it); True if it was.

        Only the first of many concurrent invalidations of one value takes
        effect; the next ``get()`` refreshes. With a store, the shared record is
        deleted too if it still holds ``value``.
        """
        dropped = self._drop(value)
        if dropped and self._shared is not None:
            self._shared.invalidate(value)
        return dropped

    def close(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout`` s each) for background refresh threads; the provider stays usable."""
        for thread in list(self._threads):
            thread.join(timeout)

    # -- asyncio ------------------------------------------------------------------

    async def aget(self) -> str:
        """The async twin of :meth:`get` (a plain ``fetch`` runs in a worker thread)."""
        fast = self._fast
        if fast is not None and self.clock.time() < fast[1]:
            return fast[0]
        loop = asyncio.get_running_loop()
        for _ in range(_ROUNDS):
            action, value, flight = self._decide(loop)
            if action is Action.SERVE:
                return value  # type: ignore[return-value]
            if action is not Action.WAIT:
                task = loop.create_task(self._arefresh(flight), name="resilient-token-refresh")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                if action is Action.SERVE_AND_REFRESH:
                    return value  # type: ignore[return-value]
            await flight.await_done()  # the refresh is a task of its own: a cancelled caller does not cancel it
            result = self._outcome(flight)
            if result is not None:
                return result
        raise ResilienceError("the token refresh was abandoned too many times")

    async def _arefresh(self, flight: Flight[Obtained]) -> None:
        """The async twin of :meth:`_refresh`."""
        try:
            if self._shared is None:
                got: Obtained | None = Obtained(await self._afetch(), fetched=True)
            else:
                got = await self._shared.arefresh(blocking=not flight.background)
        except Exception as exc:
            self._settle(flight, None, exc)
        except BaseException:
            self._settle(flight, None, None, abandoned=True)
            raise
        else:
            self._settle(flight, got, None)

    async def _afetch(self) -> Token:
        self._fetches.incr()
        if self._async_fetch:
            result: Any = await self._fetch()  # type: ignore[misc]
        else:
            result = await asyncio.to_thread(self._fetch)
            if inspect.isawaitable(result):
                result = await result
        return checked(result, self.clock.time())

    async def ainvalidate(self, value: str) -> bool:
        """The async twin of :meth:`invalidate`."""
        dropped = self._drop(value)
        if dropped and self._shared is not None:
            await self._shared.ainvalidate(value)
        return dropped

    async def aclose(self) -> None:
        """Wait for background refresh tasks (cancelling this wait cancels them); the provider stays usable."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- shared by both worlds (short critical sections, never across I/O) --------

    def _decide(self, loop: asyncio.AbstractEventLoop | None) -> tuple[Action, str | None, Flight[Obtained]]:
        now = self.clock.time()
        with self._lock:
            action = self._state.decide(now)
            value = self._state.value
            if action is Action.REFRESH or action is Action.SERVE_AND_REFRESH:
                self._flight = Flight(self._lock, background=action is Action.SERVE_AND_REFRESH, loop=loop)
            flight = self._flight
        assert flight is not None or action is Action.SERVE
        return action, value, flight  # type: ignore[return-value]

    def _outcome(self, flight: Flight[Obtained]) -> str | None:
        """After waiting for ``flight``: its token, its error raised, or None to decide again."""
        got = flight.result
        if got is not None and self.clock.time() < got.token.expires_at:
            return got.token.value
        if flight.error is not None:
            raise flight.error
        return None

    def _settle(
        self, flight: Flight[Obtained], got: Obtained | None, error: Exception | None, *, abandoned: bool = False
    ) -> None:
        """Record a refresh's outcome in the state, tell the world, wake the waiters."""
        now = self.clock.time()
        retry_in: float | None = None
        failures = 0
        with self._lock:
            state = self._state
            if self._flight is flight:
                self._flight = None
            if got is not None:
                token = got.token
                refresh_at = self._timing.point(token.expires_at, obtained_at=now, draw=self._rng.random())
                state.adopt(token.value, token.expires_at, refresh_at)
                self._fast = (token.value, refresh_at)
                self._retry_delays = self._backoff.delays(self._rng)
            elif error is not None:
                if flight.background:
                    retry_in = state.failed(now, next(self._retry_delays))
                else:
                    state.failed_blocking()
                failures = state.failures
            elif abandoned:
                state.abandoned()
            else:  # another process is refreshing the shared token: look again soon
                retry_in = state.pending(now, self._shared.next_poll() if self._shared else 0.0)
        fields: dict[str, Any] = {"operation": self._operation, "key": self.key, "background": flight.background}
        if got is not None:
            if not got.fetched:
                self._reads.incr()
            emit("token.refreshed" if got.fetched else "token.shared", expires_at=got.token.expires_at, **fields)
        elif error is not None:
            self._failures.incr()
            emit("token.refresh_failed", error=error, failures=failures, retry_in=retry_in, **fields)
        flight.finish(got, error)

    def _drop(self, value: str) -> bool:
        with self._lock:
            dropped = self._state.invalidate(value)
            if dropped:
                self._fast = None
        if dropped:
            self._invalidations.incr()
            emit("token.invalidated", operation=self._operation, key=self.key)
        return dropped

    def _accepts(self, token: Token, now: float) -> bool:
        """A token read from the store may replace ours (valid, not refused, not older)."""
        with self._lock:
            return self._state.acceptable(token.value, token.expires_at, now)

    def _rejected(self) -> str | None:
        with self._lock:
            return self._state.rejected

    def stats(self) -> dict[str, Any]:
        """Counters: ``fetches`` (calls of ``fetch``), ``shared`` (tokens read from the
        store), ``refresh_failures``, ``invalidations``."""
        return {
            "fetches": self._fetches.value,
            "shared": self._reads.value,
            "refresh_failures": self._failures.value,
            "invalidations": self._invalidations.value,
        }

    def __repr__(self) -> str:
        return (
            f"TokenProvider(refresh_before={self.refresh_before!r}, refresh_jitter={self.refresh_jitter!r}, "
            f"key={self.key!r}, shared={self._shared is not None})"
        )
