"""``token``: 30 services share one auth token, and it expires for all of them at once.

Each service handles 20 requests/s, each needing the token. The auth server
answers in 100 ms and holds 10 requests at once (then it queues); callers time
out after 1 s. The token (lifetime 10 s) was issued to every service at the
same moment, so it expires everywhere at once, mid-run.

* ``naive``: each service keeps the token and, on a request that finds it
  expired, fetches a new one (every such request does, until one lands).
* ``provider``: ``rs.TokenProvider`` per service, in process: one refresh per
  service, begun early and jittered while the old token still serves.
* ``provider+store``: ``rs.TokenProvider`` sharing one store across the fleet
  (as Redis would): one refresh for all 30 services.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import resilient as rs

from .metrics import Recorder, ScenarioResult, StrategyResult
from .origin import SimOrigin, open_loop
from .vloop import VirtualClock, run_virtual

__all__ = ["STRATEGIES", "run_token"]

STRATEGIES = ("naive", "provider", "provider+store")
TIMEOUT = 1.0


def _build(
    name: str,
    *,
    auth: SimOrigin,
    clock: rs.Clock,
    rng: random.Random,
    services: int,
    lifetime: float,
    first_expiry: float,
) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], None]]:
    """``get_token(service)`` for the strategy, and a function that ends the priming phase."""

    async def fetch_raw() -> tuple[str, float]:
        async with asyncio.timeout(TIMEOUT):
            version = await auth.fetch()
        return f"token-{version}", clock.time() + lifetime

    if name == "naive":
        held: list[tuple[str, float]] = [("token-0", first_expiry)] * services

        async def naive(service: int) -> Any:
            value, expires_at = held[service]
            if expires_at <= clock.time():
                value, expires_at = await fetch_raw()
                held[service] = (value, expires_at)
            return value

        return naive, lambda: None

    store = rs.MemoryStore() if name == "provider+store" else None

    priming = [True]

    async def fetch() -> Any:
        if priming[0]:  # the token every service was handed at the same moment
            return rs.Token("token-0", first_expiry)
        value, expires_at = await fetch_raw()
        return rs.Token(value, expires_at)

    providers: list[Any] = []
    for _ in range(services):
        options: dict[str, Any] = {"refresh_before": lifetime / 5, "clock": clock, "rng": rng}
        if store is not None:
            options["store"] = store
        providers.append(rs.TokenProvider(fetch, **options))

    async def provided(service: int) -> Any:
        return await providers[service].aget()

    def primed() -> None:
        priming[0] = False

    return provided, primed


async def _run_one(name: str, *, services: int, rate: float, lifetime: float, seed: int) -> StrategyResult:
    loop = asyncio.get_running_loop()
    clock = VirtualClock(loop)
    rng = random.Random(f"{seed}:token:{name}")
    auth = SimOrigin(Recorder(loop.time), latency=0.1, capacity=10)
    get, primed = _build(
        name,
        auth=auth,
        clock=clock,
        rng=rng,
        services=services,
        lifetime=lifetime,
        first_expiry=clock.time() + lifetime,
    )
    for service in range(services):  # every service starts with the same token, issued now
        await get(service)
    primed()
    recorder = auth.recorder = Recorder(loop.time)
    counter = 0

    async def request() -> None:
        nonlocal counter
        counter += 1
        await get(counter % services)

    await open_loop(recorder, request, rate=rate * services, duration=1.3 * lifetime, drain=10 * TIMEOUT)
    return recorder.result(name, until=loop.time())


def run_token(
    *,
    services: int = 30,
    rate: float = 20,
    lifetime: float = 10.0,
    strategies: tuple[str, ...] = STRATEGIES,
    seed: int = 1,
) -> ScenarioResult:
    """Run each strategy on a fresh virtual loop; one row each, plus the naive/shared-store ratio."""
    rows: list[StrategyResult] = []
    for name in strategies:

        async def one(name: str = name) -> StrategyResult:
            return await _run_one(name, services=services, rate=rate, lifetime=lifetime, seed=seed)

        rows.append(run_virtual(one))
    summary = []
    by_name = {r.name: r for r in rows}
    naive, shared = by_name.get("naive"), by_name.get("provider+store")
    if naive is not None and shared is not None:
        summary.append(
            f"auth calls for one expiry: naive {naive.origin_calls:,} / provider+store {shared.origin_calls:,}"
            f" = {naive.origin_calls / max(1, shared.origin_calls):,.0f}x"
        )
    summary.append(
        f"{services} services x {rate:g} requests/s; auth server 100 ms, 10 at once; token lifetime {lifetime:g} s,"
        " issued to all at once (one expiry in the run)"
    )
    return ScenarioResult(
        name="token",
        title=f"token: {services} services share a token that expires for all at once",
        strategies=rows,
        summary=summary,
        plot_y="auth calls in the last 1 s (sliding)",
        plot_log=True,
    )
