"""rs.Batch: loads within one window go to the origin as one call (threads and asyncio)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient as rs
from resilient.testing import FakeClock, capture_events
from tests.conftest import gather_all, run_threads


class GateClock(FakeClock):
    """A fake clock whose sleep (a window's wait, in a thread) lasts until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def sleep(self, seconds: float) -> None:
        assert self.gate.wait(30), "the test never opened the gate"
        self.advance(seconds)


def open_when_loaded(loader: rs.BatchLoader[Any, Any], clock: GateClock, loads: int) -> threading.Thread:
    """Open the clock's gate once ``loads`` loads were asked (every key is in a window or in flight)."""

    def watch() -> None:
        for _ in range(30_000):  # bounded: 30 s at most
            if loader.stats()["loads"] >= loads:
                break
            threading.Event().wait(0.001)
        clock.gate.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


async def settle(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("max_size", [100, 64, 1000])
async def test_thousand_aloads_of_distinct_keys_make_ceil_batches(max_size: int) -> None:
    """1,000 concurrent aloads of 1,000 distinct keys within one window cost ceil(1000/max_size) calls."""
    calls: list[list[int]] = []

    @rs.Batch(window=0.01, max_size=max_size, clock=FakeClock())
    async def fetch(keys: list[int]) -> dict[int, str]:
        calls.append(keys)
        await asyncio.sleep(0)
        return {k: f"v{k}" for k in keys}

    results = await gather_all(*(fetch.aload(i) for i in range(1000)))
    assert results == [f"v{i}" for i in range(1000)]
    assert len(calls) == math.ceil(1000 / max_size)
    assert sorted(k for batch in calls for k in batch) == list(range(1000))
    assert all(len(batch) <= max_size for batch in calls)
    stats = fetch.stats()
    assert stats["batches"] == len(calls) and stats["keys"] == 1000 and stats["coalesced"] == 0
    assert stats["mean_batch_size"] == pytest.approx(1000 / len(calls))
    assert fetch.pending == 0


@pytest.mark.parametrize("max_size", [100, 64])
def test_five_hundred_threads_make_ceil_batches(max_size: int) -> None:
    """500 threads loading 500 distinct keys within one window cost ceil(500/max_size) calls."""
    clock = GateClock()
    calls: list[list[int]] = []
    lock = threading.Lock()

    def fetch_rows(keys: list[int]) -> dict[int, int]:
        with lock:
            calls.append(keys)
        return {k: k * 2 for k in keys}

    loader = rs.Batch(window=0.01, max_size=max_size, clock=clock)(fetch_rows)
    watcher = open_when_loaded(loader, clock, 500)
    results = run_threads(500, loader.load)
    watcher.join(30)
    assert results == [i * 2 for i in range(500)]
    assert len(calls) == math.ceil(500 / max_size)
    assert sorted(k for batch in calls for k in batch) == list(range(500))
    assert loader.pending == 0


async def test_thousand_aloads_of_ten_keys_fetch_each_key_once() -> None:
    """1,000 aloads of 10 keys fetch each key once; the other 990 loads are coalesced."""
    fetched: list[str] = []

    @rs.Batch(clock=FakeClock())
    async def fetch(keys: list[str]) -> dict[str, str]:
        fetched.extend(keys)
        return {k: k.upper() for k in keys}

    results = await gather_all(*(fetch.aload(f"k{i % 10}") for i in range(1000)))
    assert results == [f"K{i % 10}" for i in range(1000)]
    assert sorted(fetched) == sorted(f"k{i}" for i in range(10))
    assert fetch.stats()["coalesced"] == 990


def test_thousand_thread_loads_of_ten_keys_fetch_each_key_once() -> None:
    """200 threads x 5 loads over 10 keys fetch each key once."""
    clock = GateClock()
    fetched: list[int] = []

    def fetch_rows(keys: list[int]) -> dict[int, int]:
        fetched.extend(keys)
        return {k: -k for k in keys}

    loader = rs.Batch(clock=clock)(fetch_rows)
    watcher = open_when_loaded(loader, clock, 1000)
    results = run_threads(200, lambda i: loader.load_many([(i + j) % 10 for j in range(5)]))
    watcher.join(30)
    assert results == [[-((i + j) % 10) for j in range(5)] for i in range(200)]
    assert sorted(fetched) == list(range(10))
    assert loader.stats()["coalesced"] == 990


async def test_missing_key_fails_only_its_callers() -> None:
    """A key absent from the returned mapping raises KeyError for its callers; the rest get values."""

    @rs.Batch(clock=FakeClock())
    async def fetch(keys: list[str]) -> dict[str, int]:
        return {k: len(k) for k in keys if k != "ghost"}

    results = await asyncio.gather(
        fetch.aload("a"), fetch.aload("ghost"), fetch.aload("bb"), fetch.aload("ghost"), return_exceptions=True
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], KeyError) and isinstance(results[3], KeyError)
    assert fetch.stats()["batches"] == 1


def test_missing_key_fails_only_its_thread() -> None:
    """In threads too, only the caller of the absent key sees KeyError."""
    clock = GateClock()

    def fetch_rows(keys: list[int]) -> dict[int, int]:
        return {k: k for k in keys if k != 3}

    loader = rs.Batch(clock=clock)(fetch_rows)
    watcher = open_when_loaded(loader, clock, 5)
    results = run_threads(5, loader.load)
    watcher.join(30)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4]
    assert isinstance(results[3], KeyError)
    assert loader.stats()["batches"] == 1


