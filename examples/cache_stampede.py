"""A cache stampede, with and without resilient.Cache.

1,000 concurrent requests hit one cold key of a slow origin (50 ms). Without
protection every one of them reaches the origin; through ``rs.Cache`` one does,
and the other 999 share its answer. When the value expires, callers are served
the stale value at once while a single background refresh runs.

Run it: ``python examples/cache_stampede.py``
"""

from __future__ import annotations

import asyncio
import time

import resilient as rs

# resilient is quiet by default: its events go to logging.getLogger("resilient")
# (or to structlog once you configure it). Uncomment to watch every decision:
# import logging; logging.basicConfig(level=logging.DEBUG)

CALLERS = 1_000


class Origin:
    """A slow backend that counts its calls and the most it served at once."""

    def __init__(self, clock: rs.Clock) -> None:
        self.clock = clock
        self.calls = 0
        self.in_flight = 0
        self.peak = 0

    async def product(self, id: int) -> dict[str, object]:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.clock.asleep(0.05)
            return {"id": id, "version": self.calls}
        finally:
            self.in_flight -= 1


async def naive(origin: Origin) -> None:
    await asyncio.gather(*(origin.product(7) for _ in range(CALLERS)))


async def cached(origin: Origin, cache: rs.Cache) -> list[dict[str, object]]:
    product = cache(origin.product)
    return list(await asyncio.gather(*(product(7) for _ in range(CALLERS))))


async def main(clock: rs.Clock | None = None) -> dict[str, int]:
    """Run the three rounds; ``clock`` is the real one unless a test passes a FakeClock."""
    clock = clock or rs.Clock()
    plain = Origin(clock)
    await naive(plain)
    print(f"naive:  {CALLERS} callers -> {plain.calls} origin calls (peak {plain.peak} at once)")

    origin = Origin(clock)
    cache = rs.Cache(ttl=0.2, ttl_jitter=0.02, stale_ttl=5, key="product:{id}", clock=clock)
    try:
        started = time.perf_counter()
        results = await cached(origin, cache)
        took = time.perf_counter() - started
        assert all(r == results[0] for r in results)
        print(f"cached: {CALLERS} callers -> {origin.calls} origin call in {took * 1000:.0f} ms")

        await clock.asleep(0.25)  # the value expires (it stays servable as stale for 5 s more)
        started = time.perf_counter()
        stale = await cached(origin, cache)
        took = time.perf_counter() - started
        print(
            f"stale:  {CALLERS} callers served version {stale[0]['version']} in {took * 1000:.0f} ms, "
            "while one refresh runs"
        )
        for _ in range(100):  # until the background refresh has written the new version
            if origin.calls >= 2 and not origin.in_flight:
                break
            await clock.asleep(0.01)
        fresh = await cached(origin, cache)
        print(f"fresh:  now version {fresh[0]['version']}; origin calls in all: {origin.calls}")
    finally:
        await cache.aclose()
    stats = cache.stats()
    print("stats: ", stats)
    return {"naive_calls": plain.calls, "cached_calls": origin.calls, **stats}


if __name__ == "__main__":
    asyncio.run(main())
