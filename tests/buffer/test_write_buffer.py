"""WriteBuffer in process: rate, batches, backpressure, retries, dead letters, flush and close."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import resilient as rs
from resilient.lab.vloop import quiet_logs
from resilient.testing import FakeClock, capture_events

from ..conftest import run_threads

RATE, BATCH = 500.0, 100


class CountingSink:
    """A write() that records when (on the fake clock) it saw how many items, and checks the rate bound."""

    def __init__(self, clock: FakeClock, *, rate: float = RATE, batch: int = BATCH) -> None:
        self.clock = clock
        self.rate, self.batch = rate, batch
        self.items: list[Any] = []
        self.calls: list[tuple[float, int]] = []
        self.violations: list[tuple[float, int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[Any]) -> None:
        with self.lock:
            t = self.clock.monotonic()
            self.items.extend(items)
            self.calls.append((t, len(items)))
            if len(self.items) > self.rate * t + self.batch + 1e-6:
                self.violations.append((t, len(self.items)))

    async def awrite(self, items: list[Any]) -> None:
        self(items)
        await asyncio.sleep(0)


def check_each_once_in_order(items: list[Any], producers: int, per: int) -> None:
    assert len(items) == producers * per
    assert len(set(map(tuple, items))) == len(items)  # exactly once
    for p in range(producers):
        assert [seq for who, seq in items if who == p] == list(range(per))  # in order per producer


def test_a_burst_of_50000_puts_is_written_at_the_rate_each_once_in_order() -> None:
    """4 producers put 50,000 items at once: by time t the sink saw <= rate*t + batch_size, all exactly once."""
    clock = FakeClock()
    sink = CountingSink(clock)
    producers, per = 4, 12_500
    with quiet_logs():
        buffer = rs.WriteBuffer(sink, rate=RATE, batch_size=BATCH, max_pending=50_000, clock=clock)

        def produce(p: int) -> None:
            for seq in range(per):
                buffer.put((p, seq))

        assert run_threads(producers, produce, timeout=120) == [None] * producers
        buffer.close()
    assert sink.violations == []
    check_each_once_in_order(sink.items, producers, per)
    assert max(n for _, n in sink.calls) <= BATCH
    stats = buffer.stats()
    assert stats["written"] == 50_000 and stats["pending"] == 0 and stats["rejected"] == 0
    # 50,000 items at 500/s take at least (50,000 - 100) / 500 s of (fake) time. No upper bound: the
    # worker lingers on the fake clock whenever slow producer threads leave a batch unfilled, so the
    # fake time it took depends on thread scheduling (a loaded machine made it 116 s).
    assert clock.monotonic() >= (50_000 - BATCH) / RATE - 1e-6


async def test_the_async_twin_respects_the_rate_too() -> None:
    """aput + an async write: a task drains at the rate, each item once, in order."""
    clock = FakeClock()
    sink = CountingSink(clock)
    with quiet_logs():
        buffer = rs.WriteBuffer(sink.awrite, rate=RATE, batch_size=BATCH, max_pending=10_000, clock=clock)

        async def produce(p: int) -> None:
            for seq in range(2_500):
                await buffer.aput((p, seq))

        await asyncio.gather(*(produce(p) for p in range(4)))
        await buffer.aclose()
    assert sink.violations == []
    check_each_once_in_order(sink.items, 4, 2_500)


def test_the_1001st_put_is_refused_at_max_pending_and_memory_stays_bounded() -> None:
    """max_pending=1,000 with the write stuck: put 1,001 raises BufferFullError; later puts hold nothing."""
    release = threading.Event()
    written: list[Any] = []

    def stuck(items: list[Any]) -> None:
        release.wait(30)
        written.extend(items)

    buffer = rs.WriteBuffer(stuck, max_pending=1_000, clock=FakeClock())
    for i in range(1_000):
        buffer.put(i)
    with capture_events() as events, pytest.raises(rs.BufferFullError):
        buffer.put(1_000)
    assert isinstance(rs.BufferFullError(), rs.Rejected)
    assert [e["event"] for e in events] == ["buffer.rejected"]
    for i in range(10_000):
        with pytest.raises(rs.BufferFullError):
            buffer.put(i)
    stats = buffer.stats()
    assert stats["pending"] == 1_000  # the batch in flight counts
    assert stats["rejected"] == 10_001
    release.set()
    buffer.close()
    assert written == list(range(1_000))
    assert buffer.stats()["pending"] == 0


def test_a_poison_batch_is_dead_lettered_once_and_later_items_are_written() -> None:
    """One item always fails: its batch is tried 3 times, dead_letter sees it once, the rest is written."""
    clock = FakeClock()
    attempts_seen: list[list[Any]] = []
    written: list[Any] = []
    dead: list[tuple[list[Any], BaseException]] = []

    def write(items: list[Any]) -> None:
        attempts_seen.append(list(items))
        if "poison" in items:
            raise ValueError("cannot store poison")
        written.extend(items)

    buffer = rs.WriteBuffer(
        write,
        batch_size=10,
        retry=rs.Retry(attempts=3, clock=clock),
        dead_letter=lambda items, error: dead.append((items, error)),
        clock=clock,
    )
    with quiet_logs(), capture_events() as events:
        for i in range(50):
            buffer.put(i)
        buffer.put("poison")
        for i in range(50, 100):
            buffer.put(i)
        buffer.close()
    assert len(dead) == 1
    batch, error = dead[0]
    assert "poison" in batch and isinstance(error, ValueError)
    assert sum(1 for seen in attempts_seen if "poison" in seen) == 3
    assert written == [i for i in range(100) if i not in batch]
    assert set(range(50, 100)) - set(batch) <= set(written)
    stats = buffer.stats()
    assert stats["dead_lettered"] == len(batch) and stats["retried"] == 2 and stats["pending"] == 0
    dead_events = [e for e in events if e["event"] == "buffer.dead_lettered"]
    assert len(dead_events) == 1 and dead_events[0]["error"] == "ValueError"
    assert dead_events[0]["error_message"] == "cannot store poison"


async def test_an_async_dead_letter_is_awaited() -> None:
    """With an async write, an async dead_letter receives the failed batch."""
    dead: list[list[Any]] = []

    async def write(items: list[Any]) -> None:
        raise RuntimeError("down")

    async def dead_letter(items: list[Any], error: BaseException) -> None:
        await asyncio.sleep(0)
        dead.append(items)

    with quiet_logs():
        buffer = rs.WriteBuffer(write, dead_letter=dead_letter, clock=FakeClock())
        for i in range(5):
            await buffer.aput(i)
        await buffer.aclose()
    assert dead == [[0, 1, 2, 3, 4]]


def test_a_refused_write_is_held_and_written_later_not_dead_lettered() -> None:
    """A write refused with rs.Rejected (an open breaker) is held and tried again; nothing is dead-lettered."""
    clock = FakeClock()
    refusals = [rs.CircuitOpenError(remaining=2.0), rs.CircuitOpenError(remaining=2.0)]
    written: list[Any] = []

    def write(items: list[Any]) -> None:
        if refusals:
            raise refusals.pop()
        written.extend(items)

    buffer = rs.WriteBuffer(write, dead_letter=lambda items, error: pytest.fail("dead-lettered"), clock=clock)
    with quiet_logs(), capture_events() as events:
        buffer.put("a")
        buffer.close()
    assert written == ["a"]
    assert [e["delay"] for e in events if e["event"] == "buffer.held"] == [2.0, 2.0]
    assert clock.monotonic() >= 4.0


def test_flush_waits_for_the_write_and_times_out_while_it_is_stuck() -> None:
    """flush() returns True once written; with a stuck write and a timeout it returns False."""
    release = threading.Event()
    written: list[Any] = []

    def write(items: list[Any]) -> None:
        release.wait(30)
        written.extend(items)

    buffer = rs.WriteBuffer(write, linger=10.0)  # the system clock: flush cuts the batch without lingering
    buffer.put(1)
    assert buffer.flush(timeout=0.05) is False
    release.set()
    assert buffer.flush(timeout=30) is True
    assert written == [1]
    buffer.close()
    with pytest.raises(RuntimeError, match="closed"):
        buffer.put(2)


def test_lag_is_the_age_of_the_oldest_unwritten_item() -> None:
    """stats()['lag_seconds'] grows with the oldest pending item's age, and is 0 when all is written."""
    clock = FakeClock()
    release = threading.Event()
    buffer = rs.WriteBuffer(lambda items: release.wait(30), clock=clock)
    assert buffer.stats()["lag_seconds"] == 0.0
    buffer.put(1)
    clock.advance(5.0)
    assert buffer.stats()["lag_seconds"] >= 5.0
    release.set()
    buffer.close()
    assert buffer.stats()["lag_seconds"] == 0.0


