"""SingleFlight: one execution per key among concurrent threads and tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient as rs
from tests.conftest import gather_all, run_threads


async def settle(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel whatever is still running and wait for it, so no task outlives the test."""
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_thousand_tasks_share_one_execution() -> None:
    """1,000 concurrent tasks on one key cause one execution and all get its value."""
    flight = rs.SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "value"

    async def caller() -> str:
        return await flight.ado("k", work)

    tasks = [asyncio.ensure_future(caller()) for _ in range(1000)]
    try:
        for _ in range(10):
            await asyncio.sleep(0)
        assert flight.stats()["joined"] == 999
        release.set()
        results = await gather_all(*tasks)
    finally:
        await settle(tasks)
    assert results == ["value"] * 1000
    assert calls == 1
    assert flight.in_flight == 0


def test_fifty_threads_share_one_execution() -> None:
    """50 concurrent threads on one key cause one execution and all get its value."""
    flight = rs.SingleFlight()
    calls = 0
    all_joined = threading.Event()
    joined = 0
    lock = threading.Lock()

    def on_join() -> None:
        nonlocal joined
        with lock:
            joined += 1
            if joined == 49:
                all_joined.set()

    def work() -> int:
        nonlocal calls
        calls += 1
        assert all_joined.wait(10)
        return 42

    results = run_threads(50, lambda i: flight.do("k", work, on_join=on_join))
    assert results == [42] * 50
    assert calls == 1
    assert flight.in_flight == 0


def test_thread_failure_is_shared_and_not_remembered() -> None:
    """Waiting threads receive the executing call's exception, and the next call runs afresh."""
    flight = rs.SingleFlight()
    started = threading.Event()
    joined = threading.Event()
    outcomes: list[object] = []

    def failing() -> int:
        started.set()
        assert joined.wait(10)
        raise ValueError("boom")

    def waiter(i: int) -> object:
        if i == 0:
            return flight.do("k", failing)
        assert started.wait(10)
        return flight.do("k", lambda: 0, on_join=joined.set)

    outcomes = run_threads(2, waiter)
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert flight.do("k", lambda: 7) == 7


async def test_task_failure_is_shared_and_not_remembered() -> None:
    """Waiting tasks receive the shared exception, and a later call executes again."""
    flight = rs.SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise ValueError("boom")

    tasks = [asyncio.ensure_future(flight.ado("k", failing)) for _ in range(5)]
    try:
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await settle(tasks)
    assert all(isinstance(r, ValueError) for r in results)

    async def ok() -> int:
        return 1

    assert await flight.ado("k", ok) == 1
    assert flight.in_flight == 0


async def test_cancelling_one_of_ten_waiters_keeps_the_shared_work() -> None:
    """Cancelling 1 of 10 waiters does not cancel the work: the other 9 get the value, one execution."""
    flight = rs.SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "v"

    tasks = [asyncio.ensure_future(flight.ado("k", work)) for _ in range(10)]
    try:
        await asyncio.sleep(0)
        tasks[0].cancel()
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await settle(tasks)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == ["v"] * 9
    assert calls == 1
    assert flight.in_flight == 0


async def test_work_is_cancelled_when_every_waiter_leaves() -> None:
    """When all waiters are cancelled the shared work is cancelled and its entry removed."""
    flight = rs.SingleFlight()
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    tasks = [asyncio.ensure_future(flight.ado("k", work)) for _ in range(3)]
    try:
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await settle(tasks)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    await asyncio.wait_for(cancelled.wait(), 5)
    assert flight.in_flight == 0


async def test_forget_starts_a_new_execution_while_the_old_one_finishes() -> None:
    """After forget(key) the next caller runs anew, and the old execution still serves its waiters."""
    flight = rs.SingleFlight()
    first_release = asyncio.Event()
    runs: list[int] = []

    async def first() -> int:
        runs.append(1)
        await first_release.wait()
        return 1

    async def second() -> int:
        runs.append(2)
        return 2

    old = asyncio.ensure_future(flight.ado("k", first))
    try:
        await asyncio.sleep(0)
        flight.forget("k")
        assert await flight.ado("k", second) == 2
        first_release.set()
        assert await old == 1
    finally:
        await gather_all(old)
    assert runs == [1, 2]


def test_forget_in_threads_starts_a_new_execution() -> None:
    """forget(key) in threads lets the next caller execute while the first is still running."""
    flight = rs.SingleFlight()
    inside = threading.Event()
    release = threading.Event()

    def slow() -> str:
        inside.set()
        assert release.wait(10)
        return "old"

    def caller(i: int) -> str:
        if i == 0:
            return flight.do("k", slow)
        assert inside.wait(10)
        flight.forget("k")
        value = flight.do("k", lambda: "new")
        release.set()
        return value

    assert run_threads(2, caller) == ["old", "new"]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=12),
    cancel=st.lists(st.booleans(), min_size=12, max_size=12),
    when=st.lists(st.integers(min_value=0, max_value=3), min_size=12, max_size=12),
    fail=st.booleans(),
)
def test_random_cancellations_leave_no_entry_behind(n: int, cancel: list[bool], when: list[int], fail: bool) -> None:
    """Whatever subset of waiters is cancelled, and whenever, no in-flight entry survives the calls."""

    async def scenario() -> None:
        flight = rs.SingleFlight()
        release = asyncio.Event()
        executions = 0

        async def work() -> str:
            nonlocal executions
            executions += 1
            await release.wait()
            if fail:
                raise RuntimeError("origin failed")
            return "v"

        async def caller(i: int) -> str:
            for _ in range(when[i]):
                await asyncio.sleep(0)
            return await flight.ado("k", work)

        tasks = [asyncio.ensure_future(caller(i)) for i in range(n)]
        try:
            for step in range(4):
                for i in range(n):
                    if cancel[i] and when[i] == step:
                        tasks[i].cancel()
                await asyncio.sleep(0)
            release.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await settle(tasks)
        for _ in range(3):
            await asyncio.sleep(0)
        assert flight.in_flight == 0
        for i, r in enumerate(results):
            if not cancel[i]:
                assert isinstance(r, RuntimeError) if fail else r == "v"
        assert executions <= n

    asyncio.run(scenario())


def test_stats_count_executions_and_joins() -> None:
    """stats() counts executions started; a call after another finished is a new execution."""
    flight = rs.SingleFlight()
    assert flight.do("a", lambda: 1) == 1
    assert flight.do("a", lambda: 2) == 2
    assert flight.stats() == {"executions": 2, "joined": 0}
    assert "in_flight=0" in repr(flight)


@pytest.mark.parametrize("key", ["k", ("tuple", 1), 5])
def test_any_hashable_key(key: object) -> None:
    """Keys may be any hashable value."""
    assert rs.SingleFlight().do(key, lambda: "ok") == "ok"
