"""TokenProvider in one process: one refresh at a time for threads and tasks, early refresh, failures."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

import pytest

import resilient as rs
from resilient.testing import FakeClock
from tests.conftest import gather_all, run_threads

N = 30


class Issuer:
    """A fake auth server: issues t1, t2, ... each valid ``life`` seconds; counts and times fetches."""

    def __init__(self, clock: rs.Clock, life: float = 3600.0) -> None:
        self.clock = clock
        self.life = life
        self.lock = threading.Lock()
        self.fetched_at: list[float] = []
        self.expiry: dict[str, float] = {}
        self.fail_next = 0

    @property
    def count(self) -> int:
        return len(self.fetched_at)

    def __call__(self) -> rs.Token:
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("auth server down")
            self.fetched_at.append(self.clock.time())
            token = rs.Token.expiring_in(f"t{len(self.fetched_at)}", self.life, clock=self.clock)
            self.expiry[token.value] = token.expires_at
            return token


class Gate:
    """Lets the fetch finish only once ``n`` callers have arrived (so they all overlap the fetch)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.cond = threading.Condition()

    def arrive(self) -> None:
        with self.cond:
            self.arrived += 1
            self.cond.notify_all()

    def wait(self) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.arrived >= self.n, timeout=10), "callers never arrived"


def gated(issuer: Issuer, gate: Gate) -> Callable[[], rs.Token]:
    def fetch() -> rs.Token:
        gate.wait()
        return issuer()

    return fetch


# -- Token ------------------------------------------------------------------------


def test_token_repr_and_str_never_show_the_value() -> None:
    """repr() and str() of a Token show its expiry and never its value."""
    token = rs.Token("s3cr3t-value", 1_700_000_000.0)
    for text in (repr(token), str(token), f"{token}", repr([token]), repr({"t": token})):
        assert "s3cr3t" not in text
        assert "1700000000" in text


def test_token_expiring_in_reads_the_clock() -> None:
    """Token.expiring_in(value, s) expires s seconds after clock.time()."""
    clock = FakeClock(wall=1000.0)
    assert rs.Token.expiring_in("v", 60, clock=clock).expires_at == 1060.0


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((b"bytes", 1.0), TypeError, "value must be a str, got bytes"),
        (("", 1.0), ValueError, "value must not be empty"),
        (("v", "soon"), TypeError, "expires_at must be a number, got 'soon'"),
        (("v", float("inf")), ValueError, "expires_at must be finite"),
    ],
)
def test_token_validation(args: tuple[object, object], error: type[Exception], match: str) -> None:
    """A bad Token raises an error naming the field (never echoing the value)."""
    with pytest.raises(error, match=match):
        rs.Token(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"refresh_before": 0}, ValueError, "refresh_before must be > 0, got 0"),
        ({"refresh_jitter": -1}, ValueError, "refresh_jitter must be >= 0, got -1"),
        ({"lease_ttl": 0}, ValueError, "lease_ttl must be > 0, got 0"),
        ({"key": ""}, ValueError, "key must be a non-empty str, got ''"),
        ({"backoff": 5}, TypeError, "backoff must be a resilient.Backoff, got 5"),
        ({"rng": 7}, TypeError, "rng must be a random.Random, got 7"),
        ({"clock": "now"}, TypeError, "clock must be a resilient.Clock, got 'now'"),
        ({"store": object()}, TypeError, "store must implement resilient.stores.base.Store"),
    ],
)
def test_provider_validation_names_the_parameter(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    """A bad option fails at construction with an error naming the parameter and the value."""
    with pytest.raises(error, match=match):
        rs.TokenProvider(lambda: rs.Token("v", 1.0), **kwargs)  # type: ignore[arg-type]


def test_fetch_must_be_callable() -> None:
    """A non-callable fetch is a TypeError naming fetch."""
    with pytest.raises(TypeError, match="fetch must be callable"):
        rs.TokenProvider("token")  # type: ignore[arg-type]


def test_fetch_returning_a_bare_string_is_refused_without_echoing_it() -> None:
    """A fetch that returns the raw secret fails with a TypeError that does not contain it."""
    provider = rs.TokenProvider(lambda: "raw-s3cr3t", clock=FakeClock())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"fetch must return a resilient\.Token, got str") as info:
        provider.get()
    assert "s3cr3t" not in str(info.value)


