"""Fleet mode on Redis against a bare redis-py GET and the peers (dogpile.cache, cashews, aiocache).

Run: ``python -m benchmarks.redis`` (starts its own redis-server on a free loopback port).

1. Median latency of a cache hit, as a ratio to a bare redis-py ``GET`` of the
   same key (sync and asyncio), for ``RedisStore.get``, ``rs.Cache`` over a
   RedisStore (when the cache is built), dogpile.cache's Redis region and
   cashews' Redis backend. Goal: ours within 1.15x of the bare GET.
2. Origin calls for one cold key hit by 4 processes x 25 callers at once (origin
   takes 0.3 s): ours (lease in Lua), dogpile (``distributed_lock=True``),
   cashews (``lock=True``), aiocache (``cached_stampede``). Goal: 1.
3. The near cache (``RedisStore(..., near=rs.NearCache())``):
   a. a near hit through ``rs.Cache`` against ``cachetools.cached(TTLCache)`` on the
      same function (async: the same TTLCache lookup in an async wrapper, as
      cachetools has none). Goal: <= 2x, sync and async.
   b. invalidation propagation across 4 processes: from the writer's ``set()`` /
      ``invalidate()`` returning to every other process having dropped its copy
      (p50/p99). Goal: p99 < 10 ms on loopback.
   c. the cold key of 2 with a near cache (waiters woken by the holder's write)
      against without (bounded polling): p99 latency vs 1.05x the origin, and
      Redis commands per call (sent by the clients; the server's count, which
      includes the commands inside scripts, in brackets). Goal: p99 <= 1.05x, <= 3.

``--only near`` runs part 3 alone (about 20 s); ``--only near-cold`` its cold key alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
import structlog

import resilient as rs
from resilient.stores.base import Entry

WARMUP, CALLS = 200, 3000
PROCESSES, CALLERS, ORIGIN_SECONDS = 4, 25, 0.3
ROOT = Path(__file__).resolve().parents[1]


# -- a private redis-server ------------------------------------------------------


def start_server() -> tuple[subprocess.Popen[bytes], int, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    workdir = tempfile.mkdtemp(prefix="resilient-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    client.close()
    return proc, port, workdir


# -- 1. hit latency -----------------------------------------------------------------


def sample_sync(contenders: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Per-call latencies, the contenders taking turns call by call (so load swings hit all alike)."""
    out: dict[str, list[float]] = {name: [] for name in contenders}
    fns = list(contenders.items())
    for _ in range(WARMUP):
        for _, fn in fns:
            fn()
    clock = time.perf_counter
    for i in range(CALLS):
        for name, fn in fns[i % len(fns) :] + fns[: i % len(fns)]:  # rotated: no one always goes first
            t0 = clock()
            fn()
            out[name].append(clock() - t0)
    return out


async def sample_async(contenders: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, list[float]]:
    """The async twin of :func:`sample_sync`."""
    out: dict[str, list[float]] = {name: [] for name in contenders}
    fns = list(contenders.items())
    for _ in range(WARMUP):
        for _, fn in fns:
            await fn()
    clock = time.perf_counter
    for i in range(CALLS):
        for name, fn in fns[i % len(fns) :] + fns[: i % len(fns)]:
            t0 = clock()
            await fn()
            out[name].append(clock() - t0)
    return out


def sync_contenders(port: int) -> dict[str, Callable[[], Any]]:
    from dogpile.cache import make_region

    bare = redis.Redis(port=port)
    bare.set("bare", b"x" * 64)
    store = rs.RedisStore(redis.Redis(port=port), prefix="ours:")
    now = time.time()
    store.set("hot", Entry("x" * 64, now + 3600, now + 7200), now=now)
    region = make_region().configure(
        "dogpile.cache.redis", expiration_time=3600, arguments={"host": "127.0.0.1", "port": port}
    )
    dogpile_hot = region.cache_on_arguments()(lambda: "x" * 64)
    contenders: dict[str, Callable[[], Any]] = {
        "bare redis-py GET": lambda: bare.get("bare"),
        "RedisStore.get": lambda: store.get("hot"),
    }
    cache = rs.Cache(ttl=3600, store=rs.RedisStore(redis.Redis(port=port), prefix="oc:"))
    contenders["rs.Cache hit"] = cache(lambda: "x" * 64)
    contenders["dogpile.cache hit"] = dogpile_hot
    return contenders


