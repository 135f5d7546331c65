"""Cache: hits, coalesced misses, stale-while-revalidate, stale-if-error, jittered expiry."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient as rs
from resilient.stores.base import Entry
from resilient.testing import FakeClock, capture_events
from tests.conftest import gather_all, run_threads


async def acall(policy: rs.Policy, fn: Any, *args: Any) -> Any:
    """``policy.acall`` with its result typed as Any (mypy cannot solve its union parameter)."""
    result: Any = await policy.acall(fn, *args)
    return result


def joined_gate(cache: rs.Cache, count: int) -> tuple[threading.Event, Callable[[dict[str, Any]], None]]:
    """An event set once ``count`` callers have joined another's in-flight load, and its listener."""
    gate = threading.Event()

    def listener(event: dict[str, Any]) -> None:
        if event["event"] == "coalesce.joined" and cache.stats()["coalesced"] >= count:
            gate.set()

    rs.add_listener(listener)
    return gate, listener


async def settle(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def drain(cache: rs.Cache) -> None:
    """Wait for the cache's background refresh tasks in this loop."""
    while cache._tasks:
        await asyncio.gather(*list(cache._tasks), return_exceptions=True)


# -- hits and misses -----------------------------------------------------------------


def test_hit_returns_the_cached_value_without_calling() -> None:
    """A second call within ttl is a hit: the origin runs once."""
    cache = rs.Cache(ttl=60)
    calls = 0

    @cache
    def square(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * x

    assert [square(3), square(3), square(4)] == [9, 9, 16]
    assert calls == 2
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["origin_calls"]) == (1, 2, 2)


async def test_async_hit_returns_the_cached_value_without_calling() -> None:
    """An async function is cached the same way, through one shared cache."""
    cache = rs.Cache(ttl=60, key="sq:{x}")
    calls = 0

    @cache
    async def square(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * x

    assert [await square(3), await square(3)] == [9, 9]
    assert cache.call(lambda x: -1, 3) == 9  # the sync path reads the same entry
    assert calls == 1


def test_expired_value_is_recomputed() -> None:
    """After ttl + stale_ttl the value is gone and the origin is called again."""
    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, stale_ttl=0, clock=clock)
    values = iter([1, 2])
    fn = lambda: next(values)  # noqa: E731
    assert cache.call(fn) == 1
    clock.advance(9.9)
    assert cache.call(fn) == 1
    clock.advance(0.1)
    assert cache.call(fn) == 2


async def test_thousand_concurrent_cold_tasks_make_one_origin_call() -> None:
    """1,000 asyncio tasks on one cold key cause 1 origin call and all get the same value."""
    cache = rs.Cache(ttl=60)
    calls = 0
    all_joined = asyncio.Event()

    def listener(event: dict[str, Any]) -> None:
        if event["event"] == "coalesce.joined" and cache.stats()["coalesced"] == 999:
            all_joined.set()

    @cache
    async def origin(key: str) -> dict[str, str]:
        nonlocal calls
        calls += 1
        await asyncio.wait_for(all_joined.wait(), 10)
        return {"value": key}

    rs.add_listener(listener)
    try:
        results = await gather_all(*(origin("hot") for _ in range(1000)))
    finally:
        rs.remove_listener(listener)
    assert calls == 1
    assert all(r is results[0] for r in results)
    assert cache.stats()["origin_calls"] == 1
    assert cache.flight.in_flight == 0


def test_fifty_concurrent_cold_threads_make_one_origin_call() -> None:
    """50 threads on one cold key cause 1 origin call and all get the same value."""
    cache = rs.Cache(ttl=60)
    gate, listener = joined_gate(cache, 49)
    calls = 0

    @cache
    def origin(key: str) -> list[str]:
        nonlocal calls
        calls += 1
        assert gate.wait(10)
        return [key]

    try:
        results = run_threads(50, lambda i: origin("hot"))
    finally:
        rs.remove_listener(listener)
    assert calls == 1
    assert all(r is results[0] for r in results)


async def test_cancelling_one_of_ten_cache_waiters_keeps_the_load() -> None:
    """Cancelling one of ten callers of a cold key does not cancel the load: nine get it, one call."""
    cache = rs.Cache(ttl=60)
    release = asyncio.Event()
    calls = 0

    @cache
    async def origin() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "v"

    tasks = [asyncio.ensure_future(origin()) for _ in range(10)]
    try:
        await asyncio.sleep(0)
        tasks[0].cancel()
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await settle(tasks)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == ["v"] * 9
    assert calls == 1
    assert await origin() == "v"  # and it was cached


def test_errors_are_not_cached() -> None:
    """A failing origin raises to its callers and nothing is cached."""
    cache = rs.Cache(ttl=60)
    outcomes: list[Any] = [ValueError("down"), "ok"]

    def origin() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return str(item)

    with pytest.raises(ValueError, match="down"):
        cache.call(origin)
    assert cache.call(origin) == "ok"
    assert cache.stats()["errors"] == 1


# -- stale while revalidate, stale if error ------------------------------------------------


async def test_stale_is_served_at_once_to_500_callers_while_one_refresh_runs() -> None:
    """After expiry 500 concurrent callers get the stale value without waiting; one refresh reaches the origin."""
    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, clock=clock)
    release = asyncio.Event()
    calls = 0

    @cache
    async def origin() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            await release.wait()
        return f"v{calls}"

    assert await origin() == "v1"
    clock.advance(11)
    try:
        results = await asyncio.wait_for(gather_all(*(origin() for _ in range(500))), 10)
        assert results == ["v1"] * 500  # all answered while the refresh is still blocked
        assert calls == 2
        assert cache.stats()["stale_served"] == 500
        release.set()
        await drain(cache)
    finally:
        await cache.aclose()
    assert calls == 2
    assert await origin() == "v2"


