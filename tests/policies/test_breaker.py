"""CircuitBreaker through its shells: sync and async side by side."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pybreaker import CircuitMemoryStorage

import resilient as rs
from resilient.testing import FakeClock, capture_events
from tests.conftest import gather_all, run_threads


class Boom(Exception):
    pass


def failing() -> None:
    raise Boom("down")


async def afailing() -> None:
    raise Boom("down")


async def echo(value: Any) -> Any:
    return value


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events if e["event"].startswith("breaker.") and e["event"] != "breaker.rejected"]


def test_opens_after_threshold_then_rejects_without_calling() -> None:
    """With failure_threshold=3 the third failure surfaces itself and opens; then calls are rejected uncalled."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=3, reset_timeout=30, clock=clock)
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        raise Boom

    with capture_events() as events:
        for _ in range(3):
            with pytest.raises(Boom):
                breaker.call(fn)
        assert breaker.state == "open"
        clock.advance(10)
        with pytest.raises(rs.CircuitOpenError) as info:
            breaker.call(fn)
    assert calls == 3
    assert info.value.remaining == pytest.approx(20)
    assert names(events) == ["breaker.opened"]
    assert events[0]["failures"] == 3


async def test_async_opens_after_threshold_then_rejects_without_calling() -> None:
    """The async path opens after failure_threshold failures and then rejects without calling."""
    breaker = rs.CircuitBreaker(failure_threshold=3, clock=FakeClock())
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        raise Boom

    for _ in range(3):
        with pytest.raises(Boom):
            await breaker.acall(fn)
    with pytest.raises(rs.CircuitOpenError):
        await breaker.acall(fn)
    assert calls == 3


def test_a_success_resets_the_consecutive_count() -> None:
    """A success between failures restarts the consecutive count."""
    breaker = rs.CircuitBreaker(failure_threshold=2, clock=FakeClock())
    with pytest.raises(Boom):
        breaker.call(failing)
    breaker.call(lambda: 1)
    with pytest.raises(Boom):
        breaker.call(failing)
    assert breaker.state == "closed"


def test_after_reset_timeout_one_probe_passes_and_closes() -> None:
    """At reset_timeout (inclusive) the state reads half_open, one probe passes and its success closes it."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=30, clock=clock)
    with pytest.raises(Boom):
        breaker.call(failing)
    clock.advance(29.999)
    assert breaker.state == "open"
    clock.advance(0.001)
    assert breaker.state == "half_open"
    with capture_events() as events:
        assert breaker.call(lambda: "ok") == "ok"
    assert names(events) == ["breaker.half_open", "breaker.closed"]
    assert breaker.state == "closed"


def test_failed_probe_reopens_for_another_reset_timeout() -> None:
    """A failed probe re-opens the circuit, timed from the probe's failure."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=30, clock=clock)
    with pytest.raises(Boom):
        breaker.call(failing)
    clock.advance(30)
    with capture_events() as events, pytest.raises(Boom):
        breaker.call(failing)
    assert names(events) == ["breaker.half_open", "breaker.opened"]
    with pytest.raises(rs.CircuitOpenError) as info:
        breaker.call(lambda: 1)
    assert info.value.remaining == pytest.approx(30)


def test_success_threshold_needs_that_many_probe_successes() -> None:
    """With success_threshold=2 the first probe success leaves it half-open, the second closes it."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=1, success_threshold=2, clock=clock)
    with pytest.raises(Boom):
        breaker.call(failing)
    clock.advance(1)
    breaker.call(lambda: 1)
    assert breaker.state == "half_open"
    breaker.call(lambda: 1)
    assert breaker.state == "closed"


async def test_fifty_async_callers_in_half_open_reach_the_function_once() -> None:
    """With half_open_max_calls=1, 50 concurrent asyncio callers in half-open reach the function exactly once."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=5, half_open_max_calls=1, clock=clock)
    with pytest.raises(Boom):
        await breaker.acall(afailing)
    clock.advance(5)
    release = asyncio.Event()
    entered = 0

    async def probe() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    async def caller() -> str:
        try:
            return await breaker.acall(probe)
        except rs.CircuitOpenError:
            return "rejected"

    async def release_when_all_returned(tasks: list[asyncio.Task[str]]) -> None:
        for _ in range(10_000):  # bounded: the 49 rejections need a few loop turns
            if sum(t.done() for t in tasks) >= 49:
                break
            await asyncio.sleep(0)
        release.set()

    tasks = [asyncio.ensure_future(caller()) for _ in range(50)]
    results = await gather_all(*tasks, release_when_all_returned(tasks))
    assert entered == 1
    assert results[:50].count("ok") == 1
    assert results[:50].count("rejected") == 49
    assert breaker.state == "closed"


