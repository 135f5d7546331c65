"""RedisStore's health: what counts as an outage, the breaker, and the probe off the callers' path.

* A **failure** is an error meaning the server could not be reached or did not
  answer in time (connection refused or reset, a socket or store timeout, a
  cluster that is down). Anything else the server or client raised (a wrong
  type, OOM on one write, a key that cannot be encoded) is an answer about
  that call only: it is raised to the caller and leaves the store healthy.
* Failures of one outage count once (see :class:`StoreBreaker`); a call that
  times out while the server answers other calls meanwhile was slow, not a
  sign of an outage: it fails alone, uncounted.
* Once the breaker opens, calls are refused at once (``StoreUnavailable`` with
  ``refused=True``) and **one probe per process** PINGs the server every
  ``reset_timeout`` seconds, in a daemon thread (sync client) or a task on the
  loop that saw the failure (asyncio client only), until it answers; then the
  breaker closes and every caller is back on Redis. The probe paces itself on
  real time: it is I/O, never on a caller's path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .._machines.store_breaker import StoreBreaker
from ..core.clock import Clock
from ..core.errors import StoreUnavailable
from ..core.events import emit

__all__ = ["ATTEMPTS", "Health", "is_failure", "is_stale_connection"]

#: Attempts of one command when the connection turns out closed (a pooled
#: connection left over from before a restart): the retries take fresh ones.
ATTEMPTS = 3

# Error class names (redis-py and valkey-py alike, matched along the MRO so that
# no client library is imported) that mean the server is unreachable or down.
_FAILURE_NAMES = frozenset(
    {"ConnectionError", "TimeoutError", "ClusterDownError", "TryAgainError", "MasterDownError", "ClusterError"}
)


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def is_failure(exc: BaseException) -> bool:
    """True if ``exc`` means the store could not be reached or did not answer in time."""
    return isinstance(exc, OSError) or bool(_FAILURE_NAMES & _names(exc))


def is_stale_connection(exc: BaseException) -> bool:
    """True for a pooled connection found closed (worth one more try on a fresh one): not a timeout,
    not a refused login, not a failure to connect at all (``Error 111 connecting to ...``)."""
    names = _names(exc)
    if "ConnectionError" not in names or "TimeoutError" in names or "AuthenticationError" in names:
        return False
    return "connecting to" not in str(exc)


class Health:
    """The breaker of one store, its lock, and its probe."""

    __slots__ = ("_aping", "_lock", "_ping", "_stop", "_tasks", "answers", "breaker", "clock")

    def __init__(
        self,
        breaker: StoreBreaker,
        clock: Clock,
        ping: Callable[[], Any] | None,
        aping: Callable[[], Awaitable[Any]] | None,
    ) -> None:
        self.breaker = breaker
        self.clock = clock
        self._ping = ping
        self._aping = aping
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.answers = 0  # calls answered so far (approximate under threads: only compared for change)

    @property
    def available(self) -> bool:
        """True while calls may go to the store (the breaker is closed)."""
        return self.breaker.state == "closed"

    def refusal(self) -> StoreUnavailable:
        """The error a call gets while the store rests (not a failure: nothing was tried)."""
        with self._lock:
            remaining = self.breaker.admit(self.clock.monotonic())
        return StoreUnavailable(
            f"redis store unavailable (resting, probed again in {remaining:.2f}s)", remaining=remaining, refused=True
        )

    def ok(self) -> None:
        """A call reached the store."""
        self.answers += 1
        if self.breaker.failures or self.breaker.state != "closed":
            with self._lock:
                recovered = self.breaker.success()
            if recovered:
                emit("redis.recovered", operation="redis")

    def failed(self, exc: BaseException, method: str, key: str, started: float, answers: int) -> StoreUnavailable:
        """Record the failure of a call begun at ``started``; start the probe if the breaker opened.

        A call that timed out while the store answered others (``answers`` changed since it began:
        a burst of new connections, say) was slow, not a sign of an outage: it fails alone.
        """
        if self.answers != answers and not is_stale_connection(exc):
            return StoreUnavailable(f"redis store too slow in {method}(): {exc!r}")
        with self._lock:
            counted = started >= self.breaker.last_failure and self.breaker.state == "closed"
            opened = self.breaker.failure(self.clock.monotonic(), started)
            probe = opened and self.breaker.begin_probe()
        if counted:  # the other failures of the same outage are not told again
            emit("redis.error", operation="redis", key=key, error=exc, method=method, breaker_opened=opened)
        if probe:
            self._start_probe()
        return StoreUnavailable(f"redis store failed in {method}(): {exc!r}")

    def close(self) -> None:
        """Stop the probe (a thread ends at its next pause; tasks are cancelled)."""
        self._stop.set()
        for task in list(self._tasks):
            task.cancel()

    # -- the probe ---------------------------------------------------------------
    def _start_probe(self) -> None:
        if self._ping is not None:
            threading.Thread(target=self._probe, name="resilient-redis-probe", daemon=True).start()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop and no sync client: the next async failure starts it
            self._probe_ended()
            return
        task = loop.create_task(self._aprobe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _probe_ended(self) -> None:
        with self._lock:
            self.breaker.end_probe()

    def _answered(self) -> None:
        with self._lock:
            recovered = self.breaker.success()
            self.breaker.end_probe()
        if recovered:
            emit("redis.recovered", operation="redis")

    def _probe(self) -> None:
        ping = self._ping
        assert ping is not None
        try:
            while not self._stop.wait(self.breaker.reset_timeout):
                if self.breaker.state == "closed":
                    break
                if _tries(ping):
                    self._answered()
                    return
        finally:
            self._probe_ended()

    async def _aprobe(self) -> None:
        aping = self._aping
        assert aping is not None
        try:
            while not self._stop.is_set():
                await asyncio.sleep(self.breaker.reset_timeout)
                if self.breaker.state == "closed":
                    break
                if await _atries(aping):
                    self._answered()
                    return
        finally:
            self._probe_ended()


def _tries(ping: Callable[[], Any]) -> bool:
    for _ in range(ATTEMPTS):
        try:
            ping()
        except Exception as exc:
            if not is_stale_connection(exc):
                return False
        else:
            return True
    return False


async def _atries(aping: Callable[[], Awaitable[Any]]) -> bool:
    for _ in range(ATTEMPTS):
        try:
            await aping()
        except Exception as exc:
            if not is_stale_connection(exc):
                return False
        else:
            return True
    return False