def test_fetch_returning_an_expired_token_is_an_error() -> None:
    """A fetched token that has already expired is refused, and the next call fetches again."""
    clock = FakeClock()
    tokens = iter([rs.Token("old", clock.time() - 1), rs.Token("new", clock.time() + 60)])
    provider = rs.TokenProvider(lambda: next(tokens), clock=clock, refresh_before=10)
    with pytest.raises(ValueError, match="already expired"):
        provider.get()
    assert provider.get() == "new"


def test_get_with_an_async_fetch_asks_for_aget() -> None:
    """get() on a provider whose fetch is a coroutine function raises a TypeError naming aget()."""

    async def fetch() -> rs.Token:
        return rs.Token("v", 2e9)

    with pytest.raises(TypeError, match=r"aget\(\)"):
        rs.TokenProvider(fetch).get()


# -- one refresh at a time: threads ---------------------------------------------------


def test_thirty_threads_on_a_cold_provider_cause_one_fetch() -> None:
    """30 threads calling get() on a cold provider share a single fetch."""
    clock = FakeClock()
    issuer, gate = Issuer(clock), Gate(N)
    provider = rs.TokenProvider(gated(issuer, gate), clock=clock)

    def caller(_: int) -> str:
        gate.arrive()
        return provider.get()

    results = run_threads(N, caller)
    assert results == ["t1"] * N
    assert issuer.count == 1