def test_half_open_max_calls_bounds_concurrent_probes_in_threads() -> None:
    """With half_open_max_calls=3, of 10 threads arriving in half-open exactly 3 reach the function."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=1, half_open_max_calls=3, clock=clock)
    with pytest.raises(Boom):
        breaker.call(failing)
    clock.advance(1)
    cond = threading.Condition()
    entered = rejected = 0
    release = threading.Event()

    def probe() -> str:
        nonlocal entered
        with cond:
            entered += 1
            cond.notify_all()
        assert release.wait(10)
        return "ok"

    def worker(_: int) -> str:
        nonlocal rejected
        try:
            return breaker.call(probe)
        except rs.CircuitOpenError:
            with cond:
                rejected += 1
                cond.notify_all()
            return "rejected"

    def releaser() -> None:
        with cond:
            assert cond.wait_for(lambda: entered + rejected == 10, timeout=10)
        release.set()

    helper = threading.Thread(target=releaser)
    helper.start()
    results = run_threads(10, worker)
    helper.join()
    assert (results.count("ok"), results.count("rejected")) == (3, 7)


async def test_a_cancelled_probe_frees_its_place() -> None:
    """A probe cancelled mid-call decides nothing and lets the next caller probe."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=1, reset_timeout=1, clock=clock)
    with pytest.raises(Boom):
        await breaker.acall(afailing)
    clock.advance(1)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(breaker.acall(hang))
    try:
        await started.wait()
        with pytest.raises(rs.CircuitOpenError):
            await breaker.acall(hang)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert breaker.state == "half_open"
    assert await breaker.acall(echo, "ok") == "ok"
    assert breaker.state == "closed"


async def test_async_calls_are_not_serialized() -> None:
    """Two async calls through a closed breaker run at the same time (no lock across the call)."""
    breaker = rs.CircuitBreaker()
    both_in = asyncio.Event()
    inside = 0

    async def fn() -> int:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_in.set()
        await both_in.wait()
        return inside

    assert await gather_all(breaker.acall(fn), breaker.acall(fn)) == [2, 2]


def test_threads_are_not_serialized() -> None:
    """Two threads are inside the wrapped function at once (pybreaker's call would serialize them)."""
    breaker = rs.CircuitBreaker()
    barrier = threading.Barrier(2, timeout=10)
    assert run_threads(2, lambda i: breaker.call(barrier.wait)) in ([0, 1], [1, 0])


def test_on_selects_failures_and_other_errors_count_as_success() -> None:
    """Only errors matched by on= count; another exception passes through and resets the count."""
    breaker = rs.CircuitBreaker(failure_threshold=2, on=Boom, clock=FakeClock())
    empty: dict[str, int] = {}
    with pytest.raises(Boom):
        breaker.call(failing)
    with pytest.raises(KeyError):
        breaker.call(lambda: empty["x"])
    with pytest.raises(Boom):
        breaker.call(failing)
    assert breaker.state == "closed"


def test_result_predicates_count_failed_results() -> None:
    """A returned value matched by rs.results(...) counts as a failure and is still returned."""
    breaker = rs.CircuitBreaker(failure_threshold=2, on=rs.results(lambda v: v == 503), clock=FakeClock())
    assert breaker.call(lambda: 503) == 503
    assert breaker.call(lambda: 503) == 503
    assert breaker.state == "open"


