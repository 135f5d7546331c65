"""Happy-path overhead of Retry and of a five-policy pipeline, beside tenacity, stamina and backoff.

Run: python -m benchmarks.overhead   (peers: pip install -e ".[bench]")
"""

from __future__ import annotations

import asyncio
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
