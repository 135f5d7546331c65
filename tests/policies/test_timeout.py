"""Timeout: async cancellation, and the deadline handed to inner policies."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import resilient as rs
from resilient.core.context import Context, current_deadline
from resilient.testing import FakeClock, capture_events


async def test_cancels_a_two_second_call_well_within_one_second() -> None:
    """Timeout(0.1) on an async call that would take 2 s raises TimeoutExceeded within 1 s and cancels the work."""
    never = asyncio.Event()
    cancelled = False

    async def slow() -> str:
        nonlocal cancelled
        try:
            await asyncio.wait_for(never.wait(), 2)  # would take 2 s
        except asyncio.CancelledError:
            cancelled = True
            raise
        return "late"

    started = time.monotonic()
    with capture_events() as events, pytest.raises(rs.TimeoutExceeded) as info:
        await rs.Timeout(0.1).acall(slow)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert cancelled
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert [e["event"] for e in events if e["event"].startswith("timeout.")] == ["timeout.exceeded"]


async def test_an_error_of_the_call_is_not_turned_into_a_timeout() -> None:
    """A TimeoutError raised by the call itself, before the deadline, passes through unchanged."""

    async def fn() -> None:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own") as info:
        await rs.Timeout(10).acall(fn)
    assert not isinstance(info.value, rs.TimeoutExceeded)


def test_sync_calls_see_the_deadline_and_it_is_restored_after() -> None:
    """Inside the call ctx.deadline and current_deadline hold now + seconds; afterwards both are restored."""
    clock = FakeClock(start=100)
    seen: list[Any] = []

    def fn() -> int:
        seen.append(current_deadline.get())
        return 1

    assert rs.Timeout(5, clock=clock).call(fn) == 1
    assert seen == [105.0]
    assert current_deadline.get() is None


async def test_async_calls_see_the_deadline() -> None:
    """An async call sees the deadline in the context variable."""
    clock = FakeClock(start=100)

    async def fn() -> float | None:
        return current_deadline.get()

    assert await rs.Timeout(5, clock=clock).acall(fn) == 105.0
    assert current_deadline.get() is None


def test_an_inner_retry_stops_at_the_outer_deadline() -> None:
    """Retry inside a Timeout makes no attempt that would end past the Timeout's deadline."""
    clock = FakeClock()
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        clock.advance(1)
        raise ConnectionError

    policy = rs.pipeline(rs.Timeout(3.5, clock=clock), rs.Retry(attempts=10, backoff=rs.Constant(0.5), clock=clock))
    with pytest.raises(ConnectionError):
        policy.call(fn)
    assert calls == 2  # t=1 fail, sleep to 1.5, t=2.5 fail; a third attempt would end at 4 > 3.5


def test_a_nested_timeout_keeps_the_sooner_deadline() -> None:
    """An inner Timeout longer than the outer one keeps the outer deadline."""
    clock = FakeClock()
    seen: list[Any] = []
    policy = rs.pipeline(rs.Timeout(1, clock=clock), rs.Timeout(10, clock=clock))
    policy.call(lambda: seen.append(current_deadline.get()))
    assert seen == [1.0]


def test_an_expired_outer_deadline_raises_at_once() -> None:
    """A call that starts past an enclosing deadline raises TimeoutExceeded without calling."""
    clock = FakeClock(start=10)
    token = current_deadline.set(5.0)
    try:
        with pytest.raises(rs.TimeoutExceeded):
            rs.Timeout(1, clock=clock).call(pytest.fail)
    finally:
        current_deadline.reset(token)


def test_per_attempt_timeout_inside_retry_does_not_limit_the_retries() -> None:
    """Timeout inside Retry bounds each attempt; the deadline is restored so Retry keeps retrying."""
    clock = FakeClock()
    ctx_deadlines: list[Any] = []

    def fn() -> None:
        clock.advance(1)
        raise ConnectionError

    retry = rs.Retry(attempts=4, backoff=rs.Constant(0), clock=clock)
    policy = rs.pipeline(retry, rs.Timeout(1.5, clock=clock))
    ctx = Context("op", fn)
    with pytest.raises(ConnectionError):
        policy.run(ctx)
    ctx_deadlines.append(ctx.deadline)
    assert retry.stats()["retries"] == 3
    assert ctx_deadlines == [None]


def test_bad_seconds() -> None:
    """A non-positive timeout raises ValueError naming seconds."""
    with pytest.raises(ValueError, match="seconds"):
        rs.Timeout(0)


async def test_a_timeout_beyond_the_watchdogs_reach_still_cancels_on_time() -> None:
    """A deadline first seen by the watchdog's tick (not armed at the start) cancels at the deadline."""
    never = asyncio.Event()
    started = time.monotonic()
    with pytest.raises(rs.TimeoutExceeded):
        await rs.Timeout(0.6).acall(lambda: asyncio.wait_for(never.wait(), 5))
    elapsed = time.monotonic() - started
    assert 0.55 <= elapsed < 3.0


async def test_nested_timeouts_each_raise_their_own() -> None:
    """The inner, shorter Timeout raises; the outer one sees that error, not a cancellation."""
    never = asyncio.Event()
    outer, inner = rs.Timeout(5), rs.Timeout(0.05)

    async def call() -> Any:
        return await inner.acall(never.wait)

    with pytest.raises(rs.TimeoutExceeded, match=r"0\.05"):
        await outer.acall(call)
    assert outer.stats()["exceeded"] == 0
    assert inner.stats()["exceeded"] == 1


async def test_a_cancelled_caller_is_cancelled_not_timed_out() -> None:
    """Cancelling the task that runs inside a Timeout gives CancelledError, not TimeoutExceeded."""
    never = asyncio.Event()
    started = asyncio.Event()

    async def call() -> Any:
        started.set()
        return await never.wait()

    task = asyncio.ensure_future(rs.Timeout(5).acall(call))
    try:
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_many_calls_finish_without_timers_left_behind() -> None:
    """Calls that end before their deadline leave no watch in flight."""
    from resilient.policies import timeout as module

    timeout = rs.Timeout(30)

    async def quick() -> int:
        await asyncio.sleep(0)
        return 1

    assert sum(await asyncio.gather(*[timeout.acall(quick) for _ in range(200)])) == 200
    dog = module._last
    assert dog is not None
    assert not dog.watches


async def test_a_far_deadline_armed_by_the_tick_still_cancels_exactly() -> None:
    """A call whose deadline was far at its start is armed by a look once it comes near."""
    from resilient.policies import timeout as module

    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(rs.Timeout(30).acall(hang))
    try:
        await asyncio.wait_for(started.wait(), 5)
        dog = module._last
        assert dog is not None
        (watch,) = [w for w in dog.watches.values() if w[module._TASK] is task]
        watch[module._AT] = asyncio.get_running_loop().time()  # its deadline is now
        dog.look()
        assert watch[module._HANDLE] is not None
        with pytest.raises(rs.TimeoutExceeded):
            await asyncio.wait_for(task, 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
