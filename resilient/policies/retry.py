"""Retry: try again after a jittered pause, within attempts, deadline and budget."""

from __future__ import annotations

import random
import threading
from typing import Any, ClassVar

from .._machines._validate import number, whole
from .._machines.backoff import Backoff, FullJitter
from .._machines.budget import BudgetWindow
from .._machines.retry import GiveUp, RetryPlan, Sleep, parse_retry_after
from ..core.clock import SYSTEM_CLOCK, Clock, monotonic_of
from ..core.context import Context, replay_forbidden
from ..core.events import emit, failure
from ..core.outcome import Outcome, Predicate, compile_on
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter
from ..core.waiting import asleep, sleep

__all__ = ["Retry", "RetryBudget", "RetryCall"]


class RetryBudget:
    """A budget of retries shared by any number of :class:`Retry` policies.

    Each original call deposits, each retry withdraws; retries may add at most
    ``ratio`` of the calls seen in the last ``window`` seconds, plus a reserve
    of ``min_per_second * window``. When it is spent, failures surface at once
    (event ``retry.budget_exhausted``): this is what stops retry storms.

    Args:
        ratio: retries allowed per original call, in ``[0, 1000]``.
        min_per_second: retries always allowed per second of window.
        window: seconds of history (sliding, in 10 slots).
        clock: time source (``resilient.testing.FakeClock`` in tests).
    """

    def __init__(
        self, *, ratio: float = 0.1, min_per_second: float = 10, window: float = 10, clock: Clock | None = None
    ) -> None:
        self._window = BudgetWindow(ratio=ratio, min_per_second=min_per_second, window=window)
        self.clock = clock or SYSTEM_CLOCK
        self._now = monotonic_of(self.clock)
        self._lock = threading.Lock()
        self._exhausted = Counter()

    @property
    def ratio(self) -> float:
        return self._window.ratio

    def deposit(self) -> None:
        """Count one original call."""
        now = self._now()
        with self._lock:
            self._window.deposit(now)

    def try_withdraw(self) -> bool:
        """Spend one retry; False (and counted) when the budget is empty."""
        now = self.clock.monotonic()
        with self._lock:
            ok = self._window.try_withdraw(now)
        if not ok:
            self._exhausted.incr()
        return ok

    def stats(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        with self._lock:
            balance = self._window.balance(now)
        return {"balance": balance, "exhausted": self._exhausted.value}

    def __repr__(self) -> str:
        w = self._window
        return f"RetryBudget(ratio={w.ratio!r}, min_per_second={w.min_per_second!r}, window={w.window!r})"


def _retry_after_header(outcome: Outcome[Any]) -> str | None:
    """The ``Retry-After`` of a response outcome, or of an exception carrying one."""
    source = outcome.value if outcome.error is None else getattr(outcome.error, "response", None)
    headers = getattr(source, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
    except Exception:  # a foreign object with a strange .headers
        return None
    return value if isinstance(value, str) else None


class RetryCall:
    """One call's retries: the pure plan plus the clock, budget and events around it."""

    __slots__ = ("_plan", "clock", "ctx", "policy")

    def __init__(self, policy: Retry, ctx: Context, started: float | None) -> None:
        self.policy = policy
        self.ctx = ctx
        self.clock = policy.clock
        own = None if policy.deadline is None or started is None else started + policy.deadline
        outer = ctx.effective_deadline()
        deadline = own if outer is None else (outer if own is None else min(own, outer))
        self._plan = RetryPlan(
            attempts=policy.attempts,
            delays=policy.backoff.delays(policy.rng),
            deadline=deadline,
            max_retry_after=policy.max_retry_after if policy.respect_retry_after else None,
            attempt_started=started,
        )

    def decide(self, outcome: Outcome[Any]) -> Sleep | GiveUp:
        policy = self.policy
        retry_after = None
        if policy.respect_retry_after:
            retry_after = parse_retry_after(_retry_after_header(outcome), self.clock.time())
        decision: Sleep | GiveUp
        if replay_forbidden.get() is not None:  # e.g. a POST without Idempotency-Key
            decision = GiveUp("not_replayable")
        else:
            decision = self._plan.next(self.clock.monotonic(), retry_after)
        if isinstance(decision, Sleep) and policy.budget is not None and not policy.budget.try_withdraw():
            emit(
                "retry.budget_exhausted",
                operation=self.ctx.operation,
                key=policy.partition,
                attempt=self._plan.made,
                **failure(outcome.error, outcome.value),
            )
            decision = GiveUp("budget")
        if isinstance(decision, GiveUp):
            policy._gave_up.incr()
            emit(
                "retry.gave_up",
                operation=self.ctx.operation,
                key=policy.partition,
                reason=decision.reason,
                attempts=self._plan.made,
                **failure(outcome.error, outcome.value),
            )
        else:
            policy._retries.incr()
            emit(
                "retry.attempt",
                operation=self.ctx.operation,
                key=policy.partition,
                attempt=self._plan.made,
                delay=decision.delay,
                **failure(outcome.error, outcome.value),
                retry_after=retry_after,
            )
        return decision

    def starting(self) -> None:
        self._plan.started(self.clock.monotonic())
        self.ctx.attempt += 1

    def succeeded(self) -> None:
        self.policy._recovered.incr()

    def is_failure_error(self, exc: BaseException) -> bool:
        return self.policy._on.matches_error(exc)

    def is_failure_result(self, value: Any) -> bool:
        on = self.policy._on
        return on.checks_results and on.matches_result(value)


class Retry(Policy):
    """Call again after a failure, waiting a jittered backoff between attempts.

    Exhausted (attempts, deadline or budget), the last exception is re-raised
    as it was; for result failures (an HTTP 503) the last result is returned.

    Args:
        attempts: calls in all, the first included (>= 1).
        backoff: the delay schedule; full jitter by default.
        on: what counts as a failure: exception classes, ``rs.errors``/``rs.results``
            predicates, or ``Callable[[Outcome], bool]``. Default: any ``Exception``
            but ``rs.Rejected``.
        deadline: seconds for the whole call, sleeps included; no attempt or sleep
            starts that would end past it. An enclosing ``Timeout`` also bounds it.
        budget: a :class:`RetryBudget`, shared with other policies.
        respect_retry_after: a ``Retry-After`` (on a response, or on an exception's
            ``.response``) replaces the backoff delay.
        max_retry_after: a longer ``Retry-After`` ends the retries at once.
        clock: time source; ``rng``: a ``random.Random`` for reproducible jitter.

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "retry"

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        on: object = None,
        deadline: float | None = None,
        budget: RetryBudget | None = None,
        respect_retry_after: bool = True,
        max_retry_after: float = 60,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.attempts = whole("attempts", attempts, minimum=1)
        if backoff is None:
            backoff = FullJitter(0.1, 10)
        elif not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a resilient backoff (FullJitter, ...), got {backoff!r}")
        self.backoff = backoff
        self._on: Predicate = compile_on(on)
        self.deadline = None if deadline is None else number("deadline", deadline, strict=True)
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget, got {budget!r}")
        self.budget = budget
        self.respect_retry_after = bool(respect_retry_after)
        self.max_retry_after = number("max_retry_after", max_retry_after)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
        self.clock = clock or SYSTEM_CLOCK
        self.rng = rng
        self._calls = Counter()
        self._retries = Counter()
        self._gave_up = Counter()
        self._recovered = Counter()

    def bind(self, inner: SyncStep) -> SyncStep:
        on = self._on
        matches_error = on.matches_error
        matches_result = on.result_matcher
        budget = self.budget
        clock = self.clock
        timed = self.deadline is not None
        count = self._calls.incr

        def retry_step(ctx: Context) -> Any:
            count()
            if budget is not None:
                budget.deposit()
            started = clock.monotonic() if timed else None
            try:
                value = inner(ctx)
            except Exception as exc:
                if not matches_error(exc):
                    raise
                outcome: Outcome[Any] = Outcome(error=exc)
            else:
                if matches_result is None or not matches_result(value):
                    return value
                outcome = Outcome(value)
            return drive_retry(RetryCall(self, ctx, started), inner, ctx, outcome)

        return retry_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        on = self._on
        matches_error = on.matches_error
        matches_result = on.result_matcher
        budget = self.budget
        clock = self.clock
        timed = self.deadline is not None
        count = self._calls.incr

        async def retry_step(ctx: Context) -> Any:
            count()
            if budget is not None:
                budget.deposit()
            started = clock.monotonic() if timed else None
            try:
                value = await inner(ctx)
            except Exception as exc:
                if not matches_error(exc):
                    raise
                outcome: Outcome[Any] = Outcome(error=exc)
            else:
                if matches_result is None or not matches_result(value):
                    return value
                outcome = Outcome(value)
            return await drive_retry_async(RetryCall(self, ctx, started), inner, ctx, outcome)

        return retry_step

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self._calls.value,
            "retries": self._retries.value,
            "recovered": self._recovered.value,
            "gave_up": self._gave_up.value,
        }
        if self.budget is not None:
            out["budget"] = self.budget.stats()
        return out

    def __repr__(self) -> str:
        return f"Retry(attempts={self.attempts}, backoff={self.backoff!r})"


# -- the retry loop: the sync driver beside its async twin ------------------------


def drive_retry(call: RetryCall, inner: SyncStep, ctx: Context, outcome: Outcome[Any]) -> Any:
    """Retry ``inner`` after its first failure ``outcome`` until it succeeds or the plan gives up."""
    while True:
        decision = call.decide(outcome)
        if isinstance(decision, GiveUp):
            return outcome.unwrap()
        sleep(call.clock, decision.delay)
        call.starting()
        try:
            value = inner(ctx)
        except Exception as exc:
            if not call.is_failure_error(exc):
                raise
            outcome = Outcome(error=exc)
            continue
        if call.is_failure_result(value):
            outcome = Outcome(value)
            continue
        call.succeeded()
        return value


async def drive_retry_async(call: RetryCall, inner: AsyncStep, ctx: Context, outcome: Outcome[Any]) -> Any:
    """The async twin of :func:`drive_retry`."""
    while True:
        decision = call.decide(outcome)
        if isinstance(decision, GiveUp):
            return outcome.unwrap()
        await asleep(call.clock, decision.delay)
        call.starting()
        try:
            value = await inner(ctx)
        except Exception as exc:
            if not call.is_failure_error(exc):
                raise
            outcome = Outcome(error=exc)
            continue
        if call.is_failure_result(value):
            outcome = Outcome(value)
            continue
        call.succeeded()
        return value
