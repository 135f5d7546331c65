"""A breaker and a bulkhead per host, a timeout, and a fallback: one pipeline for sync and async code.

Run: ``python examples/breaker_per_host.py``. No network: the "hosts" are
local functions, one of which is down. The flaky host's breaker opens after
three failures and the fallback answers instead; the healthy host is untouched.
"""

from __future__ import annotations

import asyncio

import resilient as rs

guarded = rs.pipeline(
    rs.Fallback(handler=lambda outcome: f"fallback ({type(outcome.error).__name__})"),
    rs.PerKey(
        lambda host: rs.pipeline(
            rs.CircuitBreaker(failure_threshold=3, reset_timeout=30, name=host),  # events carry key=host
            rs.Bulkhead(10, max_queue=10),
        ),
        key="{host}",
    ),
    rs.Timeout(1.0),
)


@guarded
def fetch(host: str, path: str = "/") -> str:
    if host == "flaky.internal":
        raise ConnectionError(f"{host} refused the connection")
    return f"200 from {host}{path}"


@guarded
async def afetch(host: str, path: str = "/") -> str:
    await asyncio.sleep(0)
    if host == "flaky.internal":
        raise ConnectionError(f"{host} refused the connection")
    return f"200 from {host}{path}"


async def main() -> None:
    for i in range(5):
        print("sync ", fetch("flaky.internal", f"/item/{i}"))
    print("async", await afetch("flaky.internal"))
    print("async", await afetch("healthy.internal", "/item/1"))
    per_key = guarded.policies[1]
    assert isinstance(per_key, rs.PerKey)
    hosts = per_key.keys()  # least recently used first
    for host in hosts:
        hosts_pipeline = per_key.get(host)
        assert isinstance(hosts_pipeline, rs.Pipeline)
        print(f"{host:18} breaker: {hosts_pipeline.stats()['breaker']['state']}")


if __name__ == "__main__":
    asyncio.run(main())