def test_thirty_threads_invalidating_the_old_token_cause_one_more_fetch() -> None:
    """30 concurrent invalidate(old) + get() cost exactly one more fetch, even when half arrive after the refresh."""
    clock = FakeClock()
    issuer, gate = Issuer(clock), Gate(N // 2)
    provider = rs.TokenProvider(gated(issuer, gate), clock=clock)
    gate.arrived = N
    old = provider.get()
    gate.arrived = 0
    refreshed = threading.Event()

    def caller(i: int) -> tuple[bool, str]:
        if i >= N // 2:  # a late 401: its request was sent with the old token before the refresh
            assert refreshed.wait(10)
        dropped = provider.invalidate(old)
        gate.arrive()
        value = provider.get()
        refreshed.set()
        return dropped, value

    results = run_threads(N, caller)
    assert issuer.count == 2
    assert [value for _, value in results] == ["t2"] * N
    assert sum(dropped for dropped, _ in results) == 1
    assert provider.stats()["invalidations"] == 1


def test_invalidating_a_value_that_is_not_current_does_nothing() -> None:
    """invalidate() of a value other than the current token neither drops it nor fetches."""
    clock = FakeClock()
    issuer = Issuer(clock)
    provider = rs.TokenProvider(issuer, clock=clock)
    provider.get()
    assert provider.invalidate("not-the-token") is False
    assert provider.get() == "t1"
    assert issuer.count == 1


# -- one refresh at a time: asyncio -----------------------------------------------------


async def test_thirty_tasks_on_a_cold_provider_cause_one_fetch() -> None:
    """30 tasks awaiting aget() on a cold provider share a single (async) fetch."""
    clock = FakeClock()
    issuer = Issuer(clock)
    arrived = 0
    all_in = asyncio.Event()

    async def fetch() -> rs.Token:
        await asyncio.wait_for(all_in.wait(), 10)
        return issuer()

    provider = rs.TokenProvider(fetch, clock=clock)

    async def caller() -> str:
        nonlocal arrived
        arrived += 1
        if arrived == N:
            all_in.set()
        return await provider.aget()

    try:
        assert await gather_all(*(caller() for _ in range(N))) == ["t1"] * N
    finally:
        await provider.aclose()
    assert issuer.count == 1


async def test_thirty_tasks_invalidating_the_old_token_cause_one_more_fetch() -> None:
    """30 concurrent ainvalidate(old) + aget() tasks cost one more fetch, even when half arrive after the refresh."""
    clock = FakeClock()
    issuer = Issuer(clock)
    arrived = 0
    all_in = asyncio.Event()
    refreshed = asyncio.Event()

    async def fetch() -> rs.Token:
        if issuer.count:
            await asyncio.wait_for(all_in.wait(), 10)
        return issuer()

    provider = rs.TokenProvider(fetch, clock=clock)
    old = await provider.aget()

    async def caller(i: int) -> tuple[bool, str]:
        nonlocal arrived
        if i >= N // 2:  # a late 401 for the old token
            await asyncio.wait_for(refreshed.wait(), 10)
        dropped = await provider.ainvalidate(old)
        arrived += 1
        if arrived == N // 2:
            all_in.set()
        value = await provider.aget()
        refreshed.set()
        return dropped, value

    try:
        results = await gather_all(*(caller(i) for i in range(N)))
    finally:
        await provider.aclose()
    assert issuer.count == 2
    assert [value for _, value in results] == ["t2"] * N
    assert sum(dropped for dropped, _ in results) == 1


async def test_a_sync_fetch_serves_aget_in_a_worker_thread() -> None:
    """A plain fetch serves aget() too, once for all concurrent tasks."""
    clock = FakeClock()
    issuer, gate = Issuer(clock), Gate(1)
    provider = rs.TokenProvider(gated(issuer, gate), clock=clock)
    tasks = [asyncio.ensure_future(provider.aget()) for _ in range(10)]
    await asyncio.sleep(0)
    gate.arrive()
    try:
        assert await gather_all(*tasks) == ["t1"] * 10
    finally:
        await provider.aclose()
    assert issuer.count == 1


async def test_threads_and_tasks_share_one_refresh() -> None:
    """A thread's get() and tasks' aget() on one provider share a single fetch."""
    clock = FakeClock()
    issuer, gate = Issuer(clock), Gate(2)
    provider = rs.TokenProvider(gated(issuer, gate), clock=clock)
    thread_result: list[str] = []
    thread = threading.Thread(target=lambda: thread_result.append(provider.get()))
    thread.start()
    try:
        tasks = [asyncio.ensure_future(provider.aget()) for _ in range(5)]
        await asyncio.sleep(0)  # the tasks are now waiting on the thread's refresh, or leading one
        gate.arrive()
        gate.arrive()
        assert await gather_all(*tasks) == ["t1"] * 5
    finally:
        await asyncio.to_thread(thread.join, 10)
        await provider.aclose()
    assert thread_result == ["t1"]
    assert issuer.count == 1


async def test_a_cancelled_caller_does_not_cancel_the_refresh() -> None:
    """Cancelling one waiting task leaves the shared refresh running for the others."""
    clock = FakeClock()
    issuer = Issuer(clock)
    release = asyncio.Event()

    async def fetch() -> rs.Token:
        await asyncio.wait_for(release.wait(), 10)
        return issuer()

    provider = rs.TokenProvider(fetch, clock=clock)
    first = asyncio.ensure_future(provider.aget())
    second = asyncio.ensure_future(provider.aget())
    try:
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        release.set()
        assert await asyncio.wait_for(second, 10) == "t1"
    finally:
        await gather_all(asyncio.gather(first, second, return_exceptions=True))
        await provider.aclose()
    assert first.cancelled()
    assert issuer.count == 1


# -- proactive refresh --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_proactive_refresh_happens_once_inside_the_jittered_window(seed: int) -> None:
    """A 3,600 s token is refreshed once in [expires_at - 60*(1+0.5), expires_at); no caller gets an expired token."""
    clock = FakeClock()
    issuer = Issuer(clock)
    provider = rs.TokenProvider(issuer, refresh_before=60, refresh_jitter=0.5, clock=clock, rng=random.Random(seed))
    first = provider.get()
    expires = issuer.expiry[first]
    while clock.time() < expires + 30:
        value = provider.get()
        assert clock.time() < issuer.expiry[value], "a caller got an expired token"
        provider.close()  # the background refresh (if one started) is done before time moves on
        clock.advance(1.0)
    assert issuer.count == 2
    assert expires - 60 * 1.5 <= issuer.fetched_at[1] < expires


async def test_async_proactive_refresh_happens_in_the_background() -> None:
    """Past the refresh point aget() returns the current token at once while one task refreshes."""
    clock = FakeClock()
    issuer = Issuer(clock)
    release = asyncio.Event()

    async def fetch() -> rs.Token:
        if issuer.count:
            await asyncio.wait_for(release.wait(), 10)
        return issuer()

    provider = rs.TokenProvider(fetch, refresh_before=60, refresh_jitter=0.5, clock=clock)
    try:
        assert await provider.aget() == "t1"
        clock.advance(3600 - 59)
        assert await gather_all(*(provider.aget() for _ in range(10))) == ["t1"] * 10
        release.set()
        await provider.aclose()
        assert await provider.aget() == "t2"
    finally:
        release.set()
        await provider.aclose()
    assert issuer.count == 2


def test_refresh_points_spread_across_a_fleet() -> None:
    """Providers with different random draws refresh the same token at different moments within the window."""
    points = []
    for seed in range(20):
        clock = FakeClock()
        issuer = Issuer(clock)
        provider = rs.TokenProvider(issuer, refresh_before=60, refresh_jitter=0.5, clock=clock, rng=random.Random(seed))
        provider.get()
        clock.advance(3600 - 90)
        while issuer.count == 1:
            provider.get()
            provider.close()
            clock.advance(0.5)
        points.append(issuer.fetched_at[1] - 1_700_000_000.0)
    assert all(3600 - 90 <= p <= 3600 - 60 + 0.5 for p in points)
    assert max(points) - min(points) > 10  # spread over the window, not all in one second


# -- failures -------------------------------------------------------------------------------


def test_failed_background_refresh_keeps_serving_and_retries_after_backoff() -> None:
    """While the token is valid a failed refresh is invisible to callers and retried after the backoff delay."""
    clock = FakeClock()
    issuer = Issuer(clock)
    provider = rs.TokenProvider(issuer, refresh_before=60, refresh_jitter=0, backoff=rs.Constant(10), clock=clock)
    provider.get()
    clock.advance(3600 - 60)
    issuer.fail_next = 2
    with rs.testing.capture_events() as events:
        assert provider.get() == "t1"  # starts the background refresh, which fails
        provider.close()
        assert provider.get() == "t1"  # within the backoff delay: no new attempt
        provider.close()
        clock.advance(10)
        assert provider.get() == "t1"  # second attempt, fails too
        provider.close()
        clock.advance(10)
        assert provider.get() == "t1"  # third attempt succeeds
        provider.close()
    assert provider.get() == "t2"
    failed = [e for e in events if e["event"] == "token.refresh_failed"]
    assert [(e["failures"], e["retry_in"], e["error"]) for e in failed] == [
        (1, 10.0, "ConnectionError"),
        (2, 10.0, "ConnectionError"),
    ]
    assert provider.stats()["refresh_failures"] == 2


def test_with_no_valid_token_the_error_reaches_every_waiter_and_is_not_cached() -> None:
    """Callers blocked on a failing refresh all get its error, and the next call fetches again."""
    clock = FakeClock()
    issuer, gate = Issuer(clock), Gate(N)
    issuer.fail_next = 1
    provider = rs.TokenProvider(gated(issuer, gate), clock=clock)

    def caller(_: int) -> str:
        gate.arrive()
        return provider.get()

    results = run_threads(N, caller)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert provider.get() == "t1"  # the failure was not cached
    assert issuer.count == 1


async def test_async_error_with_no_token_reaches_the_caller_and_the_next_call_retries() -> None:
    """aget() with no valid token raises the fetch's error, and the next aget() fetches again."""
    clock = FakeClock()
    issuer = Issuer(clock)
    issuer.fail_next = 1

    async def fetch() -> rs.Token:
        return issuer()

    provider = rs.TokenProvider(fetch, clock=clock)
    try:
        with pytest.raises(ConnectionError):
            await provider.aget()
        assert await provider.aget() == "t1"
    finally:
        await provider.aclose()


def test_an_expired_token_blocks_callers_on_the_refresh() -> None:
    """Once the token has expired, get() waits for the refresh and returns the new token."""
    clock = FakeClock()
    issuer = Issuer(clock)
    provider = rs.TokenProvider(issuer, clock=clock)
    assert provider.get() == "t1"
    clock.advance(3601)
    assert provider.get() == "t2"
    assert issuer.count == 2


def test_a_fetch_that_calls_its_own_provider_fails_instead_of_deadlocking() -> None:
    """A fetch calling get() on its own provider gets a RuntimeError rather than waiting for itself forever."""
    provider: rs.TokenProvider

    def fetch() -> rs.Token:
        provider.get()
        return rs.Token("v", 2e9)

    provider = rs.TokenProvider(fetch, clock=FakeClock())
    with pytest.raises(RuntimeError, match="its own provider"):
        provider.get()


async def test_a_store_without_an_asyncio_client_is_a_type_error_not_an_outage() -> None:
    """A store whose async methods raise TypeError (misconfigured) surfaces that error from aget()."""

    class SyncOnlyStore:
        def get(self, key: str) -> None: ...
        def lookup(self, key: str, *, now: float, lease_ttl: float) -> None: ...
        def set(self, key: str, entry: object, *, now: float, lease: str | None = None) -> bool:
            return False

        def release(self, key: str, lease: str) -> None: ...
        def invalidate(self, key: str) -> None: ...

        async def alookup(self, key: str, *, now: float, lease_ttl: float) -> None:
            raise TypeError("this store has no asyncio client")

    provider = rs.TokenProvider(lambda: rs.Token("v", 2e9), store=SyncOnlyStore(), clock=FakeClock())  # type: ignore[arg-type]
    try:
        with pytest.raises(TypeError, match="no asyncio client"):
            await provider.aget()
    finally:
        await provider.aclose()
