"""Retry: sync and async cases side by side."""

from __future__ import annotations

import asyncio
import inspect
import random
from typing import Any

import httpx
import pytest

import resilient as rs
from resilient.testing import FakeClock, capture_events, no_waiting


class Flaky:
    """Fails `failures` times, then returns `value`."""

    def __init__(self, failures: int, exc: type[Exception] = ConnectionError, value: object = "ok") -> None:
        self.failures = failures
        self.exc = exc
        self.value = value
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return self.value

    async def acall(self, *args: object, **kwargs: object) -> object:
        await asyncio.sleep(0)
        return self(*args, **kwargs)


def test_one_object_decorates_sync_and_async_keeping_signatures() -> None:
    """The same Retry decorates a sync and an async function; both retry; names and signatures stay."""
    clock = FakeClock()
    retry = rs.Retry(attempts=3, clock=clock)
    sync_flaky, async_flaky = Flaky(2), Flaky(2)

    @retry
    def fetch(product_id: int, *, region: str = "eu") -> object:
        """Fetch one."""
        return sync_flaky(product_id, region)

    @retry
    async def afetch(product_id: int, *, region: str = "eu") -> object:
        return await async_flaky.acall(product_id, region)

    assert fetch(1) == "ok"
    assert asyncio.run(afetch(1)) == "ok"
    assert (sync_flaky.calls, async_flaky.calls) == (3, 3)
    assert fetch.__name__ == "fetch" and afetch.__name__ == "afetch"
    assert fetch.__doc__ == "Fetch one."
    assert str(inspect.signature(fetch)) == "(product_id: 'int', *, region: 'str' = 'eu') -> 'object'"
    assert inspect.signature(afetch) == inspect.signature(afetch.__wrapped__)  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(afetch)
    assert retry.stats()["retries"] == 4


def test_exhausted_reraises_the_original_exception() -> None:
    """When attempts run out, the last exception itself is re-raised, not wrapped."""
    flaky = Flaky(10)
    with no_waiting(), pytest.raises(ConnectionError, match="failure 3") as info:
        rs.Retry(attempts=3).call(flaky)
    assert flaky.calls == 3
    assert info.value.__context__ is None  # not chained to the earlier failures


async def test_exhausted_reraises_the_original_exception_async() -> None:
    """The async path re-raises the last exception as it was."""
    flaky = Flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        await rs.Retry(attempts=3, clock=FakeClock()).acall(flaky.acall)
    assert flaky.calls == 3


def test_result_failures_return_the_last_result() -> None:
    """A result judged a failure is retried; exhausted, the last result is returned."""
    seen = iter([503, 503, 503, 200])
    retry = rs.Retry(attempts=3, on=rs.results(lambda status: status >= 500), clock=FakeClock())
    assert retry.call(lambda: next(seen)) == 503
    seen2 = iter([503, 200])
    assert retry.call(lambda: next(seen2)) == 200


def test_only_matching_errors_are_retried() -> None:
    """An exception outside `on` surfaces at once."""
    flaky = Flaky(5, exc=KeyError)
    with pytest.raises(KeyError):
        rs.Retry(attempts=3, on=ConnectionError, clock=FakeClock()).call(flaky)
    assert flaky.calls == 1


def test_rejections_are_not_retried_by_default() -> None:
    """rs.Rejected (an open circuit, a full bulkhead) is never retried by default."""
    calls = 0

    def rejected() -> None:
        nonlocal calls
        calls += 1
        raise rs.CircuitOpenError(remaining=3)

    with pytest.raises(rs.CircuitOpenError):
        rs.Retry(attempts=5, clock=FakeClock()).call(rejected)
    assert calls == 1


async def test_cancellation_is_never_retried() -> None:
    """A CancelledError (a BaseException) passes straight through even with on=BaseException."""
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await rs.Retry(attempts=5, on=BaseException, clock=FakeClock()).acall(cancelled)
    assert calls == 1


def test_predicates_combine_with_or() -> None:
    """errors(...) | results(...) retries both kinds of failure."""
    seq = iter([ValueError("x"), None, "done"])

    def fn() -> object:
        item = next(seq)
        if isinstance(item, Exception):
            raise item
        return item

    retry = rs.Retry(attempts=3, on=rs.errors(ValueError) | rs.results(lambda v: v is None), clock=FakeClock())
    assert retry.call(fn) == "done"


