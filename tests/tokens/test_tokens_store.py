"""TokenProvider with a shared store (the Store protocol, via a small in-test fake): one fetch per fleet."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from typing import Any

import pytest
import structlog

import resilient as rs
from resilient.stores.base import Entry, Lookup
from resilient.testing import FakeClock, capture_events, no_waiting
from tests.conftest import gather_all, run_threads
from tests.tokens.test_tokens import Issuer

PROCESSES = 4


class FakeStore:
    """The Store protocol in a dict: entries kept until ``stale_until``, one lease per key."""

    def __init__(self, clock: rs.Clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.seen = threading.Condition()
        self.entries: dict[str, Entry] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.refreshing_seen = 0
        self.fail = False

    def _check(self) -> None:
        if self.fail:
            raise ConnectionError("store down")

    def _live(self, key: str, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None and now >= entry.stale_until:
            del self.entries[key]
            return None
        return entry

    def get(self, key: str) -> Entry | None:
        self._check()
        with self.lock:
            return self._live(key, self.clock.time())

    def lookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        self._check()
        with self.lock:
            entry = self._live(key, now)
            if entry is not None and now < entry.expires_at:
                return Lookup(entry, None, False)
            held = self.leases.get(key)
            if held is not None and held[1] > now:
                with self.seen:
                    self.refreshing_seen += 1
                    self.seen.notify_all()
                return Lookup(entry, None, True)
            lease = uuid.uuid4().hex
            with self.seen:
                self.leases[key] = (lease, now + lease_ttl)
                self.seen.notify_all()
            return Lookup(entry, lease, False)

    def set(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        self._check()
        with self.lock:
            if lease is not None:
                held = self.leases.get(key)
                if held is None or held[0] != lease or held[1] <= now:
                    return False
                del self.leases[key]
            self.entries[key] = entry
            return True

    def release(self, key: str, lease: str) -> None:
        with self.lock:
            if self.leases.get(key, ("", 0.0))[0] == lease:
                del self.leases[key]

    def invalidate(self, key: str) -> None:
        self._check()
        with self.lock:
            self.entries.pop(key, None)
            self.leases.pop(key, None)

    async def aget(self, key: str) -> Entry | None:
        return self.get(key)

    async def alookup(self, key: str, *, now: float, lease_ttl: float) -> Lookup:
        return self.lookup(key, now=now, lease_ttl=lease_ttl)

    async def aset(self, key: str, entry: Entry, *, now: float, lease: str | None = None) -> bool:
        return self.set(key, entry, now=now, lease=lease)

    async def arelease(self, key: str, lease: str) -> None:
        self.release(key, lease)

    async def ainvalidate(self, key: str) -> None:
        self.invalidate(key)


class HeldIssuer(Issuer):
    """An issuer whose fetches finish only after ``waiting`` other processes saw the refresh in progress."""

    def __init__(self, clock: rs.Clock, store: FakeStore, waiting: int) -> None:
        super().__init__(clock)
        self.store = store
        self.waiting = waiting

    def __call__(self) -> rs.Token:
        with self.store.seen:
            assert self.store.seen.wait_for(lambda: self.store.refreshing_seen >= self.waiting, timeout=10)
        return super().__call__()


def fleet(clock: rs.Clock, store: FakeStore, fetch: Any, n: int = PROCESSES) -> list[rs.TokenProvider]:
    """``n`` providers, each standing for one process (own state, own random draws), sharing ``store``."""
    return [
        rs.TokenProvider(fetch, store=store, clock=clock, refresh_before=60, refresh_jitter=0.5, rng=random.Random(i))
        for i in range(n)
    ]


def test_token_record_in_the_store_is_value_and_expiry_only() -> None:
    """The store entry holds only the token's value and expiry, kept until the token expires."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    provider = rs.TokenProvider(issuer, store=store, clock=clock, refresh_before=60, refresh_jitter=0.5)
    provider.get()
    entry = store.entries["token"]
    assert entry.value == {"value": "t1", "expires_at": issuer.expiry["t1"]}
    assert entry.stale_until == issuer.expiry["t1"]
    assert entry.expires_at == pytest.approx(issuer.expiry["t1"] - 90)  # the fleet's refresh window opens


