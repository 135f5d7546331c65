"""Cache against its store: leases across callers, bounded waiting, and store failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import resilient as rs
from resilient.stores.base import Entry, Lookup
from resilient.testing import FakeClock, capture_events


async def acall(policy: rs.Policy, fn: Any, *args: Any) -> Any:
    """``policy.acall`` with its result typed as Any (mypy cannot solve its union parameter)."""
    result: Any = await policy.acall(fn, *args)
    return result


class FlakyStore(rs.MemoryStore):
    """A MemoryStore that raises ConnectionError from every method while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lookups = 0

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store unreachable")

    def get(self, key: str) -> Entry | None:
        self._check()
        return super().get(key)

    def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        self._check()
        self.lookups += 1
        return super().lookup(key, now=now, lease_ttl=lease_ttl)

    def set(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        self._check()
        return super().set(key, entry, now=now, lease=lease)

    def release(self, key: str, lease: str) -> None:
        self._check()
        super().release(key, lease)

    def invalidate(self, key: str) -> None:
        self._check()
        super().invalidate(key)


class RemoteLikeStore(FlakyStore):
    """Looks like a networked store: async twins are real coroutines and it is not in-process."""

    in_process = False

    async def aget(self, key: str) -> Entry | None:
        await asyncio.sleep(0)
        return self.get(key)

    async def alookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        await asyncio.sleep(0)
        return self.lookup(key, now=now, lease_ttl=lease_ttl)

    async def aset(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        await asyncio.sleep(0)
        return self.set(key, entry, now=now, lease=lease)


def test_a_failing_store_degrades_to_in_process_caching() -> None:
    """With the store down the caller sees no store error, gets the value, and it is cached in process."""
    clock = FakeClock()
    store = FlakyStore()
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock)
    calls = 0

    def origin() -> int:
        nonlocal calls
        calls += 1
        return calls

    store.down = True
    with capture_events() as events:
        assert cache.call(origin) == 1
        assert cache.call(origin) == 1
    assert calls == 1
    assert "cache.store_error" in [e["event"] for e in events]
    assert cache.stats()["store_errors"] >= 1


def test_the_store_is_probed_again_and_caching_on_it_resumes() -> None:
    """After the store recovers, a call within 5 s uses it again."""
    clock = FakeClock()
    store = FlakyStore()
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock)
    store.down = True
    assert cache.call(lambda: "during outage") == "during outage"
    store.down = False
    clock.advance(5)
    cache.invalidate("k")
    assert cache.call(lambda: "after") == "after"
    written = store.get("k")
    assert written is not None
    assert written.value == "after"


async def test_a_failing_store_degrades_in_async_code_too() -> None:
    """The async path survives a store that raises from its coroutines."""
    clock = FakeClock()
    store = RemoteLikeStore()
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock)

    async def origin() -> str:
        return "v"

    store.down = True
    assert await acall(cache, origin) == "v"
    assert await acall(cache, origin) == "v"
    store.down = False
    clock.advance(5)
    assert await acall(cache, origin) == "v"
    assert cache.stats()["origin_calls"] == 2  # once in the outage, once on the recovered store
    assert store.get("k") is not None


def test_a_store_failing_mid_refresh_still_returns_the_value() -> None:
    """A store that fails between lookup and write costs the write, not the caller's value."""
    store = FlakyStore()
    cache = rs.Cache(ttl=60, key="k", store=store)

    def origin() -> str:
        store.down = True
        return "v"

    assert cache.call(origin) == "v"
    store.down = False


def test_waiter_polls_until_lock_wait_then_fetches_itself() -> None:
    """With the lease held elsewhere and nothing stale, a caller polls with backoff up to lock_wait, then calls."""
    clock = FakeClock()
    store = FlakyStore()
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock, lock_ttl=10, lock_wait=2)
    held = store.lookup("k", now=clock.time(), lease_ttl=10)  # another process is refreshing
    assert held.lease is not None
    started = clock.monotonic()
    with capture_events() as events:
        assert cache.call(lambda: "mine") == "mine"
    waited = clock.monotonic() - started
    assert 2.0 <= waited < 2.2
    assert 5 < store.lookups < 60  # bounded polling, no spinning
    names = [e["event"] for e in events]
    assert "cache.waiting" in names
    assert "cache.lock_timeout" in names
    assert cache.stats()["coalesced"] == 1
    assert store.get("k") is None  # fetched without the lease: not written


def test_a_fetch_without_the_lease_cannot_overwrite_an_invalidation() -> None:
    """A caller that gave up waiting fetches, but only the lease holder's value is ever written."""
    clock = FakeClock()
    store = FlakyStore()
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock, lock_ttl=10, lock_wait=1)
    held = store.lookup("k", now=clock.time(), lease_ttl=10)
    assert held.lease is not None
    assert cache.call(lambda: "old") == "old"
    cache.invalidate("k")
    assert cache.call(lambda: "new") == "new"
    assert store.get("k") is not None
    assert store.get("k").value == "new"  # type: ignore[union-attr]