def test_outcome_predicate_callable() -> None:
    """A plain Callable[[Outcome], bool] works as on=."""
    seen: list[rs.Outcome[object]] = []

    def on(outcome: rs.Outcome[object]) -> bool:
        seen.append(outcome)
        return not outcome.ok or outcome.value == "again"

    seq = iter(["again", "fine"])
    assert rs.Retry(on=on, clock=FakeClock()).call(lambda: next(seq)) == "fine"
    assert [o.value for o in seen] == ["again", "fine"]


def test_backoff_delays_are_slept_on_the_clock() -> None:
    """The waits between attempts are the backoff's delays, in order."""
    clock = FakeClock()
    retry = rs.Retry(attempts=4, backoff=rs.Exponential(1, 10), clock=clock)
    with capture_events() as events, pytest.raises(ConnectionError):
        retry.call(Flaky(10))
    assert clock.monotonic() == pytest.approx(1 + 2 + 4)
    assert [e["delay"] for e in events if e["event"] == "retry.attempt"] == [1, 2, 4]
    gave_up = [e for e in events if e["event"] == "retry.gave_up"]
    assert gave_up[0]["reason"] == "attempts" and gave_up[0]["operation"].endswith("Flaky")


def test_seeded_rng_makes_retries_reproducible() -> None:
    """With rng=Random(seed) two runs sleep the same total."""
    totals = []
    for _ in range(2):
        clock = FakeClock()
        with pytest.raises(ConnectionError):
            rs.Retry(attempts=5, clock=clock, rng=random.Random(9)).call(Flaky(10))
        totals.append(clock.monotonic())
    assert totals[0] == totals[1] > 0


def test_deadline_bounds_the_whole_call() -> None:
    """No sleep is begun that would end past the deadline."""
    clock = FakeClock()
    retry = rs.Retry(attempts=10, backoff=rs.Constant(4), deadline=10, clock=clock)
    flaky = Flaky(100)
    with capture_events() as events, pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.calls == 3  # t=0, t=4, t=8; a third sleep would end at 12
    assert clock.monotonic() == 8
    assert events[-1]["reason"] == "deadline"


def test_slow_attempts_count_against_the_deadline() -> None:
    """An attempt that took 6 s is not started again with 4 s left."""
    clock = FakeClock()
    calls = 0

    def slow() -> None:
        nonlocal calls
        calls += 1
        clock.advance(6)
        raise ConnectionError

    with pytest.raises(ConnectionError):
        rs.Retry(attempts=5, backoff=rs.Constant(0.5), deadline=10, clock=clock).call(slow)
    assert calls == 1


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://127.0.0.1/x"))


def test_retry_after_seconds_replaces_backoff() -> None:
    """A 503 with Retry-After: 7 waits 7 s instead of the backoff delay."""
    clock = FakeClock()
    seq = iter([response(503, **{"Retry-After": "7"}), response(200)])
    retry = rs.Retry(on=rs.results(lambda r: r.status_code == 503), backoff=rs.Constant(0.1), clock=clock)
    assert retry.call(lambda: next(seq)).status_code == 200
    assert clock.monotonic() == 7


def test_retry_after_http_date_on_an_exception() -> None:
    """An exception carrying a response with an HTTP-date Retry-After waits until that date."""
    clock = FakeClock(wall=1445412450.0)  # 07:27:30 GMT

    class Throttled(Exception):
        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.response = response(429, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})

    flaky = Flaky(1, exc=Throttled)
    assert rs.Retry(clock=clock, backoff=rs.Constant(0.1)).call(flaky) == "ok"
    assert clock.monotonic() == 30


def test_retry_after_too_long_gives_up_at_once() -> None:
    """A Retry-After longer than max_retry_after ends the retries without sleeping."""
    clock = FakeClock()
    seq = iter([response(503, **{"Retry-After": "120"}), response(200)])
    retry = rs.Retry(on=rs.results(lambda r: r.status_code == 503), max_retry_after=60, clock=clock)
    assert retry.call(lambda: next(seq)).status_code == 503
    assert clock.monotonic() == 0


def test_retry_after_ignored_when_disabled() -> None:
    """respect_retry_after=False keeps the backoff delay."""
    clock = FakeClock()
    seq = iter([response(503, **{"Retry-After": "120"}), response(200)])
    retry = rs.Retry(
        on=rs.results(lambda r: r.status_code == 503),
        backoff=rs.Constant(1),
        respect_retry_after=False,
        clock=clock,
    )
    assert retry.call(lambda: next(seq)).status_code == 200
    assert clock.monotonic() == 1