def test_stale_is_served_to_threads_and_refreshed_once_in_the_background() -> None:
    """Threads get the stale value at once; one background refresh runs on the executor."""
    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, clock=clock)
    release = threading.Event()
    refreshed = threading.Event()
    calls = 0

    @cache
    def origin() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            assert release.wait(10)
            refreshed.set()
        return f"v{calls}"

    assert origin() == "v1"
    clock.advance(11)
    try:
        assert run_threads(20, lambda i: origin()) == ["v1"] * 20
        release.set()
        assert refreshed.wait(10)
    finally:
        cache.close()
    assert calls == 2
    assert origin() == "v2"


async def test_failed_background_refresh_keeps_serving_stale() -> None:
    """With stale_if_error a failing refresh leaves the stale value served and raises nothing."""
    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, clock=clock)
    fail = False

    @cache
    async def origin() -> str:
        if fail:
            raise ConnectionError("origin down")
        return "v1"

    assert await origin() == "v1"
    clock.advance(11)
    fail = True
    try:
        with capture_events() as events:
            assert await origin() == "v1"
            await drain(cache)
            assert await origin() == "v1"
            await drain(cache)
    finally:
        await cache.aclose()
    assert "cache.refresh_failed" in [e["event"] for e in events]
    assert cache.stats()["errors"] == 2


@pytest.mark.parametrize("is_async", [False, True])
async def test_stale_if_error_in_the_foreground(is_async: bool) -> None:
    """Without serve_stale the caller waits for the refresh; if it fails it gets the stale value."""
    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, serve_stale=False, clock=clock)
    state = {"fail": False, "calls": 0}

    def origin() -> str:
        state["calls"] += 1
        if state["fail"]:
            raise ConnectionError("origin down")
        return f"v{state['calls']}"

    async def aorigin() -> str:
        return origin()

    async def call() -> str:
        return await acall(cache, aorigin) if is_async else cache.call(origin)

    assert await call() == "v1"
    clock.advance(11)
    state["fail"] = True
    assert await call() == "v1"
    state["fail"] = False
    assert await call() == "v3"  # nothing was cached by the failure


