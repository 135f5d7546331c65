"""The virtual-time loop and clock: time jumps to the next timer, deterministically."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

import pytest
import structlog

import resilient as rs
from resilient.lab.vloop import WALL_EPOCH, VirtualClock, VirtualTimeDeadlock, quiet_logs, run_virtual


def test_sleep_moves_virtual_time_by_exactly_the_delay() -> None:
    """An hour of asyncio.sleep ends with the loop's clock at exactly 3600 s."""

    async def main() -> float:
        await asyncio.sleep(3600)  # virtual time: no real waiting
        return asyncio.get_running_loop().time()

    assert run_virtual(main) == 3600.0


def test_timers_fire_in_time_order_and_ties_first_come_first_served() -> None:
    """Sleepers wake in order of their deadline, and in creation order at equal deadlines."""
    woke: list[str] = []

    async def sleeper(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        woke.append(name)

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for name, delay in [("c", 3.0), ("a1", 1.0), ("b", 2.0), ("a2", 1.0), ("a3", 1.0)]:
                group.create_task(sleeper(name, delay))

    run_virtual(main)
    assert woke == ["a1", "a2", "a3", "b", "c"]


def test_asyncio_timeout_expires_in_virtual_time() -> None:
    """asyncio.timeout(2) around a 100 s sleep raises TimeoutError at virtual time 2."""

    async def main() -> float:
        try:
            async with asyncio.timeout(2.0):
                await asyncio.sleep(100)  # virtual time
        except TimeoutError:
            return asyncio.get_running_loop().time()
        raise AssertionError("the timeout did not fire")

    assert run_virtual(main) == 2.0


def test_a_loop_where_nothing_can_happen_reports_a_deadlock() -> None:
    """Awaiting a future nobody will ever resolve raises VirtualTimeDeadlock instead of hanging."""

    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(VirtualTimeDeadlock):
        run_virtual(main)


def test_virtual_clock_reads_the_loop_and_its_asleep_takes_virtual_time() -> None:
    """VirtualClock.monotonic/time follow the loop; asleep(5) advances both by 5."""

    async def main() -> tuple[float, float, float, float]:
        clock = VirtualClock()
        before = (clock.monotonic(), clock.time())
        await clock.asleep(5)
        return (*before, clock.monotonic(), clock.time())

    assert run_virtual(main) == (0.0, WALL_EPOCH, 5.0, WALL_EPOCH + 5)


def test_virtual_clock_refuses_to_block() -> None:
    """A blocking sleep cannot be simulated on the loop's thread, so it raises."""

    async def main() -> None:
        VirtualClock().sleep(1)

    with pytest.raises(RuntimeError, match="cannot block"):
        run_virtual(main)


def test_a_real_policy_waits_its_backoff_in_virtual_time() -> None:
    """Retry with a 10 s constant backoff on a VirtualClock finishes its 3 attempts at t = 20 s."""

    async def main() -> tuple[float, int]:
        clock = VirtualClock()
        calls = 0

        async def flaky() -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ConnectionError("down")
            return "ok"

        retry = rs.Retry(attempts=3, backoff=rs.Constant(10), clock=clock)
        result: str = await retry.acall(flaky)
        assert result == "ok"
        return clock.monotonic(), calls

    with quiet_logs():
        assert run_virtual(main) == (20.0, 3)


def test_runs_are_deterministic_for_a_seed() -> None:
    """Two runs of the same jittered program with the same seed give identical event times."""

    def once(seed: int) -> list[float]:
        async def main() -> list[float]:
            rng = random.Random(seed)
            loop = asyncio.get_running_loop()
            times: list[float] = []

            async def worker() -> None:
                for delay in itertools.islice(rs.FullJitter(0.1, 5).delays(rng), 5):
                    await asyncio.sleep(delay)
                    times.append(loop.time())

            async with asyncio.TaskGroup() as group:
                for _ in range(20):
                    group.create_task(worker())
            return times

        return run_virtual(main)

    assert once(7) == once(7)
    assert once(7) != once(8)


def test_quiet_logs_silences_the_log_but_not_listeners(caplog: pytest.LogCaptureFixture) -> None:
    """Inside quiet_logs events still reach listeners but not the log; afterwards they are logged again."""
    from resilient.core import events as _events

    seen: list[str] = []

    def listen(event: dict[str, object]) -> None:
        seen.append(str(event["event"]))

    rs.add_listener(listen)
    try:
        with caplog.at_level(logging.DEBUG, logger="resilient"), structlog.testing.capture_logs() as logs:
            with quiet_logs():
                _events.emit("cache.miss", operation="op", key="k")
            _events.emit("coalesce.joined", operation="op", key="k")
    finally:
        rs.remove_listener(listen)
    assert seen == ["cache.miss", "coalesce.joined"]
    logged = [e["event"] for e in logs] + [r.getMessage().split()[0] for r in caplog.records]
    assert logged == ["coalesce.joined"]
