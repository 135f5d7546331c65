"""``backoff``: the contention experiment of AWS's "Exponential Backoff and Jitter".

One row behind optimistic concurrency: a write carrying the version it read
succeeds and bumps the version, otherwise it fails; the server never queues.
Each one-way message takes ``|Normal(10 ms, 2 ms)|``. N clients start together
and each needs one successful write: read, write back, and on a conflict back
off and read again, with no timeout or retry limit. The backoff is the
library's own :class:`resilient.Retry` driving the library's backoff objects
(their ``.delays()``) in virtual time. Work = write calls, successes included;
time = when the last client has its success. As published (aws-samples/
aws-arch-backoff-simulator): base 5 ms, cap 2 s, the first retry waiting up to
``min(cap, base * 2**1)``, i.e. ``base=0.010`` in this library's n = 0
convention for the exponential family and ``base=0.005`` for decorrelated.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from .._machines.backoff import Backoff, DecorrelatedJitter, EqualJitter, Exponential, FullJitter
from ..policies.retry import Retry
from .metrics import Recorder, ScenarioResult, StrategyResult, percentile
from .vloop import VirtualClock, run_virtual

__all__ = ["BACKOFFS", "DEFAULT_CLIENTS", "FULL_CLIENTS", "run_backoff"]

CAP = 2.0
BACKOFFS: dict[str, Backoff] = {
    "no-jitter": Exponential(0.010, CAP),
    "full-jitter": FullJitter(0.010, CAP),
    "equal-jitter": EqualJitter(0.010, CAP),
    "decorrelated": DecorrelatedJitter(0.005, CAP),
}
#: The default, short sweep (fits the lab's minute) and the published one.
DEFAULT_CLIENTS = (10, 50, 100)
DEFAULT_RUNS = 4
FULL_CLIENTS = tuple(range(10, 200, 10))
FULL_RUNS = 100


class Conflict(Exception):
    """The row changed between the read and the write."""


async def _one_run(clients: int, backoff: Backoff, rng: random.Random) -> tuple[int, list[float], int, float]:
    """One race of ``clients`` writers: (writes, each client's success time, peak racing, peak writes/s)."""
    loop = asyncio.get_running_loop()
    recorder = Recorder(loop.time)
    retry = Retry(attempts=1_000_000, backoff=backoff, on=Conflict, clock=VirtualClock(loop), rng=rng)
    normal = rng.normalvariate
    state = {"version": 0, "writes": 0, "racing": 0, "peak": 0}

    async def attempt() -> int:
        state["racing"] += 1
        state["peak"] = max(state["peak"], state["racing"])
        try:
            await asyncio.sleep(abs(normal(0.010, 0.002)))  # read request
            seen = state["version"]
            await asyncio.sleep(abs(normal(0.010, 0.002)))  # read response
            await asyncio.sleep(abs(normal(0.010, 0.002)))  # write request
            state["writes"] += 1
            recorder.origin_started()  # the server answers at once: it never queues
            recorder.origin_finished()
            won = state["version"] == seen
            if won:
                state["version"] += 1
            await asyncio.sleep(abs(normal(0.010, 0.002)))  # write response
        finally:
            state["racing"] -= 1
        if not won:
            raise Conflict
        return seen + 1

    async def client() -> float:
        _: int = await retry.acall(attempt)
        return loop.time()

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(client()) for _ in range(clients)]
    return state["writes"], [t.result() for t in tasks], state["peak"], recorder.peak_rps()


def run_backoff(
    *,
    clients: Sequence[int] = DEFAULT_CLIENTS,
    runs: int = DEFAULT_RUNS,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Race ``clients`` writers ``runs`` times under each backoff; one row per (backoff, N).

    ``origin_calls`` is the mean work (write calls) per run, ``finish_ms`` the mean
    time for the last client to succeed, ``p50_ms``/``p99_ms`` the clients' own
    success times over all runs, ``peak_origin_concurrency`` the most clients
    racing at once, ``peak_origin_rps`` the most writes in one second of any run.
    """
    rows: list[StrategyResult] = []
    work: dict[str, dict[int, float]] = {name: {} for name in BACKOFFS}
    for n in clients:
        if progress is not None:
            progress(f"backoff: N={n} ({runs} runs per backoff)")
        for name, backoff in BACKOFFS.items():
            rng = random.Random(f"{seed}:{name}:{n}")

            async def sweep(
                n: int = n, backoff: Backoff = backoff, rng: random.Random = rng
            ) -> list[tuple[int, list[float], int, float]]:
                return [await _one_run(n, backoff, rng) for _ in range(runs)]

            results = run_virtual(sweep)
            writes = sum(r[0] for r in results) / runs
            finish = sum(max(r[1]) for r in results) / runs
            times = sorted(t for r in results for t in r[1])
            work[name][n] = writes
            rows.append(
                StrategyResult(
                    name=f"{name} N={n}",
                    origin_calls=round(writes, 1),
                    peak_origin_concurrency=max(r[2] for r in results),
                    peak_origin_rps=max(r[3] for r in results),
                    p50_ms=round(percentile(times, 50) * 1000, 1),
                    p99_ms=round(percentile(times, 99) * 1000, 1),
                    errors=0,
                    stale_served=0,
                    extra={"clients": n, "finish_ms": round(finish * 1000, 1)},
                    series=[],
                )
            )
    largest = max(clients)
    ranking = sorted(BACKOFFS, key=lambda name: work[name][largest])
    summary = [
        f"ranking by work at N={largest} (least first): "
        + " < ".join(f"{name} ({work[name][largest]:,.0f})" for name in ranking),
        "AWS's finding: no jitter clearly worst, full jitter the least work -> "
        + ("matches" if ranking[0] == "full-jitter" and ranking[-1] == "no-jitter" else "DOES NOT match"),
    ]
    return ScenarioResult(
        name="backoff",
        title=f"backoff: AWS OCC contention, mean of {runs} run(s) per N (base 5 ms, cap 2 s, net |N(10,2)| ms)",
        strategies=rows,
        summary=summary,
        plot_x="clients (N)",
        plot_y="write calls (work)",
        plot_series={name: [(float(n), work[name][n]) for n in clients] for name in BACKOFFS},
    )