def test_without_stale_if_error_a_failed_refresh_raises() -> None:
    """stale_if_error=False and serve_stale=False: the refresh's error reaches the caller."""
    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, serve_stale=False, stale_if_error=False, clock=clock)
    fail = False

    def origin() -> str:
        if fail:
            raise ConnectionError("origin down")
        return "v"

    assert cache.call(origin) == "v"
    clock.advance(11)
    fail = True
    with pytest.raises(ConnectionError):
        cache.call(origin)


# -- jittered expiry -------------------------------------------------------------------------


def test_two_hundred_keys_written_together_expire_spread() -> None:
    """200 keys written at one instant expire spread over the ±10 % jitter window, not together."""
    clock = FakeClock()
    cache = rs.Cache(ttl=100, key="n:{i}", clock=clock, rng=random.Random(200))

    def ident(i: int) -> int:
        return i

    for i in range(200):
        cache.call(ident, i)
    start = clock.time()
    expiries = []
    for i in range(200):
        entry = cache.store.get(f"n:{i}")
        assert entry is not None
        expiries.append(entry.expires_at - start)
    assert min(expiries) >= 90
    assert max(expiries) <= 110
    per_second: dict[int, int] = {}
    for e in expiries:
        per_second[int(e)] = per_second.get(int(e), 0) + 1
    assert len(per_second) >= 15  # spread over most of the 20 s window
    assert max(per_second.values()) <= 30  # no second sees more than 15 % of them expire
    clock.advance(100)
    due = sum(cache.store.lookup(f"n:{i}", now=clock.time(), lease_ttl=1).lease is not None for i in range(200))
    assert 40 < due < 160  # about half have expired by the nominal ttl


def test_without_jitter_keys_written_together_expire_together() -> None:
    """The contrast: with ttl_jitter=0 every key written at one instant expires at the same instant."""
    clock = FakeClock()
    cache = rs.Cache(ttl=100, ttl_jitter=0, key="n:{i}", clock=clock)

    def ident(i: int) -> int:
        return i

    for i in range(20):
        cache.call(ident, i)
    assert len({cache.store.get(f"n:{i}").expires_at for i in range(20)}) == 1  # type: ignore[union-attr]


# -- XFetch -------------------------------------------------------------------------------------


async def test_xfetch_refreshes_early_about_once_per_ttl_window(capsys: pytest.CaptureFixture[str]) -> None:
    """Under steady load XFetch refreshes before expiry, no caller waits after the first miss,
    and early refreshes per TTL window stay near one."""
    clock = FakeClock()
    ttl, delta, rate, windows = 10.0, 0.2, 100, 60
    cache = rs.Cache(ttl=ttl, clock=clock, early_recompute=rs.XFetch(beta=1.0), rng=random.Random(4))
    calls = 0

    @cache
    async def origin() -> int:
        nonlocal calls
        calls += 1
        await clock.asleep(delta)  # the computation takes delta seconds
        return calls

    try:
        start = clock.monotonic()
        while clock.monotonic() - start < windows * ttl:
            await origin()
            await asyncio.sleep(0)  # let a background refresh run
            clock.advance(1 / rate)
        await drain(cache)
    finally:
        await cache.aclose()
    stats = cache.stats()
    per_window = stats["early_refreshes"] / windows
    with capsys.disabled():
        print(
            f"\nXFetch: {stats['early_refreshes']} early refreshes in {windows} TTL windows = {per_window:.2f}/window"
        )
    assert stats["misses"] == 1
    assert stats["stale_served"] == 0
    assert stats["coalesced"] == 0
    assert 0.8 <= per_window <= 1.3
    assert calls == stats["early_refreshes"] + 1


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": "60"}, "ttl"),
        ({"ttl": 10, "stale_ttl": -1}, "stale_ttl"),
        ({"ttl": 10, "ttl_jitter": 10}, "ttl_jitter"),
        ({"ttl": 10, "ttl_jitter": -1}, "ttl_jitter"),
        ({"ttl": 10, "lock_ttl": 0}, "lock_ttl"),
        ({"ttl": 10, "lock_wait": -1}, "lock_wait"),
        ({"ttl": 10, "early_recompute": 1.0}, "early_recompute"),
        ({"ttl": 10, "key": 3}, "key"),
        ({"ttl": 10, "store": object()}, "store"),
        ({"ttl": 10, "clock": object()}, "clock"),
        ({"ttl": 10, "rng": 4}, "rng"),
        ({"ttl": 10, "serializer": object()}, "serializer"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, Any], name: str) -> None:
    """Every bad option fails at construction with an error naming the parameter and value."""
    with pytest.raises((ValueError, TypeError), match=name) as info:
        rs.Cache(**kwargs)
    assert repr(list(kwargs.values())[-1])[:10] in str(info.value) or name in ("store", "key")


