"""The herd lab from Python: replay a stampede, then simulate your own policy in virtual time.

First the lab's ``expiry`` scenario at a small scale (1,000 requests/s on one
hot key whose TTL runs out): naive cache-aside against ``rs.Cache``. Then a
hand-made simulation: 200 clients retrying a flaky dependency through
``rs.Retry`` on a :class:`~resilient.lab.vloop.VirtualClock`, so a minute of
backoff takes a fraction of a second, the same on every run.

Run it: ``python examples/herd_lab.py`` (no network; ``resilient herd`` runs every scenario).
"""

from __future__ import annotations

import asyncio
import random

import resilient as rs
from resilient.lab.report import format_scenario
from resilient.lab.scenario_expiry import run_expiry
from resilient.lab.vloop import VirtualClock, quiet_logs, run_virtual


def replay_expiry() -> None:
    result = run_expiry(rate=1000, ttl=1.0, instances=4, strategies=("naive", "lock-stale", "combined"))
    print(format_scenario(result))


async def retry_in_virtual_time() -> tuple[int, float]:
    """200 clients, a dependency that fails its first 300 calls: how many calls, and when do all succeed?"""
    clock = VirtualClock()
    retry = rs.Retry(attempts=10, backoff=rs.FullJitter(0.5, 30), clock=clock, rng=random.Random(1))
    calls = 0

    async def dependency() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls <= 300:
            raise ConnectionError("still warming up")
        return "ok"

    async def client() -> str:
        result: str = await retry.acall(dependency)
        return result

    async with asyncio.TaskGroup() as group:
        for _ in range(200):
            group.create_task(client())
    return calls, clock.monotonic()


def main() -> None:
    with quiet_logs():
        replay_expiry()
        calls, finished = run_virtual(retry_in_virtual_time)
    print(f"\n200 clients through rs.Retry: {calls} calls, all done at t={finished:.1f} s of virtual time")


if __name__ == "__main__":
    main()
