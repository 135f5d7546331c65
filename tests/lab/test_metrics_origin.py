"""The recorder's reductions and the simulated origin's queueing."""

from __future__ import annotations

import asyncio

import pytest

from resilient.lab.metrics import Recorder, percentile
from resilient.lab.origin import OriginDown, SimOrigin, open_loop
from resilient.lab.vloop import run_virtual


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..10 is 5, p99 is 10, and an empty list gives 0."""
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 99) == 10.0
    assert percentile([], 99) == 0.0


def test_peak_rps_is_the_busiest_sliding_second() -> None:
    """Calls at 0.5-1.4 s count as one second's burst even across a whole-second boundary."""
    now = 0.0
    recorder = Recorder(lambda: now)
    for i in range(10):
        now = 0.5 + i * 0.1
        recorder.origin_started()
    now = 5.0
    recorder.origin_started()
    assert recorder.peak_rps() == 10.0
    assert recorder.peak_rps(4.0, 6.0) == 1.0
    assert recorder.calls_between(0.0, 1.0) == 5


def test_origin_queues_beyond_capacity_and_counts_concurrency() -> None:
    """With 2 slots of 1 s, three calls finish at 1, 1 and 2 s and the origin saw 3 at once."""

    async def main() -> tuple[list[float], Recorder]:
        loop = asyncio.get_running_loop()
        recorder = Recorder(loop.time)
        origin = SimOrigin(recorder, latency=1.0, capacity=2)
        finished: list[float] = []

        async def call() -> None:
            await origin.fetch()
            finished.append(loop.time())

        async with asyncio.TaskGroup() as group:
            for _ in range(3):
                group.create_task(call())
        return finished, recorder

    finished, recorder = run_virtual(main)
    assert finished == [1.0, 1.0, 2.0]
    assert recorder.origin_calls == 3
    assert recorder.peak_concurrency == 3
    assert recorder.in_flight == 0


def test_a_client_that_gives_up_does_not_free_the_origin() -> None:
    """A query abandoned by its timed-out client still holds its slot, delaying the next one."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        origin = SimOrigin(Recorder(loop.time), latency=1.0, capacity=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await origin.fetch()
        await origin.fetch()
        return loop.time()

    assert run_virtual(main) == 2.0


def test_origin_fails_fast_while_down() -> None:
    """Inside its down window the origin raises OriginDown after fail_latency, and counts the call."""

    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        recorder = Recorder(loop.time)
        origin = SimOrigin(recorder, latency=1.0, capacity=1, down=(0.0, 10.0), fail_latency=0.01)
        with pytest.raises(OriginDown):
            await origin.fetch()
        return loop.time(), recorder.origin_calls

    assert run_virtual(main) == (0.01, 1)


def test_open_loop_starts_the_requested_rate_and_records_each_outcome() -> None:
    """100 requests/s for 2 s start 200 requests; failing ones are counted as errors."""

    async def main() -> Recorder:
        loop = asyncio.get_running_loop()
        recorder = Recorder(loop.time)
        n = 0

        async def request() -> None:
            nonlocal n
            n += 1
            mine = n
            await asyncio.sleep(0.05)  # virtual time: run_virtual jumps the clock
            if mine % 4 == 0:
                raise ValueError("boom")

        await open_loop(recorder, request, rate=100, duration=2.0)
        return recorder

    recorder = run_virtual(main)
    assert len(recorder.latencies) == 200
    assert recorder.errors == 50
    assert max(recorder.latencies) == pytest.approx(0.05)
