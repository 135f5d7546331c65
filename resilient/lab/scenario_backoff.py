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
from collections.abc import Callable, Mapping, Sequence

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
#: Runs per N in the default sweep: small races vary most and cost least, so they get more runs
#: (each mean then lands within about 10 % of the published one).
DEFAULT_RUNS: Mapping[int, int] = {10: 40, 50: 8, 100: 4}
FULL_CLIENTS = tuple(range(10, 200, 10))
FULL_RUNS = 100
#: The published simulator's means (100 runs per cell): N -> backoff -> (write calls, finish ms).
PUBLISHED: Mapping[int, Mapping[str, tuple[float, float]]] = {
    10: {"no-jitter": (50, 3482), "equal-jitter": (42, 726), "full-jitter": (38, 461), "decorrelated": (37, 438)},
    50: {
        "no-jitter": (623, 36301),
        "equal-jitter": (346, 4253),
        "full-jitter": (332, 2896),
        "decorrelated": (374, 2182),
    },
    100: {
        "no-jitter": (1854, 63326),
        "equal-jitter": (812, 6641),
        "full-jitter": (796, 4867),
        "decorrelated": (1002, 4584),
    },
    190: {
        "no-jitter": (5170, 101250),
        "equal-jitter": (1759, 9449),
        "full-jitter": (1771, 7441),
        "decorrelated": (2436, 7942),
    },
}


class Conflict(Exception):
    """The row changed between the read and the write."""


async def _one_run(clients: int, backoff: Backoff, rng: random.Random) -> tuple[int, list[float], int, float]:
    """One race of ``clients`` writers: (writes, each client's success time, peak racing, peak writes/s)."""
    loop = asyncio.get_running_loop()
    began = loop.time()  # the runs of a sweep share one virtual loop: time each from its own start
    recorder = Recorder(lambda: loop.time() - began)
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
        return loop.time() - began

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(client()) for _ in range(clients)]
    return state["writes"], [t.result() for t in tasks], state["peak"], recorder.peak_rps()


def run_backoff(
    *,
    clients: Sequence[int] = DEFAULT_CLIENTS,
    runs: int | Mapping[int, int] = DEFAULT_RUNS,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Race ``clients`` writers ``runs`` times under each backoff; one row per (backoff, N).

    ``runs`` is a count for every N, or a mapping N -> count (an N it lacks gets 4 runs).
    Each run is timed from its own start: ``finish_ms`` is the simulator's
    ``run_sim`` time (the last client's success), averaged over the runs.

    ``origin_calls`` is the mean work (write calls) per run, ``finish_ms`` the mean
    time for the last client to succeed, ``p50_ms``/``p99_ms`` the clients' own
    success times over all runs, ``peak_origin_concurrency`` the most clients
    racing at once, ``peak_origin_rps`` the most writes in one second of any run.
    """
    rows: list[StrategyResult] = []
    work: dict[str, dict[int, float]] = {name: {} for name in BACKOFFS}
    finish_ms: dict[str, dict[int, float]] = {name: {} for name in BACKOFFS}
    per_n = {n: runs if isinstance(runs, int) else runs.get(n, 4) for n in clients}
    for n in clients:
        count = per_n[n]
        if progress is not None:
            progress(f"backoff: N={n} ({count} runs per backoff)")
        for name, backoff in BACKOFFS.items():
            rng = random.Random(f"{seed}:{name}:{n}")

            async def sweep(
                n: int = n, backoff: Backoff = backoff, rng: random.Random = rng, count: int = count
            ) -> list[tuple[int, list[float], int, float]]:
                return [await _one_run(n, backoff, rng) for _ in range(count)]

            results = run_virtual(sweep)
            writes = sum(r[0] for r in results) / count
            finish = sum(max(r[1]) for r in results) / count
            times = sorted(t for r in results for t in r[1])
            work[name][n] = writes
            finish_ms[name][n] = finish * 1000
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
    compared = [n for n in clients if n in PUBLISHED]
    if compared:
        gaps = [
            (abs(work[name][n] / PUBLISHED[n][name][0] - 1), abs(finish_ms[name][n] / PUBLISHED[n][name][1] - 1))
            for n in compared
            for name in BACKOFFS
        ]
        summary.append(
            f"against the published simulator (N={', '.join(map(str, compared))}): work within"
            f" {max(g[0] for g in gaps):.1%}, finish time within {max(g[1] for g in gaps):.1%}"
        )
    return ScenarioResult(
        name="backoff",
        title="backoff: AWS OCC contention, mean of "
        + ", ".join(f"{per_n[n]} run(s) at N={n}" for n in clients)
        + " (base 5 ms, cap 2 s, net |N(10,2)| ms)",
        strategies=rows,
        summary=summary,
        plot_x="clients (N)",
        plot_y="write calls (work)",
        plot_series={name: [(float(n), work[name][n]) for n in clients] for name in BACKOFFS},
    )
