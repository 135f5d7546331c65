"""Bulkhead: threads and asyncio tasks side by side."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import resilient as rs
from tests.conftest import gather_all, run_threads


async def echo(value: Any) -> Any:
    return value


class Gate:
    """Counts callers that ran or were rejected, and holds the runners until opened."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ran = 0
        self.rejected = 0
        self.open = threading.Event()

    def note(self, what: str) -> None:
        with self.cond:
            setattr(self, what, getattr(self, what) + 1)
            self.cond.notify_all()

    def wait_for(self, ran: int, rejected: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: (self.ran, self.rejected) == (ran, rejected), timeout=10), (
                self.ran,
                self.rejected,
            )


def test_twenty_blocked_threads_five_run_fifteen_rejected() -> None:
    """Bulkhead(5): of 20 threads calling a blocked function, exactly 5 run and 15 get BulkheadFullError."""
    bulkhead = rs.Bulkhead(5)
    gate = Gate()

    def work() -> str:
        gate.note("ran")
        assert gate.open.wait(10)
        return "ran"

    def caller(_: int) -> str:
        try:
            return bulkhead.call(work)
        except rs.BulkheadFullError:
            gate.note("rejected")
            return "rejected"

    def opener() -> None:
        gate.wait_for(5, 15)
        gate.open.set()

    helper = threading.Thread(target=opener)
    helper.start()
    results = run_threads(20, caller)
    helper.join()
    assert (results.count("ran"), results.count("rejected")) == (5, 15)
    assert bulkhead.stats()["active"] == 0


async def test_twenty_blocked_tasks_five_run_fifteen_rejected() -> None:
    """Bulkhead(5): of 20 tasks awaiting a blocked function, exactly 5 run and 15 get BulkheadFullError."""
    bulkhead = rs.Bulkhead(5)
    release = asyncio.Event()
    ran = 0

    async def work() -> str:
        nonlocal ran
        ran += 1
        await release.wait()
        return "ran"

    async def caller() -> str:
        try:
            return await bulkhead.acall(work)
        except rs.BulkheadFullError:
            return "rejected"

    tasks = [asyncio.ensure_future(caller()) for _ in range(20)]

    async def opener() -> None:
        for _ in range(10_000):
            if sum(t.done() for t in tasks) == 15 and ran == 5:
                break
            await asyncio.sleep(0)
        release.set()

    results = await gather_all(*tasks, opener())
    assert (results.count("ran"), results.count("rejected")) == (5, 15)
    assert bulkhead.stats()["rejected"] == 15


def test_queued_threads_run_when_a_slot_frees() -> None:
    """With max_queue, callers beyond the limit wait and run, in order, as slots free."""
    bulkhead = rs.Bulkhead(1, max_queue=2)
    first_in = threading.Event()
    release = threading.Event()
    order: list[int] = []

    def work(i: int) -> int:
        if i == 0:
            first_in.set()
            assert release.wait(10)
        order.append(i)
        return i

    def caller(i: int) -> int:
        if i > 0:
            assert first_in.wait(10)
        return bulkhead.call(work, i)

    queued = threading.Semaphore(0)

    def listener(event: dict[str, Any]) -> None:
        if event["event"] == "bulkhead.queued":
            queued.release()

    def opener() -> None:
        assert queued.acquire(timeout=10)
        assert queued.acquire(timeout=10)
        release.set()

    helper = threading.Thread(target=opener)
    helper.start()
    rs.add_listener(listener)
    try:
        results = run_threads(3, caller)
    finally:
        rs.remove_listener(listener)
        release.set()
        helper.join()
    assert sorted(results) == [0, 1, 2]
    assert order[0] == 0
    assert bulkhead.stats() == {
        "active": 0,
        "in_use": 0,
        "max_concurrent": bulkhead.max_concurrent,
        "queued": 0,
        "rejected": 0,
        "rejected_full": 0,
        "rejected_queue_timeout": 0,
        "waited": 2,
    }


async def test_queued_tasks_run_when_a_slot_frees() -> None:
    """Queued tasks run when a slot frees; one beyond the queue is rejected at once."""
    bulkhead = rs.Bulkhead(1, max_queue=1)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def quick() -> str:
        return "quick"

    first = asyncio.ensure_future(bulkhead.acall(slow))
    queued = asyncio.ensure_future(bulkhead.acall(quick))
    try:
        await asyncio.sleep(0)
        assert bulkhead.stats()["queued"] == 1
        with pytest.raises(rs.BulkheadFullError):
            await bulkhead.acall(quick)
        release.set()
        assert await gather_all(first, queued) == ["slow", "quick"]
    finally:
        release.set()
        await asyncio.gather(first, queued, return_exceptions=True)


