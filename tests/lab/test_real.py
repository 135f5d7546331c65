"""`resilient herd --real`: a real loopback HTTP origin, worker processes, optional Redis."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest

from resilient.lab.metrics import Recorder
from resilient.lab.real import LoopbackOrigin, run_real


def test_loopback_origin_serves_http_and_caps_concurrency() -> None:
    """Four concurrent GETs to an origin of 2 slots x 0.05 s are all counted and all answered."""

    async def main() -> tuple[list[int], Recorder]:
        loop = asyncio.get_running_loop()
        recorder = Recorder(loop.time)
        origin = LoopbackOrigin(recorder, latency=0.05, capacity=2)
        await origin.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{origin.port}") as client:
                responses = await asyncio.gather(*(client.get("/item/hot") for _ in range(4)))
        finally:
            await origin.aclose()
        return sorted(r.json()["version"] for r in responses), recorder

    versions, recorder = asyncio.run(main())
    assert versions == [1, 2, 3, 4]
    assert recorder.origin_calls == 4
    assert recorder.in_flight == 0


@pytest.mark.slow
def test_real_naive_run_reports_the_herd_with_progress() -> None:
    """One worker process, naive cache-aside: the first fill costs a burst of origin calls, shown with progress."""
    progress = io.StringIO()
    result = run_real(processes=1, duration=1.5, rate=100, ttl=1.0, strategies=("naive",), progress=progress)
    naive = result.strategy("naive")
    assert naive.origin_calls >= 2
    assert naive.extra["requests"] > 100
    assert "naive" in progress.getvalue()
    assert "origin calls" in progress.getvalue()


def test_real_rejects_bad_arguments() -> None:
    """processes must be >= 1, and duration and rate positive, named in the error."""
    with pytest.raises(ValueError, match="processes"):
        run_real(processes=0)
    with pytest.raises(ValueError, match="duration"):
        run_real(duration=0)


@pytest.mark.redis
@pytest.mark.slow
def test_fleet_of_four_processes_makes_one_origin_call_per_refresh(redis_url: str) -> None:
    """Four processes sharing Redis refresh the hot key with one origin call per refresh, fleet-wide."""
    result = run_real(processes=4, redis_url=redis_url, duration=4.0, rate=200, ttl=2.0, strategies=("combined",))
    combined = result.strategy("combined")
    assert combined.extra["refreshes"] >= 2
    assert combined.extra["calls_per_refresh"] == 1.0
    assert combined.peak_origin_concurrency == 1
    assert combined.errors == 0