def test_xfetch_beta_must_be_positive() -> None:
    """XFetch(beta <= 0) is refused naming beta."""
    with pytest.raises(ValueError, match="beta must be > 0, got 0"):
        rs.XFetch(beta=0)


def test_unknown_template_field_names_the_parameter() -> None:
    """A template field the function lacks raises TypeError naming key and the field."""

    def load(id: int) -> int:
        return id

    with pytest.raises(TypeError, match=r"key template 'x:\{name\}' names \{name\}"):
        rs.Cache(ttl=1, key="x:{name}")(load)


# -- invalidation, pipelines, stats -------------------------------------------------------------


def test_invalidate_forces_a_new_origin_call() -> None:
    """invalidate(key) with the formatted key drops the value."""
    cache = rs.Cache(ttl=60, key="user:{id}")
    values = iter(["a", "b"])

    @cache
    def user(id: int) -> str:
        return next(values)

    assert user(1) == "a"
    cache.invalidate("user:1")
    assert user(1) == "b"


async def test_invalidate_voids_a_refresh_in_flight() -> None:
    """A refresh that began before invalidate() cannot write its older value back."""
    cache = rs.Cache(ttl=60, key="k")
    started = asyncio.Event()
    release = asyncio.Event()
    values = iter(["old", "new"])

    async def origin() -> str:
        value = next(values)
        if value == "old":
            started.set()
            await release.wait()
        return value

    slow = asyncio.ensure_future(acall(cache, origin))
    try:
        await started.wait()
        await cache.ainvalidate("k")
        assert await acall(cache, origin) == "new"
        release.set()
        assert await slow == "old"  # its own caller still gets it
    finally:
        await settle([slow])
    assert await acall(cache, origin) == "new"  # but it was not written over "new"


def test_cache_outermost_in_a_pipeline_skips_the_rest_on_a_hit() -> None:
    """As the outer policy of a pipeline, a hit never reaches the inner policies."""
    cache = rs.Cache(ttl=60)
    retry = rs.Retry(attempts=2)
    policy = rs.pipeline(cache, retry)

    @policy
    def load(x: int) -> int:
        return x

    assert [load(1), load(1), load(1)] == [1, 1, 1]
    assert retry.stats()["calls"] == 1
    assert policy.stats()["cache"]["hits"] == 2


def test_stats_has_every_counter() -> None:
    """stats() reports hits, misses, stale_served, early_refreshes, coalesced, origin_calls, errors."""
    keys = {"hits", "misses", "stale_served", "early_refreshes", "coalesced", "origin_calls", "errors"}
    assert keys <= set(rs.Cache(ttl=1).stats())