async def test_queue_timeout_rejects_a_waiting_task() -> None:
    """A queued task that waits longer than queue_timeout gets BulkheadFullError."""
    bulkhead = rs.Bulkhead(1, max_queue=1, queue_timeout=0.01)
    release = asyncio.Event()
    holder = asyncio.ensure_future(bulkhead.acall(release.wait))
    try:
        await asyncio.sleep(0)
        with pytest.raises(rs.BulkheadFullError):
            await bulkhead.acall(release.wait)
    finally:
        release.set()
        await gather_all(holder)
    assert bulkhead.stats()["queued"] == 0


def test_queue_timeout_rejects_a_waiting_thread() -> None:
    """A queued thread that waits longer than queue_timeout gets BulkheadFullError."""
    bulkhead = rs.Bulkhead(1, max_queue=1, queue_timeout=0.01)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        holding.set()
        assert release.wait(10)

    holder = threading.Thread(target=bulkhead.call, args=(hold,))
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(rs.BulkheadFullError):
            bulkhead.call(lambda: 1)
    finally:
        release.set()
        holder.join()


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    """A queued task that is cancelled leaves the queue and the slot goes to the next caller."""
    bulkhead = rs.Bulkhead(1, max_queue=2)
    release = asyncio.Event()
    holder = asyncio.ensure_future(bulkhead.acall(release.wait))
    waiter = asyncio.ensure_future(bulkhead.acall(echo, "never"))
    try:
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert bulkhead.stats()["queued"] == 0
        release.set()
        await gather_all(holder)
        assert await bulkhead.acall(echo, "next") == "next"
    finally:
        release.set()
        await asyncio.gather(holder, waiter, return_exceptions=True)


async def test_threads_and_tasks_share_one_bulkhead() -> None:
    """A slot held by a thread is counted against asyncio callers of the same bulkhead."""
    bulkhead = rs.Bulkhead(1)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        holding.set()
        assert release.wait(10)

    holder = threading.Thread(target=bulkhead.call, args=(hold,))
    holder.start()
    try:
        assert await asyncio.to_thread(holding.wait, 10)
        with pytest.raises(rs.BulkheadFullError):
            await bulkhead.acall(asyncio.sleep, 0)
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    assert await bulkhead.acall(echo, 1) == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "param"),
    [
        ((0,), {}, "max_concurrent"),
        ((1,), {"max_queue": -1}, "max_queue"),
        ((1,), {"queue_timeout": -1}, "queue_timeout"),
    ],
)
def test_bad_options(args: tuple[Any, ...], kwargs: dict[str, Any], param: str) -> None:
    """Bad options raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        rs.Bulkhead(*args, **kwargs)


def test_never_more_than_max_concurrent_under_contention() -> None:
    """Under 8 threads x 50 calls with a deep queue, no more than max_concurrent run at once and all finish."""
    bulkhead = rs.Bulkhead(3, max_queue=100)
    lock = threading.Lock()
    running = peak = 0

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        with lock:
            running -= 1

    def caller(_: int) -> int:
        for _ in range(50):
            bulkhead.call(work)
        return 50

    assert sum(run_threads(8, caller)) == 400
    assert 1 <= peak <= 3
    assert bulkhead.stats()["active"] == 0


def test_a_queued_thread_stops_waiting_at_an_enclosing_timeout() -> None:
    """A sync caller queued inside Timeout(0.05) raises TimeoutExceeded when the deadline passes."""
    bulkhead = rs.Bulkhead(1, max_queue=1)
    policy = rs.pipeline(rs.Timeout(0.05), bulkhead)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        holding.set()
        assert release.wait(10)

    holder = threading.Thread(target=bulkhead.call, args=(hold,))
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(rs.TimeoutExceeded):
            policy.call(lambda: 1)
    finally:
        release.set()
        holder.join()
    assert bulkhead.stats()["queued"] == 0


def test_stats_tell_slots_in_use_and_rejections_by_reason() -> None:
    """stats() counts the slots in use and each rejection under its reason."""
    bulkhead = rs.Bulkhead(1)
    release = threading.Event()
    entered = threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(10)

    worker = threading.Thread(target=bulkhead.call, args=(hold,), daemon=True)
    worker.start()
    assert entered.wait(10)
    try:
        assert bulkhead.stats()["in_use"] == 1
        for _ in range(3):
            with pytest.raises(rs.BulkheadFullError):
                bulkhead.call(lambda: None)
    finally:
        release.set()
        worker.join(10)
    stats = bulkhead.stats()
    assert (stats["in_use"], stats["rejected"], stats["rejected_full"], stats["rejected_queue_timeout"]) == (0, 3, 3, 0)