def test_a_fleet_cold_start_fetches_once() -> None:
    """4 processes starting on an empty store cause one fetch; the others wait for its token and read it."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = HeldIssuer(clock, store, waiting=PROCESSES - 1)
    providers = fleet(clock, store, issuer)
    with no_waiting():
        results = run_threads(PROCESSES, lambda i: providers[i].get())
    assert results == ["t1"] * PROCESSES
    assert issuer.count == 1
    assert store.refreshing_seen >= PROCESSES - 1
    assert sum(p.stats()["shared"] for p in providers) == PROCESSES - 1


@pytest.mark.parametrize("kind", ["fake", "memory"])
def test_a_fleet_refreshes_once_per_expiry(kind: str) -> None:
    """Over three token lifetimes a 4-process fleet fetches once per expiry, and nobody gets an expired token."""
    clock = FakeClock()
    store: Any = FakeStore(clock) if kind == "fake" else rs.MemoryStore()
    issuer = Issuer(clock)
    providers = fleet(clock, store, issuer)
    end = clock.time() + 3 * 3600 + 30
    while clock.time() < end:
        for provider in providers:
            value = provider.get()
            assert clock.time() < issuer.expiry[value]
            provider.close()
        clock.advance(7.0)
    assert issuer.count == 4  # cold start + one per expiry
    for earlier, later in zip(issuer.fetched_at, issuer.fetched_at[1:], strict=False):
        assert earlier + 3600 - 90 <= later < earlier + 3600


def test_an_idle_fleet_blocks_once_on_an_expired_token() -> None:
    """When the shared token expired unnoticed, the fleet's next calls cause one fetch."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    providers = fleet(clock, store, issuer)
    with no_waiting():
        run_threads(PROCESSES, lambda i: providers[i].get())
        clock.advance(3601)
        results = run_threads(PROCESSES, lambda i: providers[i].get())
    assert results == ["t2"] * PROCESSES
    assert issuer.count == 2


def test_invalidate_deletes_the_shared_token_only_while_it_holds_that_value() -> None:
    """A 401 in one process deletes the shared record; a late 401 for the old value leaves the new one."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    a, b = fleet(clock, store, issuer, n=2)
    assert a.get() == b.get() == "t1"
    assert a.invalidate("t1")
    assert "token" not in store.entries
    assert a.get() == "t2"
    assert b.invalidate("t1")  # b still held t1: it drops it, but the store holds t2 now
    assert store.entries["token"].value["value"] == "t2"
    assert b.get() == "t2"
    assert issuer.count == 2


def test_a_refused_token_is_never_read_back_from_the_store() -> None:
    """After invalidating a value, a process does not adopt that value from the store again."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    (provider,) = fleet(clock, store, issuer, n=1)
    provider.get()
    stale = store.entries["token"]
    provider.invalidate("t1")
    store.entries["token"] = stale  # a slow writer put the refused token back
    with no_waiting():
        assert provider.get() == "t2"


def test_a_failing_store_degrades_to_fetching_in_process() -> None:
    """With the store down, get() still returns a token (fetched here) and reports the store error."""
    clock = FakeClock()
    store = FakeStore(clock)
    store.fail = True
    issuer = Issuer(clock)
    (provider,) = fleet(clock, store, issuer, n=1)
    with capture_events() as events:
        assert provider.get() == "t1"
    assert any(e["event"] == "token.store_error" and e["store_op"] == "lookup" for e in events)


def test_a_failed_fetch_under_the_lease_releases_it() -> None:
    """A lease holder whose fetch fails releases the lease, so the next caller may refresh at once."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    issuer.fail_next = 1
    (provider,) = fleet(clock, store, issuer, n=1)
    with pytest.raises(ConnectionError):
        provider.get()
    assert store.leases == {}
    assert provider.get() == "t1"


async def test_async_fleet_cold_start_fetches_once() -> None:
    """4 providers sharing a store, each awaited by 5 tasks at once, cause one fetch."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)

    async def fetch() -> rs.Token:
        await asyncio.sleep(0)
        return issuer()

    providers = fleet(clock, store, fetch)
    try:
        with no_waiting():
            results = await gather_all(*(p.aget() for p in providers for _ in range(5)))
    finally:
        await gather_all(*(p.aclose() for p in providers))
    assert results == ["t1"] * 20
    assert issuer.count == 1