def test_entries_record_how_long_the_value_took() -> None:
    """Each entry carries delta, the seconds its computation took (XFetch's input)."""
    clock = FakeClock()
    cache = rs.Cache(ttl=60, key="k", clock=clock)

    def slow() -> int:
        clock.advance(0.25)
        return 1

    cache.call(slow)
    entry = cache.store.get("k")
    assert isinstance(entry, Entry)
    assert entry.delta == pytest.approx(0.25)


async def test_xfetch_refresh_without_stale_window_keeps_serving_the_fresh_value() -> None:
    """An early refresh of an entry with stale_ttl=0 does not take the fresh value away meanwhile."""
    clock = FakeClock()

    class HighDraws(random.Random):
        def random(self) -> float:
            return 0.999  # XFetch's u = 0.001: -ln(u) = 6.9, so 1 s before expiry is due with delta*beta = 1

    cache = rs.Cache(
        ttl=10, ttl_jitter=0, stale_ttl=0, key="k", clock=clock, early_recompute=rs.XFetch(beta=10), rng=HighDraws()
    )
    release = asyncio.Event()
    calls = 0

    async def origin() -> int:
        nonlocal calls
        calls += 1
        clock.advance(0.1)
        if calls > 1:
            await release.wait()
        return calls

    try:
        assert await acall(cache, origin) == 1
        clock.advance(9)  # 1 s before expiry: due, with this draw
        assert await acall(cache, origin) == 1
        assert cache.stats()["early_refreshes"] == 1
        await asyncio.sleep(0)
        assert await acall(cache, origin) == 1  # still a hit while the refresh runs
        assert cache.stats()["misses"] == 1
        release.set()
        await drain(cache)
    finally:
        await cache.aclose()
    assert await acall(cache, origin) == 2


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=10),
    cancel=st.lists(st.booleans(), min_size=10, max_size=10),
    fail=st.booleans(),
)
def test_random_cancellations_leave_no_load_or_lease_behind(n: int, cancel: list[bool], fail: bool) -> None:
    """Cancelling any subset of a cold key's callers leaves no in-flight load and no held lease."""

    async def scenario() -> None:
        cache = rs.Cache(ttl=60, key="k")
        release = asyncio.Event()

        async def origin() -> str:
            await release.wait()
            if fail:
                raise RuntimeError("origin failed")
            return "v"

        tasks = [asyncio.ensure_future(acall(cache, origin)) for _ in range(n)]
        try:
            await asyncio.sleep(0)
            for i in range(n):
                if cancel[i]:
                    tasks[i].cancel()
            await asyncio.sleep(0)
            release.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await settle(tasks)
        for _ in range(3):
            await asyncio.sleep(0)
        assert cache.flight.in_flight == 0
        assert not cache.store._leases  # type: ignore[attr-defined]
        for i, r in enumerate(results):
            if not cancel[i]:
                assert isinstance(r, RuntimeError) if fail else r == "v"

    asyncio.run(scenario())


def test_xfetch_early_refresh_runs_on_the_executor_for_sync_callers() -> None:
    """A sync hit that XFetch finds due returns at once and refreshes on the background executor."""

    class HighDraws(random.Random):
        def random(self) -> float:
            return 0.999

    clock = FakeClock()
    cache = rs.Cache(ttl=10, ttl_jitter=0, key="k", clock=clock, early_recompute=rs.XFetch(beta=10), rng=HighDraws())
    calls = 0
    refreshing = threading.Event()

    def origin() -> int:
        nonlocal calls
        calls += 1
        clock.advance(0.1)
        if calls == 2:
            refreshing.set()
        return calls

    try:
        assert cache.call(origin) == 1
        clock.advance(9)
        assert cache.call(origin) == 1  # served at once; the refresh is queued
        assert refreshing.wait(10)
    finally:
        cache.close()  # waits for the running refresh to write
    assert cache.stats()["early_refreshes"] == 1
    assert cache.call(origin) == 2