def test_a_store_type_error_is_raised_not_hidden() -> None:
    """A TypeError from the store is a misconfiguration and reaches the caller."""

    class Misconfigured(rs.MemoryStore):
        def get(self, key: str) -> Entry | None:
            raise TypeError("RedisStore needs a sync client for get()")

    cache = rs.Cache(ttl=60, key="k", store=Misconfigured(), clock=FakeClock())
    with pytest.raises(TypeError, match="sync client"):
        cache.call(lambda: 1)


def test_waiter_takes_the_value_written_by_the_lease_holder() -> None:
    """A waiting caller returns the value the lease holder writes, without calling the origin."""
    clock = FakeClock()

    class WritesOnThirdLookup(FlakyStore):
        def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
            if self.lookups == 2:
                assert super().set(key, Entry("theirs", now + 60, now + 120), now=now, lease=held.lease)
            return super().lookup(key, now=now, lease_ttl=lease_ttl)

    store = WritesOnThirdLookup()
    held = store.lookup("k", now=clock.time(), lease_ttl=10)
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock)

    def origin() -> str:
        raise AssertionError("the origin must not be called")

    assert cache.call(origin) == "theirs"
    assert cache.stats()["origin_calls"] == 0


async def test_async_waiter_polls_and_takes_the_written_value() -> None:
    """The async miss path polls the store the same way and returns the holder's value."""
    clock = FakeClock()
    store = RemoteLikeStore()
    held = store.lookup("k", now=clock.time(), lease_ttl=10)
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock)

    async def holder() -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        store.set("k", Entry("theirs", clock.time() + 60, clock.time() + 120), now=clock.time(), lease=held.lease)

    async def origin() -> str:
        raise AssertionError("the origin must not be called")

    writer = asyncio.ensure_future(holder())
    try:
        assert await asyncio.wait_for(acall(cache, origin), 10) == "theirs"
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


def test_stale_value_is_served_while_another_process_refreshes() -> None:
    """With a stale value and the lease held elsewhere, the caller gets the stale value at once."""
    clock = FakeClock()
    store = FlakyStore()
    now = clock.time()
    store.set("k", Entry("stale", now - 1, now + 60), now=now - 2)
    assert store.lookup("k", now=now, lease_ttl=10).lease is not None  # held elsewhere
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock, serve_stale=False)
    serving = rs.Cache(ttl=60, key="k", store=store, clock=clock)
    try:
        assert serving.call(lambda: "new") == "stale"  # at once
    finally:
        serving.close()
    assert cache.call(lambda: "new") == "new"  # serve_stale=False: waited lock_wait (5 s fake), then fetched


def test_serializer_is_given_to_the_store() -> None:
    """serializer= configures the default MemoryStore (values stored encoded, reads are copies)."""
    import json

    class Json:
        def dumps(self, value: Any) -> bytes:
            return json.dumps(value).encode()

        def loads(self, data: bytes) -> Any:
            return json.loads(data)

    cache = rs.Cache(ttl=60, key="k", serializer=Json())
    first = cache.call(lambda: {"a": 1})
    first["a"] = 2
    assert cache.call(lambda: {"a": 3}) == {"a": 1}
    store = rs.MemoryStore()
    rs.Cache(ttl=60, store=store, serializer=Json())
    assert isinstance(store.serializer, Json)


def test_background_refreshes_are_bounded() -> None:
    """Never more than MAX_BACKGROUND keys refresh in the background at once."""
    from resilient.cache import policy as cache_module

    cache = rs.Cache(ttl=1)
    claimed = [cache._begin_refresh(f"k{i}") for i in range(cache_module.MAX_BACKGROUND + 10)]
    assert claimed.count(True) == cache_module.MAX_BACKGROUND
    assert not cache._begin_refresh("k0")  # one refresh per key
    cache.close()
    assert not cache._begin_refresh("other")  # closed: none at all


@pytest.mark.filterwarnings("error")
async def test_aclose_leaves_no_pending_refresh_task() -> None:
    """aclose() cancels and awaits background refresh tasks, so none is left pending."""
    clock = FakeClock()
    cache = rs.Cache(ttl=1, ttl_jitter=0, key="k", clock=clock)
    never = asyncio.Event()

    async def origin() -> str:
        if cache.stats()["origin_calls"] > 1:
            await never.wait()
        return "v"

    try:
        assert await acall(cache, origin) == "v"
        clock.advance(1.5)
        assert await acall(cache, origin) == "v"  # stale; a refresh task now hangs
        assert len(cache._tasks) == 1
    finally:
        await cache.aclose()
    assert not cache._tasks


def test_an_enclosing_deadline_ends_the_lock_wait_with_cache_lock_timeout() -> None:
    """Inside a Timeout, a caller waiting on another's lease gives up at the deadline with CacheLockTimeout."""
    clock = FakeClock()
    store = FlakyStore()
    assert store.lookup("k", now=clock.time(), lease_ttl=30).lease is not None  # held elsewhere
    cache = rs.Cache(ttl=60, key="k", store=store, clock=clock, lock_ttl=30)
    policy = rs.pipeline(rs.Timeout(1.0, clock=clock), cache)
    started = clock.monotonic()
    with pytest.raises(rs.CacheLockTimeout, match="deadline"):
        policy.call(lambda: "never called")
    assert clock.monotonic() - started == pytest.approx(1.0, abs=0.01)
    assert cache.stats()["origin_calls"] == 0