async def test_async_invalidate_deletes_the_shared_token() -> None:
    """ainvalidate() deletes the shared record that still holds the refused value."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    (provider,) = fleet(clock, store, issuer, n=1)
    try:
        assert await provider.aget() == "t1"
        assert await provider.ainvalidate("t1")
        assert "token" not in store.entries
        assert await provider.aget() == "t2"
    finally:
        await provider.aclose()


def test_no_token_value_in_any_event_log_line_or_repr() -> None:
    """Refreshes, shares, failures, invalidations and store errors never show the token value."""
    clock = FakeClock()
    store = FakeStore(clock)
    secrets: list[str] = []
    fail = [0]

    def fetch() -> rs.Token:
        if fail[0]:
            fail[0] -= 1
            raise ConnectionError("down")
        secrets.append(f"SECRET-{uuid.uuid4().hex}")
        return rs.Token.expiring_in(secrets[-1], 3600, clock=clock)

    a, b = fleet(clock, store, fetch, n=2)
    with capture_events() as events, structlog.testing.capture_logs() as logs:
        a.get()  # token.refreshed
        b.get()  # token.shared
        clock.advance(3600 - 59)
        fail[0] = 1
        a.get()  # background refresh fails: token.refresh_failed
        a.close()
        a.invalidate(secrets[-1])  # token.invalidated
        store.fail = True
        fail[0] = 1
        with pytest.raises(ConnectionError):
            a.get()  # token.store_error, then token.refresh_failed with no token
        a.get()
    names = {e["event"] for e in events}
    expected = {"token.refreshed", "token.shared", "token.refresh_failed", "token.invalidated", "token.store_error"}
    assert expected <= names
    assert {entry["event"] for entry in logs} == names
    text = repr(events) + repr(logs) + repr(a) + repr(b) + repr(rs.TokenAuth(a))
    assert secrets
    for secret in secrets:
        assert secret not in text


def test_a_process_whose_refresh_point_passes_during_anothers_refresh_keeps_serving_then_reads_it() -> None:
    """While another process holds the refresh lease, a process keeps its valid token, then reads the new one."""
    clock = FakeClock()
    store = FakeStore(clock)
    issuer = Issuer(clock)
    release = threading.Event()

    def fetch() -> rs.Token:
        if issuer.count:
            assert release.wait(10)
        return issuer()

    a, b = fleet(clock, store, fetch, n=2)
    try:
        assert a.get() == b.get() == "t1"
        clock.advance(3600 - 59)  # past every draw's refresh point, token still valid
        assert a.get() == "t1"  # a takes the lease; its fetch is held
        with store.seen:  # a's background thread takes the lease
            assert store.seen.wait_for(lambda: bool(store.leases), timeout=10)
        assert b.get() == "t1"  # b sees the refresh in progress and keeps serving
        b.close()
        assert b.stats()["fetches"] == 0
    finally:
        release.set()
        a.close()
    assert a.get() == "t2"
    clock.advance(1.0)  # beyond b's next look at the store
    b.get()
    b.close()
    assert b.get() == "t2"
    assert issuer.count == 2
    assert b.stats() == {"fetches": 0, "shared": 2, "refresh_failures": 0, "invalidations": 0}


def test_a_process_that_waited_too_long_fetches_for_itself_without_writing() -> None:
    """When the lease holder never writes, a waiting process fetches its own token and leaves the store alone."""
    clock = FakeClock()
    store = FakeStore(clock)
    store.leases["token"] = ("someone-else", float("inf"))  # a holder that never finishes
    issuer = Issuer(clock)
    (provider,) = fleet(clock, store, issuer, n=1)
    with no_waiting():
        assert provider.get() == "t1"
    assert issuer.count == 1
    assert store.entries == {}
    assert store.refreshing_seen >= 1
