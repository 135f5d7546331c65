"""Happy-path overhead of Retry and of a five-policy pipeline, beside tenacity, stamina and backoff;
and what watching them with resilient.metrics (Prometheus and OpenTelemetry) adds per call (goal <= 300 ns).

Run: python -m benchmarks.overhead [--metrics]   (--metrics: only the cost of watching)
Peers: pip install -e ".[bench]"; metrics: ".[prometheus,otel]".
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import resilient as rs
from benchmarks._util import ans_per_call, ns_per_call, quiet, table


def noop() -> int:
    return 1


async def anoop() -> int:
    return 1


def five_policy_pipeline() -> rs.Pipeline:
    """Fallback, CircuitBreaker, Retry, Timeout, Bulkhead where they exist (Retry stands in otherwise)."""
    options: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("Fallback", (), {"value": 0}),
        ("CircuitBreaker", (), {}),
        ("Retry", (), {}),
        ("Timeout", (30,), {}),
        ("Bulkhead", (1_000,), {}),
    ]
    policies: list[rs.Policy] = []
    for name, args, kwargs in options:
        cls = getattr(rs, name, None)
        policies.append(cls(*args, **kwargs) if cls is not None else rs.Retry())
    return rs.pipeline(*policies)


def peers() -> tuple[dict[str, Any], dict[str, Any]]:
    sync: dict[str, Any] = {}
    asy: dict[str, Any] = {}
    try:
        import tenacity

        sync["tenacity @retry"] = tenacity.retry(stop=tenacity.stop_after_attempt(3))(noop)
        asy["tenacity @retry"] = tenacity.retry(stop=tenacity.stop_after_attempt(3))(anoop)
    except ImportError:
        pass
    try:
        import stamina

        sync["stamina @retry"] = stamina.retry(on=Exception, attempts=3)(noop)
        asy["stamina @retry"] = stamina.retry(on=Exception, attempts=3)(anoop)
    except ImportError:
        pass
    try:
        import backoff

        sync["backoff @on_exception"] = backoff.on_exception(backoff.expo, Exception, max_tries=3)(noop)
        asy["backoff @on_exception"] = backoff.on_exception(backoff.expo, Exception, max_tries=3)(anoop)
    except ImportError:
        pass
    return sync, asy


def main() -> None:
    quiet()
    if "--metrics" in sys.argv[1:]:  # only the cost of watching
        report_watched()
        return
    retry = rs.Retry()
    budgeted = rs.Retry(budget=rs.RetryBudget())
    pipe = five_policy_pipeline()
    sync_peers, async_peers = peers()

    rows = [
        ("bare call", ns_per_call(noop)),
        ("resilient Retry", ns_per_call(retry(noop))),
        ("resilient Retry + RetryBudget", ns_per_call(budgeted(noop))),
        (f"resilient {pipe!r}", ns_per_call(pipe(noop))),
    ]
    rows += [(name, ns_per_call(fn)) for name, fn in sync_peers.items()]
    table("sync, happy path", rows, baseline="bare call")
    verdict(rows)

    arows = [
        ("bare await", ans_per_call(anoop)),
        ("resilient Retry", ans_per_call(retry(anoop))),
        ("resilient Retry + RetryBudget", ans_per_call(budgeted(anoop))),
        (f"resilient {pipe!r}", ans_per_call(pipe(anoop))),
    ]
    arows += [(name, ans_per_call(fn)) for name, fn in async_peers.items()]
    table("async, happy path", arows, baseline="bare await")
    verdict(arows)
    spipe = next(v for k, v in rows if k.startswith("resilient Pipeline"))
    apipe = next(v for k, v in arows if k.startswith("resilient Pipeline"))
    print(f"  async / sync five-policy pipeline = {apipe / spipe:.2f} (goal <= 2)")
    event_cost()

    report_watched()


def report_watched() -> None:
    measured = watched_rows()
    if measured is not None:
        metrics_table("sync", measured[0])
        metrics_table("async", measured[1])


def watched_rows() -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]] | None:
    """(name, unwatched ns, watched ns) for the same policies with and without metrics watching them."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from prometheus_client import CollectorRegistry

        from resilient.metrics import OpenTelemetry, Prometheus
    except ImportError as exc:
        print(f"\nmetrics overhead skipped: {exc}")
        return None
    prom = Prometheus(CollectorRegistry())
    otel = OpenTelemetry(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    def make() -> dict[str, rs.Policy]:
        return {"Retry": rs.Retry(), "five-policy pipeline": five_policy_pipeline(), "Cache hit": rs.Cache(ttl=3600)}

    plain, watched = make(), make()
    for name, policy in watched.items():
        prom.watch(policy, name)
        otel.watch(policy, name)
    sync, asy = [], []
    for name in plain:
        fn, wfn = plain[name](noop), watched[name](noop)
        afn, awfn = plain[name](anoop), watched[name](anoop)
        fn(), wfn()  # a cache's first call is its miss: time the hits
        asyncio.run(afn()), asyncio.run(awfn())
        # interleaved rounds, the best of each side: a busy machine's drift hits both alike
        sync.append((name, *_paired(lambda f: ns_per_call(f, n=5_000, repeat=1), fn, wfn)))
        asy.append((name, *_paired(lambda f: ans_per_call(f, n=5_000, repeat=1), afn, awfn)))
    prom.close()
    otel.close()
    return sync, asy


def _paired(measure: Any, plain: Any, watched: Any, rounds: int = 21) -> tuple[float, float]:
    a = b = float("inf")
    for _ in range(rounds):
        a = min(a, measure(plain))
        b = min(b, measure(watched))
    return a, b


def metrics_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}: cost of watching with Prometheus + OpenTelemetry (goal: <= 300 ns per call)")
    print(f"  {'':40} {'ns/call':>10} {'watched':>10} {'added ns':>10}")
    for name, plain, watched in rows:
        print(f"  {name:40} {plain:10.0f} {watched:10.0f} {watched - plain:10.0f}")