def always_fails() -> None:
    raise ConnectionError("down")


def test_retry_storm_with_and_without_budget() -> None:
    """500 calls x 3 attempts hit a dead dependency 1,500 times; a 10 % budget caps it at 650."""
    clock = FakeClock()
    counter = {"n": 0}

    def dead() -> None:
        counter["n"] += 1
        raise ConnectionError("down")

    plain = rs.Retry(attempts=3, backoff=rs.Constant(0), clock=clock)
    for _ in range(500):
        with pytest.raises(ConnectionError):
            plain.call(dead)
    without_budget = counter["n"]

    counter["n"] = 0
    budget = rs.RetryBudget(ratio=0.1, min_per_second=10, window=10, clock=clock)
    budgeted = rs.Retry(attempts=3, backoff=rs.Constant(0), budget=budget, clock=clock)
    with capture_events() as events:
        for _ in range(500):
            with pytest.raises(ConnectionError):
                budgeted.call(dead)
    with_budget = counter["n"]

    print(f"retry storm: {without_budget} calls without a budget, {with_budget} with RetryBudget(ratio=0.1)")
    assert without_budget == 1_500
    assert with_budget <= 500 * 1.1 + 10 * 10
    assert with_budget > 500  # the budget still allowed some retries
    assert any(e["event"] == "retry.budget_exhausted" for e in events)
    assert budget.stats()["exhausted"] > 0


async def test_budget_is_shared_by_sync_and_async_policies() -> None:
    """Two Retry policies, one sync and one async, draw on one budget."""
    clock = FakeClock()
    budget = rs.RetryBudget(ratio=0.0, min_per_second=0.5, window=10, clock=clock)  # 5 retries in all
    r1 = rs.Retry(attempts=10, backoff=rs.Constant(0), budget=budget, clock=clock)
    r2 = rs.Retry(attempts=10, backoff=rs.Constant(0), budget=budget, clock=clock)
    dead = Flaky(1_000)
    with pytest.raises(ConnectionError):
        r1.call(dead)
    with pytest.raises(ConnectionError):
        await r2.acall(dead.acall)
    assert dead.calls == 2 + 5


def test_retry_is_thread_safe_on_shared_budget() -> None:
    """Threads sharing a Retry and budget never spend more retries than allowed."""
    from tests.conftest import run_threads

    clock = FakeClock()
    budget = rs.RetryBudget(ratio=0.0, min_per_second=2, window=10, clock=clock)  # 20 retries
    retry = rs.Retry(attempts=3, backoff=rs.Constant(0), budget=budget, clock=clock)
    lock_free_calls = []

    def dead() -> None:
        lock_free_calls.append(1)
        raise ConnectionError

    def worker(i: int) -> None:
        for _ in range(10):
            try:
                retry.call(dead)
            except ConnectionError:
                pass

    run_threads(8, worker)
    assert len(lock_free_calls) == 80 + 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts.*0"),
        ({"attempts": 1.5}, "attempts"),
        ({"deadline": 0}, "deadline.*0"),
        ({"max_retry_after": -1}, "max_retry_after.*-1"),
        ({"backoff": 3}, "backoff"),
        ({"on": "ValueError"}, "on"),
        ({"budget": object()}, "budget"),
        ({"clock": object()}, "clock"),
    ],
)
def test_bad_arguments_name_parameter(kwargs: dict[str, object], message: str) -> None:
    """Bad Retry options fail at construction, naming the parameter and value."""
    with pytest.raises((ValueError, TypeError), match=message):
        rs.Retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ratio": 1001}, "ratio.*1001"), ({"ratio": -1}, "ratio.*-1"), ({"window": 0}, "window.*0")],
)
def test_bad_budget_arguments(kwargs: dict[str, Any], message: str) -> None:
    """A RetryBudget ratio outside [0, 1000] raises ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        rs.RetryBudget(**kwargs)


def test_attempt_number_is_visible_in_context() -> None:
    """Context.attempt counts retries as the call proceeds."""
    seen: list[int] = []

    class Spy(rs.Policy):
        def bind(self, inner):
            def step(ctx: rs.Context) -> object:
                seen.append(ctx.attempt)
                return inner(ctx)

            return step

    flaky = Flaky(2)
    rs.pipeline(rs.Retry(clock=FakeClock()), Spy()).call(flaky)
    assert seen == [0, 1, 2]