async def test_fetch_error_reaches_every_caller_of_the_batch() -> None:
    """An exception from fetch reaches each caller of that batch, and is not remembered."""
    fail = True

    @rs.Batch(clock=FakeClock())
    async def fetch(keys: list[int]) -> dict[int, int]:
        if fail:
            raise ConnectionError("origin down")
        return {k: k for k in keys}

    results = await asyncio.gather(*(fetch.aload(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    fail = False
    assert await fetch.aload_many([1, 2]) == [1, 2]


def test_fetch_error_reaches_every_thread() -> None:
    """Threads of a failed batch all see its exception."""
    clock = GateClock()

    def fetch_rows(keys: list[int]) -> dict[int, int]:
        raise ConnectionError("origin down")

    loader = rs.Batch(clock=clock)(fetch_rows)
    watcher = open_when_loaded(loader, clock, 8)
    results = run_threads(8, loader.load)
    watcher.join(30)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert loader.stats()["batches"] == 1


async def test_cancelled_caller_leaves_the_window() -> None:
    """A caller cancelled before its batch goes takes its key out; the others are fetched."""
    clock = FakeClock()
    seen: list[list[str]] = []

    @rs.Batch(window=1.0, clock=clock)
    async def fetch(keys: list[str]) -> dict[str, str]:
        seen.append(keys)
        return {k: k for k in keys}

    gone = asyncio.ensure_future(fetch.aload("gone"))
    kept = asyncio.ensure_future(fetch.aload("kept"))
    try:
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == "kept"
    finally:
        await settle([gone, kept])
    assert seen == [["kept"]]
    assert fetch.pending == 0


async def test_batch_in_flight_is_cancelled_only_when_no_caller_is_left() -> None:
    """One cancelled caller does not stop a batch in flight; the last one does."""
    started, release = asyncio.Event(), asyncio.Event()
    cancelled = 0

    @rs.Batch(clock=FakeClock())
    async def fetch(keys: list[str]) -> dict[str, str]:
        nonlocal cancelled
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return {k: k for k in keys}

    a, b = asyncio.ensure_future(fetch.aload("a")), asyncio.ensure_future(fetch.aload("b"))
    try:
        await started.wait()
        a.cancel()
        await asyncio.sleep(0)
        assert cancelled == 0
        b.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        assert cancelled == 1
        assert fetch.pending == 0
    finally:
        await settle([a, b])


async def test_dispatch_event_and_repr() -> None:
    """Each batch sent emits batch.dispatched with its size and why it went."""

    @rs.Batch(max_size=2, clock=FakeClock())
    async def fetch(keys: list[int]) -> dict[int, int]:
        return {k: k for k in keys}

    with capture_events() as events:
        await gather_all(*(fetch.aload(i) for i in range(3)))
    sent = [e for e in events if e["event"] == "batch.dispatched"]
    assert [(e["size"], e["reason"]) for e in sent] == [(2, "full"), (1, "window")]
    assert sent[0]["policy"] == "batch" and sent[0]["key"] is None and "fetch" in sent[0]["operation"]
    assert "max_size=2" in repr(fetch)


def test_bad_arguments() -> None:
    """Bad options and misuse raise TypeError/ValueError naming what is wrong."""
    with pytest.raises(ValueError, match="window"):
        rs.Batch(window=-1)
    with pytest.raises(ValueError, match="max_size"):
        rs.Batch(max_size=0)
    with pytest.raises(TypeError, match="clock"):
        rs.Batch(clock=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch function"):
        rs.Batch()(42)  # type: ignore[arg-type]

    def not_a_mapping(keys: list[int]) -> list[int]:
        return [1]

    loader = rs.Batch(window=0)(not_a_mapping)
    with pytest.raises(TypeError, match="Mapping"):
        loader.load(1)


def test_sync_load_of_an_async_fetch_is_a_type_error() -> None:
    """load() on an async batch function says to call aload()."""

    async def fetch(keys: list[int]) -> dict[int, int]:
        return {}

    with pytest.raises(TypeError, match="aload"):
        rs.Batch(window=0)(fetch).load(1)


async def test_policies_wrap_the_batch_function() -> None:
    """A retry around the batch function retries the whole batch."""
    attempts = 0

    @rs.Batch(clock=FakeClock())
    @rs.Retry(attempts=3, backoff=rs.Constant(0), clock=FakeClock())
    async def fetch(keys: list[int]) -> dict[int, int]:
        nonlocal attempts
        attempts += 1
        if attempts < 2:
            raise ConnectionError
        return {k: k for k in keys}

    assert await gather_all(fetch.aload(1), fetch.aload(2)) == [1, 2]
    assert attempts == 2


calls_strategy = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["keep", "before", "during"])), max_size=25)


@settings(max_examples=60, deadline=None)
@given(callers=calls_strategy, max_size=st.integers(1, 4))
def test_random_cancellations_leave_nothing_behind(callers: list[tuple[int, str]], max_size: int) -> None:
    """Whatever callers are cancelled and when, no entry is left pending, survivors get their
    values, and the next load of a key calls the origin once."""

    async def scenario() -> None:
        release = asyncio.Event()
        fetched: list[list[int]] = []

        @rs.Batch(window=0.01, max_size=max_size, clock=FakeClock())
        async def fetch(keys: list[int]) -> dict[int, str]:
            fetched.append(keys)
            await release.wait()
            return {k: f"v{k}" for k in keys}

        tasks = [asyncio.ensure_future(fetch.aload(k)) for k, _ in callers]
        try:
            await asyncio.sleep(0)
            for task, (_, when) in zip(tasks, callers, strict=True):
                if when == "before":
                    task.cancel()
            for _ in range(4):
                await asyncio.sleep(0)
            for task, (_, when) in zip(tasks, callers, strict=True):
                if when == "during":
                    task.cancel()
            for _ in range(2):
                await asyncio.sleep(0)
            release.set()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            await settle(tasks)
        for (k, when), outcome in zip(callers, outcomes, strict=True):
            if when == "keep":
                assert outcome == f"v{k}"
        assert fetch.pending == 0
        before = len(fetched)
        assert await fetch.aload(0) == "v0"
        assert fetched[before:] == [[0]]
        assert fetch.pending == 0

    asyncio.run(scenario())
