"""Collapse 1,000 product lookups into a handful of batch queries (Hystrix's collapser, DataLoader).

Each page view asks for one product at a time; rs.Batch gathers the ids that
arrive within 5 ms (or 100 of them) into one call of the batch function.

Run: python examples/batch_loader.py
"""

from __future__ import annotations

import asyncio
import logging

import structlog

import resilient as rs

# resilient tells every decision to structlog at debug level; show warnings only.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

queries: list[int] = []


@rs.Batch(window=0.005, max_size=100)
async def products(ids: list[int]) -> dict[int, str]:
    """One query for many ids (``SELECT ... WHERE id IN (...)``); unknown ids are simply absent."""
    queries.append(len(ids))
    await asyncio.sleep(0.02)  # the database's latency
    return {i: f"product #{i}" for i in ids if i < 1000}


async def main() -> None:
    names = await asyncio.gather(*(products.aload(i) for i in range(1000)))
    print(f"loaded {len(names)} products in {len(queries)} queries of {queries[0]} ids")
    same = await asyncio.gather(*(products.aload(7) for _ in range(50)))
    print(f"50 loads of one id: {len(set(same))} value, {len(queries) - 10} more query")
    try:
        await products.aload(5000)
    except KeyError as exc:
        print(f"a missing id fails alone: KeyError({exc})")
    print(products.stats())


if __name__ == "__main__":
    asyncio.run(main())
