"""Shared tokens: the cost of ``get()`` on a warm token, and what a 401 storm costs the auth server.

No peer library refreshes shared tokens, so the baselines are what services
write by hand: a lock around "expired? fetch", and ``cachetools.cached`` over a
one-entry ``TTLCache``. The storm: 100 threads holding the same token all get a
401 at once (the token was rotated) and each asks for a new one.

Run: python -m benchmarks.tokens
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import cachetools

import resilient as rs
from benchmarks._util import ans_per_call, ns_per_call, quiet, table

STORM = 100
FETCH_SECONDS = 0.002  # one auth-server round trip


class Issuer:
    """A stand-in auth server: each fetch takes FETCH_SECONDS and issues a new token."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self) -> rs.Token:
        time.sleep(FETCH_SECONDS)
        with self.lock:
            self.count += 1
            return rs.Token.expiring_in(f"t{self.count}", 3600)


class LockedToken:
    """The hand-written baseline: a lock around "missing or expired? fetch"."""

    def __init__(self, fetch: Callable[[], rs.Token]) -> None:
        self.fetch = fetch
        self.lock = threading.Lock()
        self.token: rs.Token | None = None

    def get(self) -> str:
        with self.lock:
            if self.token is None or self.token.expires_at - 60 <= time.time():
                self.token = self.fetch()
            return self.token.value

    def refresh(self) -> str:
        """What a naive 401 handler does: fetch a new token, whoever else just did."""
        with self.lock:
            self.token = self.fetch()
            return self.token.value


def hot_path() -> None:
    provider = rs.TokenProvider(lambda: rs.Token.expiring_in("v", 3600))
    provider.get()
    locked = LockedToken(lambda: rs.Token.expiring_in("v", 3600))
    locked.get()
    ttl_fetch = cachetools.cached(cachetools.TTLCache(maxsize=1, ttl=3540), lock=threading.Lock())(
        lambda: rs.Token.expiring_in("v", 3600).value
    )
    ttl_fetch()
    rows = [
        ("lock + expiry check (hand-written)", ns_per_call(locked.get)),
        ("cachetools.cached(TTLCache, lock)", ns_per_call(ttl_fetch)),
        ("rs.TokenProvider.get()", ns_per_call(provider.get)),
    ]
    table("warm token, one thread", rows, baseline="lock + expiry check (hand-written)")

    aprovider = rs.TokenProvider(lambda: rs.Token.expiring_in("v", 3600))

    async def warm() -> None:
        await aprovider.aget()

    asyncio.run(warm())
    token = rs.Token.expiring_in("v", 3600)
    locks: list[asyncio.Lock] = []

    async def locked_aget() -> str:
        if not locks:
            locks.append(asyncio.Lock())  # bound to the benchmark's loop
        async with locks[0]:
            if token.expires_at - 60 <= time.time():
                raise AssertionError("not reached: the token is warm")
            return token.value

    rows = [
        ("asyncio.Lock + check (hand-written)", ans_per_call(locked_aget)),
        ("await rs.TokenProvider.aget()", ans_per_call(aprovider.aget)),
    ]
    table("warm token, asyncio", rows, baseline="asyncio.Lock + check (hand-written)")


def storm(on_401: Callable[[str], str], warm: Callable[[], str]) -> float:
    """Seconds for STORM threads, released together, to each handle a 401 for the same old token."""
    old = warm()
    barrier = threading.Barrier(STORM)

    def client() -> None:
        barrier.wait()
        on_401(old)

    threads = [threading.Thread(target=client) for _ in range(STORM)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def storms() -> None:
    naive_issuer = Issuer()
    naive = LockedToken(naive_issuer)
    seconds = storm(lambda _old: naive.refresh(), naive.get)
    results = [("lock, every 401 refreshes (hand-written)", seconds, naive_issuer.count - 1)]

    issuer = Issuer()
    provider = rs.TokenProvider(issuer)

    def on_401(old: str) -> str:
        provider.invalidate(old)
        return provider.get()

    seconds = storm(on_401, provider.get)
    results.append(("rs.TokenProvider invalidate(old) + get()", seconds, issuer.count - 1))

    base_fetches, base_seconds = results[0][2], results[0][1]
    print(f"\n{STORM} threads get a 401 together (fetch takes {FETCH_SECONDS * 1000:.0f} ms)")
    print(f"  {'':46} {'fetches':>8} {'x naive':>8} {'wall ms':>9} {'x naive':>8}")
    for name, seconds, fetches in results:
        ratio_fetches, ratio_seconds = fetches / base_fetches, seconds / base_seconds
        print(f"  {name:46} {fetches:8d} {ratio_fetches:8.2f} {seconds * 1000:9.1f} {ratio_seconds:8.2f}")


def main() -> None:
    quiet()
    hot_path()
    storms()


if __name__ == "__main__":
    main()
