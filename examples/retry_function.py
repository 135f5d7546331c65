"""Retry a flaky function, sync and async, with full jitter and a shared retry budget.

Run: python examples/retry_function.py
"""

from __future__ import annotations

import asyncio

import resilient as rs

budget = rs.RetryBudget(ratio=0.1, min_per_second=10, window=10)
retry = rs.Retry(
    attempts=4,
    backoff=rs.FullJitter(0.01, 0.2),  # small delays so the example runs in a blink
    on=rs.errors(ConnectionError, TimeoutError),
    budget=budget,
)

failures = {"sync": 2, "async": 2}


@retry
def fetch_price(product_id: int) -> float:
    """Fails twice, then answers: the way a dependency blips."""
    if failures["sync"] > 0:
        failures["sync"] -= 1
        raise ConnectionError("connection reset by peer")
    return 9.99 + product_id


@retry
async def afetch_price(product_id: int) -> float:
    """The same, for asyncio: one Retry object serves both worlds."""
    await asyncio.sleep(0)
    if failures["async"] > 0:
        failures["async"] -= 1
        raise TimeoutError("read timed out")
    return 19.99 + product_id


def main() -> None:
    print(f"sync price:  {fetch_price(1):.2f}")
    print(f"async price: {asyncio.run(afetch_price(1)):.2f}")
    print(f"retry stats: {retry.stats()}")


if __name__ == "__main__":
    main()
