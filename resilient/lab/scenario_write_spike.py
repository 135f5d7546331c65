"""``write-spike``: a celebrity post fans out 50,000 writes in one second to a database that takes 500 a second.

The database applies rows in arrival order at ``capacity`` rows per second (a
batch of n rows costs n rows of that time: batching saves no work here, so the
comparison is fair). A query that would wait longer than ``max_wait`` seconds
for its turn is aborted by the database (a lock-wait or statement timeout):
not applied. A client that gives up waiting does not cancel its query, which
may still be applied later; its retry then writes the row again.

* ``naive`` — every write goes straight to the database through the library's
  ``rs.Retry`` (3 attempts, full jitter) and a 1 s ``rs.Timeout``: the spike
  arrives at once, the queue passes ``max_wait``, most writes are aborted, the
  retries add load while it is already drowning, and writes are lost.
* ``write-buffer`` — the same writes go into ``rs.WriteBuffer(rate=500)``: each
  put returns at once, and the worker feeds the database batches of 100 at the
  500 rows a second it takes, losing none; the price is the backlog's drain time.

``resilient herd`` runs a tenth of the spike against a tenth of the database
(:data:`DEFAULT`: the same overload, the same drain time); ``--full`` runs it whole.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["DEFAULT", "FULL", "STRATEGIES", "SimDatabase", "run_write_spike"]

STRATEGIES = ("naive", "write-buffer")

#: The spike of DESIGN §3 (``resilient herd --full``): 50,000 writes in 1 s, a database of 500/s.
FULL: dict[str, Any] = {"writes": 50_000, "capacity": 500.0, "batch_size": 100}
#: The default run: a tenth of both (the same 100x overload and 100 s backlog), so the lab fits its minute;
#: the naive clients' 150,000 attempts of the full spike cost most of that minute by themselves.
DEFAULT: dict[str, Any] = {"writes": 5_000, "capacity": 50.0, "batch_size": 10}
TIMEOUT, ATTEMPTS = 1.0, 3


class QueryAborted(RuntimeError):
    """The database aborted a query that waited too long for its turn (not applied)."""


class SimDatabase:
    """Rows applied in arrival order at ``capacity`` per second; a query waiting past ``max_wait`` is aborted.

    Every row that arrives counts on the recorder (the database's load, rows per second).
    """

    def __init__(self, recorder: Recorder, *, capacity: float, max_wait: float) -> None:
        self.recorder = recorder
        self.capacity = capacity
        self.max_wait = max_wait
        self.free_at = 0.0
        self.applied: dict[Any, int] = {}  # row -> times applied
        self.aborted = 0
        self.last_applied = 0.0
        self._loop = asyncio.get_running_loop()

    def _submit(self, rows: list[Any]) -> asyncio.Future[None]:
        loop = self._loop
        now = loop.time()
        for _ in rows:
            self.recorder.origin_started()
        future: asyncio.Future[None] = loop.create_future()
        start = max(now, self.free_at)
        if start - now > self.max_wait:  # its turn would come too late: aborted after max_wait, no work done
            loop.call_at(now + self.max_wait, self._abort, future, len(rows))
            return future
        self.free_at = start + len(rows) / self.capacity
        loop.call_at(self.free_at, self._apply, future, rows)
        return future

    def _apply(self, future: asyncio.Future[None], rows: list[Any]) -> None:
        for row in rows:
            self.recorder.origin_finished()
            self.applied[row] = self.applied.get(row, 0) + 1
        self.last_applied = self._loop.time()
        if not future.done():
            future.set_result(None)

    def _abort(self, future: asyncio.Future[None], n: int) -> None:
        for _ in range(n):
            self.recorder.origin_finished()
        self.aborted += n
        if not future.done():
            future.set_exception(QueryAborted("query aborted: waited too long for its turn"))

    async def write(self, row: Any) -> None:
        """One row (the naive client's write)."""
        await self._submit([row])

    async def write_batch(self, rows: list[Any]) -> None:
        """A multi-row insert (the buffer's write)."""
        await self._submit(list(rows))


async def _run_one(
    name: str, *, writes: int, spike: float, capacity: float, max_wait: float, batch: int, seed: int
) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    rng = random.Random(f"{seed}:write-spike:{name}")
    recorder = Recorder(loop.time, bucket=1.0)
    db = SimDatabase(recorder, capacity=capacity, max_wait=max_wait)
    rows = iter(range(writes))
    buffer: rs.WriteBuffer | None = None
    if name == "naive":
        retry = rs.Retry(attempts=ATTEMPTS, backoff=rs.FullJitter(0.1, 2.0), clock=clock, rng=rng)
        call = rs.pipeline(retry, rs.Timeout(TIMEOUT, clock=clock))(db.write)

        async def request() -> None:
            await call(next(rows))

    else:
        retry = rs.Retry(attempts=ATTEMPTS, backoff=rs.FullJitter(0.1, 2.0), clock=clock, rng=rng)
        buffer = rs.WriteBuffer(
            db.write_batch, rate=capacity, batch_size=batch, max_pending=writes, retry=retry, clock=clock
        )

        async def request() -> None:
            assert buffer is not None
            await buffer.aput(next(rows))

    await open_loop(recorder, request, rate=writes / spike, duration=spike, drain=300.0)
    if buffer is not None:
        await buffer.aclose()
    await asyncio.sleep(max_wait + TIMEOUT)  # queries the clients gave up on still finish (or abort)
    lost = writes - len(db.applied)
    duplicates = sum(n - 1 for n in db.applied.values())
    drained = db.last_applied
    row = recorder.result(name, until=max(drained, spike) + 1.0)
    row.extra.update({"lost": lost, "duplicates": duplicates, "aborted": db.aborted, "drain_s": round(drained, 1)})
    if buffer is not None:
        row.extra["dead_lettered"] = buffer.stats()["dead_lettered"]
    return row


def run_write_spike(
    *,
    writes: int = 50_000,
    spike: float = 1.0,
    capacity: float = 500.0,
    max_wait: float = 2.0,
    batch_size: int = 100,
    strategies: tuple[str, ...] = STRATEGIES,
    seed: int = 1,
) -> ScenarioResult:
    """Run each strategy through the spike; rows carry lost, duplicates, aborted and drain_s too."""
    rows: list[StrategyResult] = []
    for name in strategies:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(
                name, writes=writes, spike=spike, capacity=capacity, max_wait=max_wait, batch=batch_size, seed=seed
            )

        rows.append(run_virtual(one))
    by_name = {r.name: r for r in rows}
    summary = []
    naive, buffered = by_name.get("naive"), by_name.get("write-buffer")
    if naive is not None and buffered is not None:
        summary.append(
            f"peak load on the database: naive {naive.peak_origin_rps:,.0f} rows/s, write-buffer"
            f" {buffered.peak_origin_rps:,.0f} rows/s (it takes {capacity:,.0f}/s)"
        )
        summary.append(
            f"lost writes: naive {naive.extra['lost']:,.0f} of {writes:,}, write-buffer {buffered.extra['lost']:,.0f};"
            f" the buffer's price: the backlog drains in {buffered.extra['drain_s']:,.1f} s"
        )
    summary.append(
        f"{writes:,} writes in {spike:g} s; the database applies {capacity:,.0f} rows/s and aborts a query"
        f" waiting over {max_wait:g} s; naive: {ATTEMPTS} attempts, {TIMEOUT:g} s timeout;"
        " peak = busiest one-second window of rows arriving at the database (the plot's y axis)"
    )
    return ScenarioResult(
        name="write-spike",
        title=f"write-spike: {writes:,} writes in {spike:g} s to a database that takes {capacity:,.0f}/s",
        strategies=rows,
        summary=summary,
        plot_y="rows arriving at the database / s",
        plot_log=True,  # 50,000/s beside 500/s: both lines readable
    )