async def async_contenders(port: int) -> dict[str, Callable[[], Awaitable[Any]]]:
    from cashews import Cache as CashewsCache

    bare = redis.asyncio.Redis(port=port)
    await bare.set("bare", b"x" * 64)
    store = rs.RedisStore(redis.asyncio.Redis(port=port), prefix="ours:")
    now = time.time()
    await store.aset("ahot", Entry("x" * 64, now + 3600, now + 7200), now=now)
    cashews = CashewsCache()
    cashews.setup(f"redis://127.0.0.1:{port}/0")

    @cashews(ttl="1h")
    async def cashews_hot() -> str:
        return "x" * 64

    contenders: dict[str, Callable[[], Awaitable[Any]]] = {
        "bare redis.asyncio GET": lambda: bare.get("bare"),
        "RedisStore.aget": lambda: store.aget("ahot"),
    }
    cache = rs.Cache(ttl=3600, store=rs.RedisStore(redis.asyncio.Redis(port=port), prefix="oca:"))

    async def ours() -> str:
        return "x" * 64

    contenders["rs.Cache hit (async)"] = cache(ours)
    contenders["cashews hit"] = cashews_hot
    return contenders


def report_latency(title: str, samples: dict[str, list[float]]) -> None:
    names = list(samples)
    base = statistics.median(samples[names[0]])
    print(f"\n{title}: median hit latency ({CALLS} calls each, taking turns call by call)")
    for name in names:
        m = statistics.median(samples[name])
        print(f"  {name:<26} {m * 1e6:8.1f} us   {m / base:5.2f}x")


def bench_latency(port: int) -> None:
    report_latency("sync", sample_sync(sync_contenders(port)))

    async def run_async() -> dict[str, list[float]]:
        return await sample_async(await async_contenders(port))

    report_latency("asyncio", asyncio.run(run_async()))


# -- 2. origin calls per cold key, 4 processes x 25 callers ---------------------------


class Origin:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def fetch(self) -> str:
        with self.lock:
            self.calls += 1
            n = self.calls
        time.sleep(ORIGIN_SECONDS)
        return f"{os.getpid()}:{n}"

    async def afetch(self) -> str:
        self.calls += 1
        n = self.calls
        await asyncio.sleep(ORIGIN_SECONDS)
        return f"{os.getpid()}:{n}"


def run_threads(fn: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * CALLERS
    barrier = threading.Barrier(CALLERS)

    def runner(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:
            value = f"error: {exc!r}"
        results[i] = (value, time.perf_counter() - t0)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


async def run_tasks(fn: Callable[[], Awaitable[Any]]) -> list[Any]:
    async def one() -> Any:
        t0 = time.perf_counter()
        try:
            value = await fn()
        except Exception as exc:
            value = f"error: {exc!r}"
        return value, time.perf_counter() - t0

    return list(await asyncio.gather(*(one() for _ in range(CALLERS))))


def worker(name: str, port: int, start_at: float) -> dict[str, Any]:
    origin = Origin()
    key = "cold"
    if name == "ours":
        cache = rs.Cache(ttl=60, lock_ttl=5, store=rs.RedisStore(redis.Redis(port=port)), key=lambda: key)
        fn: Callable[[], Any] = cache(origin.fetch)
    elif name == "dogpile":
        from dogpile.cache import make_region

        region = make_region().configure(
            "dogpile.cache.redis",
            expiration_time=60,
            arguments={
                "host": "127.0.0.1",
                "port": port,
                "distributed_lock": True,
                "thread_local_lock": False,
                "lock_timeout": 5,
            },
        )
        fn = lambda: region.get_or_create(key, origin.fetch)  # noqa: E731
    time.sleep(max(0.0, start_at - time.time()))
    sync = name in ("ours", "dogpile")
    results = run_threads(fn) if sync else asyncio.run(async_worker(name, port, origin, key))
    values = sorted({str(v) for v, _ in results})
    return {"calls": origin.calls, "values": values, "slowest": max(t for _, t in results)}


async def async_worker(name: str, port: int, origin: Origin, key: str) -> list[Any]:
    if name == "cashews":
        from cashews import Cache as CashewsCache

        cashews = CashewsCache()
        cashews.setup(f"redis://127.0.0.1:{port}/0")
        afn = cashews(ttl="1m", key=key, lock=True)(origin.afetch)
    else:
        from aiocache import Cache as AioCache
        from aiocache import cached_stampede

        afn = cached_stampede(
            lease=5, ttl=60, key=key, cache=AioCache.REDIS, endpoint="127.0.0.1", port=port, noself=False
        )(origin.afetch)
    return await run_tasks(afn)


def bench_cold(port: int) -> None:
    print(f"\norigin calls for one cold key: {PROCESSES} processes x {CALLERS} callers, origin {ORIGIN_SECONDS}s")
    names = ["ours", "dogpile", "cashews", "aiocache"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in names:
        redis.Redis(port=port).flushall()
        start_at = time.time() + 2.0
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.redis",
            "--worker",
            name,
            "--port",
            str(port),
            "--start",
            repr(start_at),
        ]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT) for _ in range(PROCESSES)]
        outs = [json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in procs]
        calls = sum(o["calls"] for o in outs)
        values = set().union(*(o["values"] for o in outs))
        slowest = max(o["slowest"] for o in outs)
        print(f"  {name:<10} origin calls: {calls:3d}   distinct values: {len(values):3d}", end="")
        print(f"   slowest caller: {slowest:.2f}s")


