"""``resilient herd --real``: the expiry herd against a real loopback HTTP origin, in real time.

The parent process serves the origin (asyncio, 127.0.0.1, a free port): each
``GET /item/<name>`` takes ``latency`` seconds and at most ``capacity`` run at
once (the rest queue). ``processes`` worker processes (spawned, started
together) each send their share of the load through httpx for ``duration``
seconds, once per strategy:

* ``naive``: cache-aside (a GET/SET on Redis when ``redis_url`` is given,
  else a dict per process), fixed TTL, immediate retries;
* ``combined``: ``rs.Cache`` (on ``rs.RedisStore`` when ``redis_url`` is
  given, else ``rs.MemoryStore`` per process) with stale serving and XFetch,
  around ``rs.Retry`` with a budget.

With Redis the whole fleet shares one cache and one lease per key, so each
refresh costs one origin call across every process; without it, one per
process. Everything is bounded in time; progress goes to ``progress``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import IO, Any

from .metrics import Recorder, ScenarioResult, StrategyResult, percentile

__all__ = ["LoopbackOrigin", "run_real"]

STRATEGIES = ("naive", "combined")


class LoopbackOrigin:
    """A tiny HTTP/1.1 origin on 127.0.0.1 with a concurrency cap (keep-alive, GET only)."""

    def __init__(self, recorder: Recorder, *, latency: float, capacity: int) -> None:
        self.recorder = recorder
        self.latency = latency
        self._slots = asyncio.Semaphore(capacity)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.version = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening, hang up on idle clients, let queries in service finish (at most 5 s)."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                body = await self._serve()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Python 3.11's stream server logs a cancelled handler as an error; we are shutting down.
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _serve(self) -> bytes:
        self.recorder.origin_started()
        try:
            async with self._slots:
                await asyncio.sleep(self.latency)
                self.version += 1
                return b'{"version": %d}' % self.version
        finally:
            self.recorder.origin_finished()


def _worker(
    strategy: str, url: str, redis_url: str | None, prefix: str, rate: float, duration: float, ttl: float, start: float
) -> dict[str, Any]:
    """One worker process: wait for the common start, then load the origin (see real_worker)."""
    from .real_worker import run_worker

    return asyncio.run(run_worker(strategy, url, redis_url, prefix, rate, duration, ttl, start))


async def _run_strategy(
    strategy: str,
    pool: ProcessPoolExecutor,
    *,
    processes: int,
    redis_url: str | None,
    duration: float,
    rate: float,
    ttl: float,
    progress: IO[str] | None,
) -> StrategyResult:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    recorder = Recorder(lambda: loop.time() - t0)
    origin = LoopbackOrigin(recorder, latency=0.2, capacity=50)
    await origin.start()
    try:
        start = time.time() + 2.0  # every worker starts at once, after its imports
        prefix = f"resilient:lab:{uuid.uuid4().hex[:8]}:"
        url = f"http://127.0.0.1:{origin.port}"
        futures = [
            loop.run_in_executor(
                pool, _worker, strategy, url, redis_url, prefix, rate / processes, duration, ttl, start
            )
            for _ in range(processes)
        ]
        everything = asyncio.gather(*futures)
        bound = duration + 30.0
        deadline = loop.time() + bound
        while not everything.done() and loop.time() < deadline:
            await asyncio.wait([everything], timeout=0.25)
            if progress is not None:
                elapsed = min(duration, time.time() - start)
                bar = "starting workers" if elapsed < 0 else "#" * int(20 * elapsed / duration)
                progress.write(
                    f"\r  {strategy:<9} [{bar:<20}] {max(0.0, elapsed):4.1f}/{duration:g} s"
                    f"  origin calls {recorder.origin_calls}"
                )
                progress.flush()
        if progress is not None:
            progress.write("\n")
        reports: list[dict[str, Any]] = await asyncio.wait_for(everything, timeout=max(0.1, deadline - loop.time()))
    finally:
        await origin.aclose()
    latencies = sorted(x for r in reports for x in r["latencies"])
    refreshes = recorder.refreshes
    return StrategyResult(
        name=strategy,
        origin_calls=recorder.origin_calls,
        peak_origin_concurrency=recorder.peak_concurrency,
        peak_origin_rps=recorder.peak_rps(),
        p50_ms=round(percentile(latencies, 50) * 1000, 1),
        p99_ms=round(percentile(latencies, 99) * 1000, 1),
        errors=sum(r["errors"] for r in reports),
        stale_served=sum(r["stale"] for r in reports),
        extra={
            "requests": len(latencies),
            "refreshes": refreshes,
            "calls_per_refresh": round(recorder.origin_calls / max(1, refreshes), 1),
        },
        series=recorder.series(loop.time() - t0),
    )


def run_real(
    *,
    processes: int = 1,
    redis_url: str | None = None,
    duration: float = 6.0,
    rate: float = 400.0,
    ttl: float = 2.0,
    strategies: tuple[str, ...] = STRATEGIES,
    progress: IO[str] | None = None,
) -> ScenarioResult:
    """Run each strategy for ``duration`` seconds across ``processes`` workers; one row each."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes!r}")
    if duration <= 0 or rate <= 0:
        raise ValueError(f"duration and rate must be > 0, got {duration!r} and {rate!r}")

    async def main() -> list[StrategyResult]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            return [
                await _run_strategy(
                    name,
                    pool,
                    processes=processes,
                    redis_url=redis_url,
                    duration=duration,
                    rate=rate,
                    ttl=ttl,
                    progress=progress,
                )
                for name in strategies
            ]

    rows = asyncio.run(main())
    where = f"Redis {redis_url}" if redis_url else "no Redis (one cache per process)"
    summary = [
        f"{processes} process(es), {rate:,.0f} requests/s in all for {duration:g} s, TTL {ttl:g} s, {where};"
        " origin 200 ms, 50 at once, on 127.0.0.1",
        "a refresh = an origin call begun while none was in flight (calls begun meanwhile join it);"
        " the first fill counts as one",
    ]
    return ScenarioResult(
        name="real",
        title=f"real: the expiry herd over HTTP, {processes} process(es), {where}",
        strategies=rows,
        summary=summary,
    )
