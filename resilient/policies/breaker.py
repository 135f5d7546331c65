"""CircuitBreaker: stop calling what keeps failing; let a few probes test it again.

Design (who decides, who holds, who waits):

* **pybreaker holds the state.** The state string, the consecutive-failure and
  probe-success counters and the opening time live in a pybreaker
  ``CircuitBreakerStorage``: its ``CircuitMemoryStorage`` by default, its
  ``CircuitRedisStorage`` for a breaker shared by a fleet (pass one, or a sync
  ``redis.Redis`` client and a ``name``). pybreaker's own ``CircuitBreaker``
  class is not used: it holds an ``RLock`` across the wrapped call (calls are
  serialized), has no failure-rate window and no asyncio path but tornado's.
* **A pure machine decides** (:mod:`resilient._machines.breaker`): admit,
  probe or reject a call; open, close or stay after an outcome. It sees the
  stored state, the clock's reading and the counts, and returns a decision.
* **This shell acts.** It reads the storage, asks the machine and writes the
  transition back, under a short ``threading.Lock`` that is taken only off the
  happy path (a transition, a failure, a probe) and never held across the
  wrapped call, so calls run concurrently in threads and in asyncio alike, and
  the async path is native (no awaits but the wrapped call's). Nothing here
  waits: an open circuit rejects at once.

Closed and healthy, a call costs one read of the stored state and one of the
failure counter. Probes in half-open are counted per process: a fleet of
``N`` processes sends at most ``N * half_open_max_calls`` probes at a time.
The failure-rate window is per process too; the state it trips is shared.
With Redis (``storage=rs.RedisStore(client)``, or a sync ``redis.Redis``
client, and a ``name``) the state lives in one Redis hash through
:class:`resilient.stores.breaker_state.RedisBreakerStorage`, on pybreaker's
storage interface but not pybreaker's Redis storage (which writes at
construction, logs tracebacks and blocks on the client's retries): nothing
touches Redis at construction, each read is bounded by the store's
``timeout``, and while Redis is away the breaker runs on the last state it saw
(failing open from a closed circuit), quietly, then writes back a circuit it
opened meanwhile once Redis answers. A closed, healthy call costs two short
round trips (state, then the failure counter), blocking in the async path too.
"""

from __future__ import annotations

import inspect
import operator
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from .._machines.breaker import CALL, CLOSED, HALF_OPEN, OPEN, START_PROBE, BreakerMachine, Reject
from ..core.clock import SYSTEM_CLOCK, Clock, monotonic_of
from ..core.context import Context
from ..core.errors import CircuitOpenError
from ..core.events import emit, failure
from ..core.outcome import compile_on
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from ..stores.redis import RedisStore

if TYPE_CHECKING:  # pybreaker imports redis when it is installed: imported when a breaker is made
    from pybreaker import CircuitBreakerStorage

__all__ = ["CircuitBreaker"]

_PUBLIC_STATE = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
_EVENT = {OPEN: "breaker.opened", HALF_OPEN: "breaker.half_open", CLOSED: "breaker.closed"}


def _is_memory(storage: CircuitBreakerStorage) -> bool:
    from pybreaker import CircuitMemoryStorage

    return isinstance(storage, CircuitMemoryStorage) or getattr(storage, "exact_opened_at", False) is True


def _readers(storage: CircuitBreakerStorage) -> tuple[Callable[[Any], str], Callable[[Any], int]]:
    """Read a storage's state and failure count: pybreaker's memory storage by its fields
    (its properties are a Python call each, on every call of the breaker), others by property."""
    from pybreaker import CircuitMemoryStorage

    fields = vars(storage) if type(storage) is CircuitMemoryStorage else {}
    if "_state" in fields and "_fail_counter" in fields:
        return operator.attrgetter("_state"), operator.attrgetter("_fail_counter")
    return operator.attrgetter("state"), operator.attrgetter("counter")