def event_cost() -> None:
    """What one event costs per route: unconfigured (quiet), stdlib filtered out, structlog filtered out."""
    import subprocess
    import sys

    code = (
        "import logging, sys, time, structlog\n"
        "from resilient.core.events import emit\n"
        "mode = sys.argv[1]\n"
        "if mode == 'structlog':\n"
        "    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))\n"
        "if mode == 'stdlib':\n"
        "    logging.basicConfig(level=logging.WARNING)\n"
        "best = float('inf')\n"
        "for _ in range(5):\n"
        "    t0 = time.perf_counter_ns()\n"
        "    for _ in range(100_000):\n"
        "        emit('retry.attempt', operation='op', key=None, attempt=1, delay=0.1)\n"
        "    best = min(best, (time.perf_counter_ns() - t0) / 100_000)\n"
        "print(best)\n"
    )
    rows = []
    for mode, label in (
        ("none", "emit, nothing configured (quiet default)"),
        ("stdlib", "emit, logging at WARNING (debug event dropped)"),
        ("structlog", "emit, structlog filtering at WARNING"),
    ):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
        rows.append((label, float(done.stdout)))
    table("one debug event (fresh interpreter per route)", rows, baseline=rows[0][0])


def verdict(rows: list[tuple[str, float]]) -> None:
    d = dict(rows)
    ours = d["resilient Retry"]
    pipe = next(v for k, v in d.items() if k.startswith("resilient Pipeline"))
    if "backoff @on_exception" in d:
        print(f"  Retry / backoff.on_exception = {ours / d['backoff @on_exception']:.2f} (goal <= 1)")
    if "tenacity @retry" in d:
        print(f"  five-policy pipeline / tenacity @retry = {pipe / d['tenacity @retry']:.2f} (goal < 0.5)")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