# -- 3. the near cache -----------------------------------------------------------------

NEAR_ROUNDS, NEAR_BATCH = 7, 20_000
PROPAGATION_ROUNDS = 150


def time_batches(contenders: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Seconds per call: the best of NEAR_ROUNDS batches of NEAR_BATCH calls, contenders taking turns by batch."""
    best = {name: float("inf") for name in contenders}
    for _ in range(NEAR_ROUNDS):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            for _ in range(NEAR_BATCH):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / NEAR_BATCH)
    return best


async def atime_batches(contenders: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, float]:
    """The async twin of :func:`time_batches`."""
    best = {name: float("inf") for name in contenders}
    for _ in range(NEAR_ROUNDS):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            for _ in range(NEAR_BATCH):
                await fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / NEAR_BATCH)
    return best


def report_near_hits(title: str, best: dict[str, float]) -> None:
    names = list(best)
    base = best[names[0]]
    print(f"\n{title}: a hit, best of {NEAR_ROUNDS} batches of {NEAR_BATCH} calls")
    for name in names:
        print(f"  {name:<40} {best[name] * 1e6:8.3f} us   {best[name] / base:5.2f}x")


def bench_near_hits(port: int) -> None:
    import cachetools

    def product(n: int) -> dict[str, int]:
        return {"n": n}

    ttl: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(maxsize=10_000, ttl=3600)
    peer = cachetools.cached(ttl)(product)
    store = rs.RedisStore(redis.Redis(port=port), prefix="near-bench:", near=rs.NearCache())
    assert store.near is not None and store.near.wait_live(10)
    ours = rs.Cache(ttl=3600, store=store, key="product:{n}")(product)
    plain = rs.Cache(ttl=3600, store=rs.MemoryStore(), key="product:{n}")(product)
    for _ in range(3):
        peer(1), ours(1), plain(1)
    assert store.near_get("product:1") is not None
    report_near_hits(
        "near hit, sync",
        time_batches(
            {
                "cachetools.cached(TTLCache)": lambda: peer(1),
                "rs.Cache on RedisStore(near=NearCache())": lambda: ours(1),
                "rs.Cache on MemoryStore (for reference)": lambda: plain(1),
            }
        ),
    )
    store.close()

    async def run_async() -> None:
        astore = rs.RedisStore(redis.asyncio.Redis(port=port), prefix="near-bench-a:", near=rs.NearCache())
        assert astore.near is not None and astore.near.wait_live(10)
        attl: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(maxsize=10_000, ttl=3600)
        from cachetools.keys import hashkey

        async def aproduct(n: int) -> dict[str, int]:
            return {"n": n}

        async def apeer(n: int) -> dict[str, int]:  # cachetools.cached's logic, awaited
            k = hashkey(n)
            try:
                value: dict[str, int] = attl[k]
                return value
            except KeyError:
                pass
            value = await aproduct(n)
            attl[k] = value
            return value

        aours = rs.Cache(ttl=3600, store=astore, key="product:{n}")(aproduct)
        for _ in range(3):
            await apeer(1), await aours(1)
        assert astore.near_get("product:1") is not None
        best = await atime_batches(
            {
                "TTLCache lookup in an async wrapper": lambda: apeer(1),
                "rs.Cache on RedisStore(aclient, near=...)": lambda: aours(1),
            }
        )
        report_near_hits("near hit, asyncio", best)
        await astore.aclose()

    asyncio.run(run_async())


class NearWorker:
    """One process of ``tests.redis.near_worker`` (the acceptance tests' fleet member)."""

    def __init__(self, port: int, mode: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "tests.redis.near_worker", f"redis://127.0.0.1:{port}/0", mode]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    def ready(self) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdout is not None
        self.send(json.dumps(cmd))
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.proc.communicate(timeout=60)[0].splitlines()[-1])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def bench_propagation(port: int) -> None:
    workers = [NearWorker(port, "serve") for _ in range(PROCESSES)]
    try:
        for w in workers:
            w.ready()
        writer, readers = workers[0], workers[1:]
        every, slowest, missed = [], [], 0
        for i in range(PROPAGATION_ROUNDS):
            for r in readers:
                r.ask(op="read", key="k")
                r.ask(op="read", key="k")
                r.ask(op="arm", key="k")
            op = "invalidate" if i % 2 else "write"
            wrote = writer.ask(op=op, key="k", value=f"v{i}")["at"]
            lags = []
            for r in readers:
                woken = r.ask(op="woken", key="k")
                if not woken["woken"] or woken["held"]:
                    missed += 1
                    continue
                lags.append(max(0.0, woken["at"] - wrote))
            every += lags
            if lags:
                slowest.append(max(lags))
    finally:
        for w in workers:
            w.stop()
    print(f"\ninvalidation propagation: {PROCESSES} processes, {PROPAGATION_ROUNDS} writes/invalidations")
    for label, lags in (("to each other process", every), ("to every other process", slowest)):
        p50, p99 = percentile(lags, 0.5) * 1e3, percentile(lags, 0.99) * 1e3
        print(f"  {label:<26} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    print(f"  copies not dropped within 10 s: {missed}   (goal: p99 < 10 ms, 0 missed)")


def server_commands(port: int) -> int:
    stats = redis.Redis(port=port).info("commandstats")
    skip = ("info", "config", "hello", "subscribe", "flushall", "client", "ping")
    return sum(int(v["calls"]) for name, v in stats.items() if not any(w in name for w in skip))


def bench_near_cold(port: int) -> None:
    print(f"\ncold key with a near cache: {PROCESSES} processes x {CALLERS} callers, origin {ORIGIN_SECONDS}s")
    goal = 1.05 * ORIGIN_SECONDS
    for mode in ("herd-poll", "herd", "aherd-poll", "aherd"):
        redis.Redis(port=port).flushall()
        workers = [NearWorker(port, mode) for _ in range(PROCESSES)]
        try:
            for w in workers:
                w.ready()
            redis.Redis(port=port).config_resetstat()
            go = time.time()
            for w in workers:
                w.send("go")
            outs = [w.result() for w in workers]
        finally:
            for w in workers:
                w.stop()
        latencies = [t for o in outs for t in o["latencies"]]
        [window] = [o["origin"] for o in outs if o["origin"]]
        after = [max(0.0, t - window[1]) for o in outs for t in o["finished"]]  # done after the origin returned
        calls = sum(o["calls"] for o in outs)
        sent = sum(o["commands"] for o in outs) / len(latencies)
        on_server = server_commands(port) / len(latencies)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        name = ("sync" if mode.startswith("herd") else "asyncio") + (", polling" if "poll" in mode else ", near")
        print(
            f"  {name:<16} origin calls: {calls}   p50 {p50 * 1e3:5.0f} ms   p99 {p99 * 1e3:5.0f} ms"
            f" = {p99 / ORIGIN_SECONDS:4.2f}x origin (goal <= 1.05x: {'met' if p99 <= goal else 'NOT met'})"
            f"   commands/call: {sent:4.2f} [{on_server:4.2f} on the server]"
        )
        print(
            f"  {'':<16} after the origin returned: p50 {percentile(after, 0.5) * 1e3:5.1f} ms"
            f"   p99 {percentile(after, 0.99) * 1e3:5.1f} ms"
            f"   (the origin began {(window[0] - go) * 1e3:.0f} ms after go)"
        )


def bench_near(port: int) -> None:
    bench_near_hits(port)
    bench_propagation(port)
    bench_near_cold(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker")
    parser.add_argument("--only", choices=["near", "near-cold"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--start", type=float)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # quiet
    if args.worker:
        print(json.dumps(worker(args.worker, args.port, args.start)))
        return
    proc, port, workdir = start_server()
    try:
        print(f"redis-server {redis.Redis(port=port).info('server')['redis_version']} on 127.0.0.1:{port}")
        if args.only == "near-cold":
            bench_near_cold(port)
            return
        if args.only != "near":
            bench_latency(port)
            bench_cold(port)
        bench_near(port)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