def _storage_for(storage: object, name: str | None) -> CircuitBreakerStorage:
    from pybreaker import CircuitBreakerStorage, CircuitMemoryStorage

    from ..stores.breaker_state import RedisBreakerStorage

    if storage is None:
        return CircuitMemoryStorage(CLOSED)
    if isinstance(storage, CircuitBreakerStorage):
        return storage
    if isinstance(storage, RedisStore):
        return RedisBreakerStorage(storage, _shared_name(name))
    if all(hasattr(storage, attr) for attr in ("get", "set", "setnx", "incr", "transaction")):
        if inspect.iscoroutinefunction(getattr(storage, "execute_command", None)):
            raise TypeError(f"storage must be a sync redis.Redis client (it is read in sync), got {storage!r}")
        return RedisBreakerStorage(RedisStore(storage), _shared_name(name))
    raise TypeError(
        f"storage must be a RedisStore, a sync redis.Redis client or a pybreaker CircuitBreakerStorage, got {storage!r}"
    )


def _shared_name(name: str | None) -> str:
    if name is None:
        raise ValueError("name is required with a Redis storage (it names the shared breaker), got None")
    return name


def _unused(now: float) -> None:
    """Stands in for the success recorder in consecutive mode, where it is never called."""


class CircuitBreaker(Policy):
    """Reject calls at once while the function keeps failing; probe it again later.

    Closed, calls pass and failures are counted. Consecutive-failure mode (the
    default) opens after ``failure_threshold`` failures in a row; failure-rate
    mode (``failure_rate`` and ``window``) opens when, in the last ``window``
    seconds and once ``minimum_calls`` were seen, ``failures / calls >=
    failure_rate``. The call that trips it surfaces its own error; later calls
    raise :class:`~resilient.CircuitOpenError` (``.remaining`` seconds) without
    calling. From ``reset_timeout`` seconds after opening (inclusive) up to
    ``half_open_max_calls`` probes pass at a time, the rest are rejected;
    ``success_threshold`` probe successes close it, a failed probe re-opens it.
    A cancelled probe frees its place and decides nothing.

    Events: ``breaker.opened``, ``breaker.half_open``, ``breaker.closed``,
    ``breaker.rejected``.

    Args:
        failure_threshold: consecutive failures that open it (>= 1).
        reset_timeout: seconds open before probing (>= 0).
        success_threshold: probe successes that close it (>= 1).
        on: what counts as a failure (see ``rs.Retry``); other outcomes are
            successes. Default: any ``Exception`` but ``rs.Rejected``.
        failure_rate: in ``(0, 1]``, with ``window``: failure-rate mode.
        window: seconds of history for the failure rate (10 buckets).
        minimum_calls: calls in the window before the rate may trip it.
        half_open_max_calls: probes in flight at most, per process.
        storage: a ``RedisStore`` or a sync ``redis.Redis`` client (shared state
            under ``<prefix>{breaker:<name>}:cb``), or any pybreaker
            ``CircuitBreakerStorage``; default in memory.
        name: names the breaker in events (``key``) and in Redis.
        clock: time source; wall time (``clock.time()``) marks the opening.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "breaker"

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30,
        success_threshold: int = 1,
        on: object = None,
        failure_rate: float | None = None,
        window: float | None = None,
        minimum_calls: int = 10,
        half_open_max_calls: int = 1,
        storage: object = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._machine = BreakerMachine(
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            failure_rate=failure_rate,
            window=window,
            minimum_calls=minimum_calls,
            half_open_max_calls=half_open_max_calls,
        )
        self._on = compile_on(on)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self._storage = _storage_for(storage, name)
        self._memory = _is_memory(self._storage)
        self._lock = threading.Lock()
        self._probes = 0
        self._generation = 0  # bumped on every transition: probes of an older one count no more
        self._opened_exact: float | None = None
        self._rejected = Counter()
        self._failures = Counter()
        self._transitions = {OPEN: Counter(), HALF_OPEN: Counter(), CLOSED: Counter()}

    # -- reading the shared state ------------------------------------------------
    @property
    def storage(self) -> CircuitBreakerStorage:
        """The pybreaker storage that holds this breaker's state."""
        return self._storage

    def _opened_at(self) -> float | None:
        stored = self._storage.opened_at
        if stored is None:
            return None
        ts = stored.timestamp()
        exact = self._opened_exact
        if self._memory:
            return exact if exact is not None and abs(exact - ts) < 1e-3 else ts
        if exact is not None and int(exact) == int(ts):
            return exact
        return float(int(ts)) + 1.0  # whole seconds in Redis: assume the latest moment it stands for

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (open and past ``reset_timeout``)."""
        stored = self._storage.state
        if stored == OPEN and self._machine.remaining(self._opened_at(), self.clock.time()) <= 0:
            return "half_open"
        return _PUBLIC_STATE.get(stored, stored)

    # -- acting on decisions (short lock, never across the call) ---------------------
    def _move(self, target: str, now: float) -> None:
        """Write a transition to the storage; the caller holds the lock."""
        storage = self._storage
        if target == OPEN:
            storage.opened_at = datetime.fromtimestamp(now, UTC)  # before the state: readers see both
            self._opened_exact = now
            storage.state = OPEN
        elif target == HALF_OPEN:
            storage.state = HALF_OPEN
        else:
            storage.state = CLOSED
            storage.reset_counter()
        storage.reset_success_counter()
        self._machine.forget()
        self._generation += 1
        self._probes = 0
        self._transitions[target].incr()

    def _announce(self, target: str, operation: str, **fields: Any) -> None:
        emit(_EVENT[target], operation=operation, key=self.name or self.partition, **fields)

    def _enter(self, operation: str) -> int:
        """Admit a call found not closed: its probe generation, -1 if not a probe; or raise."""
        started = False
        with self._lock:
            state = self._storage.state
            now = self.clock.time()
            verdict = self._machine.admit(state, self._opened_at() if state == OPEN else None, self._probes, now)
            if verdict == CALL:
                return -1
            if not isinstance(verdict, Reject):
                if verdict == START_PROBE:
                    self._move(HALF_OPEN, now)
                    started = True
                self._probes += 1
                generation = self._generation
        if not isinstance(verdict, Reject):
            if started:
                self._announce(HALF_OPEN, operation)
            return generation
        self._rejected.incr()
        emit("breaker.rejected", operation=operation, key=self.name or self.partition, remaining=verdict.remaining)
        label = self.name or self.partition
        circuit = f"{operation!r} is open" if label is None else f"{label!r} is open (refusing {operation})"
        raise CircuitOpenError(
            f"circuit {circuit}; {verdict.remaining:.3f}s until a probe may pass",
            remaining=verdict.remaining,
        )

    def _failed(self, generation: int, operation: str, error: BaseException | None, value: object = None) -> None:
        self._failures.incr()
        storage = self._storage
        with self._lock:
            probe = generation >= 0 and generation == self._generation
            if probe:
                self._probes -= 1
            state = storage.state
            failures = 0
            if state == CLOSED and self._machine.consecutive:
                storage.increment_counter()
                failures = storage.counter
            target = self._machine.on_failure(state, probe, failures, self.clock.monotonic())
            if target is not None:
                calls, rate = self._machine.failure_rate_now(self.clock.monotonic())
                self._move(target, self.clock.time())
        if target is not None:
            fields: dict[str, Any] = failure(error, value)
            if probe:
                fields["probe"] = True
            elif self._machine.consecutive:
                fields["failures"] = failures
            else:
                fields["calls"], fields["failure_rate"] = calls, rate
            self._announce(target, operation, **fields)

    def _succeeded(self, generation: int, operation: str) -> None:
        storage = self._storage
        with self._lock:
            probe = generation >= 0 and generation == self._generation
            if probe:
                self._probes -= 1
            state = storage.state
            successes = 0
            if probe and state == HALF_OPEN:
                storage.increment_success_counter()
                successes = storage.success_counter
            elif state == CLOSED and self._machine.consecutive and storage.counter:
                storage.reset_counter()
            target = self._machine.on_success(state, probe, successes, self.clock.monotonic())
            if target is not None:
                self._move(target, self.clock.time())
        if target is not None:
            self._announce(target, operation, successes=successes)

    def _released(self, generation: int) -> None:
        """A probe was cancelled: free its place, decide nothing."""
        with self._lock:
            if generation == self._generation:
                self._probes -= 1

    def reset(self) -> None:
        """Close the circuit now and forget the counts (an operator's override)."""
        with self._lock:
            self._move(CLOSED, self.clock.time())
        self._announce(CLOSED, self.name or "", manual=True)

    def _monotonic(self) -> Callable[[], float]:
        """The clock's ``monotonic``; the system clock's is ``time.monotonic`` itself (one call less)."""
        return monotonic_of(self.clock)

    # -- the steps ---------------------------------------------------------------------
    def bind(self, inner: SyncStep) -> SyncStep:
        storage = self._storage
        enter, failed, succeeded, released = self._enter, self._failed, self._succeeded, self._released
        lock, monotonic = self._lock, self._monotonic()
        record_success = _unused if self._machine.consecutive else self._machine.success_recorder()
        matches_error = self._on.matches_error
        matches_result = self._on.result_matcher
        consecutive = self._machine.consecutive
        state_of, failures_of = _readers(storage)

        def breaker_step(ctx: Context) -> Any:
            generation = -1
            if state_of(storage) != CLOSED:
                generation = enter(ctx.operation)
            try:
                value = inner(ctx)
            except Exception as exc:
                if matches_error(exc):
                    failed(generation, ctx.operation, exc)
                else:
                    succeeded(generation, ctx.operation)
                raise
            except BaseException:
                if generation >= 0:
                    released(generation)
                raise
            if matches_result is not None and matches_result(value):
                failed(generation, ctx.operation, None, value)
            elif generation < 0:
                if consecutive:
                    if failures_of(storage):
                        storage.reset_counter()
                else:  # closed, failure-rate mode: a success only enters the window
                    now = monotonic()
                    with lock:
                        record_success(now)
            else:
                succeeded(generation, ctx.operation)
            return value

        return breaker_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        storage = self._storage
        enter, failed, succeeded, released = self._enter, self._failed, self._succeeded, self._released
        lock, monotonic = self._lock, self._monotonic()
        record_success = _unused if self._machine.consecutive else self._machine.success_recorder()
        matches_error = self._on.matches_error
        matches_result = self._on.result_matcher
        consecutive = self._machine.consecutive
        state_of, failures_of = _readers(storage)

        async def breaker_step(ctx: Context) -> Any:
            generation = -1
            if state_of(storage) != CLOSED:
                generation = enter(ctx.operation)
            try:
                value = await inner(ctx)
            except Exception as exc:
                if matches_error(exc):
                    failed(generation, ctx.operation, exc)
                else:
                    succeeded(generation, ctx.operation)
                raise
            except BaseException:
                if generation >= 0:
                    released(generation)
                raise
            if matches_result is not None and matches_result(value):
                failed(generation, ctx.operation, None, value)
            elif generation < 0:
                if consecutive:
                    if failures_of(storage):
                        storage.reset_counter()
                else:  # closed, failure-rate mode: a success only enters the window
                    now = monotonic()
                    with lock:
                        record_success(now)
            else:
                succeeded(generation, ctx.operation)
            return value

        return breaker_step

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "failures": self._failures.value,
            "rejected": self._rejected.value,
            "opened": self._transitions[OPEN].value,
            "half_opened": self._transitions[HALF_OPEN].value,
            "closed": self._transitions[CLOSED].value,
        }
        if not self._machine.consecutive:
            out["window_calls"], out["failure_rate"] = self._machine.failure_rate_now(self.clock.monotonic())
        return out

    def __repr__(self) -> str:
        m = self._machine
        mode = (
            f"failure_threshold={m.failure_threshold}"
            if m.consecutive
            else f"failure_rate={m.failure_rate}, window={m.window.window if m.window else None}"
        )
        return f"CircuitBreaker({mode}, reset_timeout={m.reset_timeout}, state={self.state!r})"