async def test_a_blocking_flush_on_the_workers_loop_is_refused() -> None:
    """flush()/close() on the loop that runs the async worker would deadlock: RuntimeError says aflush()."""

    async def write(items: list[Any]) -> None:
        return None

    buffer = rs.WriteBuffer(write, clock=FakeClock())
    with quiet_logs():
        await buffer.aput(1)
        with pytest.raises(RuntimeError, match="aflush"):
            buffer.flush()
        assert await buffer.aflush() is True
        await buffer.aclose()
    assert buffer.stats()["written"] == 1


def test_the_written_event_names_the_batch() -> None:
    """Each batch written emits buffer.written with its size, attempts and lag."""
    with capture_events() as events, rs.WriteBuffer(lambda items: None, clock=FakeClock()) as buffer:
        buffer.put(1)
        buffer.put(2)
    written = [e for e in events if e["event"] == "buffer.written"]
    assert written and sum(e["items"] for e in written) == 2
    assert {e["policy"] for e in written} == {"write_buffer"} and written[0]["attempts"] == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"rate": 0}, "rate"),
        ({"per": -1}, "per"),
        ({"batch_size": 0}, "batch_size"),
        ({"linger": -0.1}, "linger"),
        ({"max_pending": 0}, "max_pending"),
        ({"on_store_error": "drop"}, "on_store_error"),
    ],
)
def test_bad_options_raise_naming_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    """A bad option raises ValueError naming it."""
    with pytest.raises(ValueError, match=param):
        rs.WriteBuffer(lambda items: None, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"retry": 3}, "retry"), ({"dead_letter": 1}, "dead_letter"), ({"clock": 1}, "clock"), ({"queue": 1}, "queue")],
)
def test_bad_types_raise_type_error(kwargs: dict[str, Any], param: str) -> None:
    """A wrong type raises TypeError naming the parameter."""
    with pytest.raises(TypeError, match=param):
        rs.WriteBuffer(lambda items: None, **kwargs)