def test_failure_rate_mode_trips_after_minimum_calls_and_forgets_old_outcomes() -> None:
    """Rate mode: no trip below minimum_calls; outcomes older than window are forgotten; trips at the rate."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_rate=0.5, window=10, minimum_calls=4, clock=clock)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(failing)
    assert breaker.state == "closed"  # 3 failures, below minimum_calls
    clock.advance(11)  # they fall out of the window
    breaker.call(lambda: 1)
    breaker.call(lambda: 1)
    with pytest.raises(Boom):
        breaker.call(failing)
    assert breaker.state == "closed"  # 1/3
    with capture_events() as events, pytest.raises(Boom):
        breaker.call(failing)  # 2/4 = 0.5
    assert breaker.state == "open"
    opened = next(e for e in events if e["event"] == "breaker.opened")
    assert (opened["calls"], opened["failure_rate"]) == (4, 0.5)


def test_breakers_sharing_a_storage_share_the_state() -> None:
    """Two breakers on one pybreaker storage see each other's open state."""
    storage = CircuitMemoryStorage("closed")
    clock = FakeClock()
    a = rs.CircuitBreaker(failure_threshold=1, storage=storage, clock=clock)
    b = rs.CircuitBreaker(failure_threshold=1, storage=storage, clock=clock)
    with pytest.raises(Boom):
        a.call(failing)
    with pytest.raises(rs.CircuitOpenError):
        b.call(lambda: 1)
    assert b.storage is storage


def test_reset_closes_it() -> None:
    """reset() closes an open breaker at once."""
    breaker = rs.CircuitBreaker(failure_threshold=1, clock=FakeClock())
    with pytest.raises(Boom):
        breaker.call(failing)
    breaker.reset()
    assert breaker.call(lambda: 1) == 1


def test_decorates_sync_and_async_with_one_state() -> None:
    """One breaker decorating a sync and an async function shares its state between them."""
    breaker = rs.CircuitBreaker(failure_threshold=1, clock=FakeClock())

    @breaker
    def sync_fn() -> None:
        raise Boom

    @breaker
    async def async_fn() -> int:
        return 1

    with pytest.raises(Boom):
        sync_fn()

    async def main() -> int:
        return await async_fn()

    with pytest.raises(rs.CircuitOpenError):
        asyncio.run(main())


def test_stats_and_repr() -> None:
    """stats() counts rejections and transitions; repr shows the mode."""
    breaker = rs.CircuitBreaker(failure_threshold=1, clock=FakeClock(), name="db")
    with pytest.raises(Boom):
        breaker.call(failing)
    with pytest.raises(rs.CircuitOpenError):
        breaker.call(failing)
    stats = breaker.stats()
    assert (stats["state"], stats["opened"], stats["rejected"], stats["failures"]) == ("open", 1, 1, 1)
    assert "failure_threshold=1" in repr(breaker)
    rate = rs.CircuitBreaker(failure_rate=0.5, window=5)
    assert rate.stats()["window_calls"] == 0
    assert "failure_rate=0.5" in repr(rate)


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold"),
        ({"reset_timeout": -1}, ValueError, "reset_timeout"),
        ({"failure_rate": 0.5}, ValueError, "window"),
        ({"storage": "redis://x"}, TypeError, "storage"),
        ({"name": 3}, TypeError, "name"),
        ({"clock": object()}, TypeError, "clock"),
        ({"on": 3}, TypeError, "on"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], error: type[Exception], param: str) -> None:
    """A bad option raises at construction, naming the parameter."""
    with pytest.raises(error, match=param):
        rs.CircuitBreaker(**kwargs)


def test_threads_hammering_a_flapping_breaker_leave_it_consistent() -> None:
    """8 threads x 200 mixed calls through a flapping breaker raise only the call's error or CircuitOpenError."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(failure_threshold=3, reset_timeout=0.5, half_open_max_calls=2, clock=clock)

    def worker(i: int) -> tuple[int, int, int]:
        ok = failed = rejected = 0
        for n in range(200):
            clock.advance(0.01)
            try:
                breaker.call(failing if (n + i) % 3 else (lambda: None))
                ok += 1
            except Boom:
                failed += 1
            except rs.CircuitOpenError:
                rejected += 1
        return ok, failed, rejected

    results = run_threads(8, worker)
    assert sum(sum(r) for r in results) == 1600
    assert sum(r[2] for r in results) > 0
    assert breaker._probes == 0  # every probe admitted was accounted for
    assert breaker.state in {"closed", "open", "half_open"}
