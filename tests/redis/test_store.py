"""RedisStore against a real redis-server: one-command hits, leases, invalidation, records."""

from __future__ import annotations

import json
import pickle
import time
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

import resilient as rs
from resilient.stores.base import Entry, Lookup
from resilient.stores.redis import RedisStore
from resilient.stores.wait import apoll_lookup, poll_lookup
from resilient.testing import capture_events

pytestmark = pytest.mark.redis

NOW = 1_700_000_000.0


def entry(value: Any, *, fresh: float = 60.0, stale: float = 60.0, delta: float = 0.25) -> Entry:
    return Entry(value, NOW + fresh, NOW + fresh + stale, delta)


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if "info" not in name and "config" not in name
    }


def test_warm_hits_cost_exactly_one_get_each(store: RedisStore, client: redis.Redis) -> None:
    """1,000 hits on a warm key cost 1,000 GET commands and nothing else."""
    store.set("warm", entry({"n": 1}), now=NOW)
    client.config_resetstat()
    for _ in range(1000):
        assert store.get("warm") == entry({"n": 1})
    assert commands(client) == {"get": 1000}


async def test_async_warm_hits_cost_exactly_one_get_each(astore: RedisStore, client: redis.Redis) -> None:
    """Async hits also cost one GET each."""
    await astore.aset("warm", entry([1, 2]), now=NOW)
    client.config_resetstat()
    for _ in range(200):
        assert await astore.aget("warm") == entry([1, 2])
    assert commands(client) == {"get": 200}


def test_physical_ttl_covers_the_stale_window(store: RedisStore, client: redis.Redis) -> None:
    """The record lives in Redis until its stale deadline, not just its expiry."""
    store.set("k", entry("v", fresh=10, stale=50), now=NOW)
    assert 59_000 < client.pttl("resilient:{k}:v") <= 60_000


def test_all_keys_of_an_entry_share_one_cluster_slot(store: RedisStore, client: redis.Redis) -> None:
    """Record, lease and bucket keys of one key hash to one slot, even for keys with braces."""
    for key in ("user:1", "odd}{key", "{x}", ""):
        found = store.lookup(key, now=NOW, lease_ttl=5)
        store.set(key, entry(1), now=NOW, lease=found.lease)
        store.lookup(key, now=NOW + 1000, lease_ttl=5)  # stale: takes a lease key again
        store.take(key, rate=1, burst=1, now=NOW)
        names = client.keys("*")
        assert len(names) == 3
        assert len({key_slot(n) for n in names if isinstance(n, bytes)}) == 1
        client.flushall()


def test_lookup_grants_one_lease_then_reports_refreshing(store: RedisStore) -> None:
    """On a cold key the first lookup gets the lease; the next one learns someone is refreshing."""
    first = store.lookup("cold", now=NOW, lease_ttl=5)
    second = store.lookup("cold", now=NOW, lease_ttl=5)
    assert first.lease is not None
    assert not first.refreshing
    assert first.entry is None
    assert second == Lookup(None, None, True)
    assert store.set("cold", entry("v"), now=NOW, lease=first.lease)
    assert store.lookup("cold", now=NOW, lease_ttl=5) == Lookup(entry("v"), None, False)


def test_stale_entry_comes_with_the_lease_and_with_refreshing(store: RedisStore) -> None:
    """Past its expiry, the entry is handed out stale both to the lease holder and to the others."""
    store.set("k", entry("old", fresh=10), now=NOW)
    holder = store.lookup("k", now=NOW + 11, lease_ttl=5)
    other = store.lookup("k", now=NOW + 11, lease_ttl=5)
    assert holder.lease is not None
    assert holder.entry == entry("old", fresh=10)
    assert other.refreshing
    assert other.lease is None
    assert other.entry == entry("old", fresh=10)


def test_entry_past_its_stale_deadline_is_not_served(store: RedisStore) -> None:
    """A lookup after the stale deadline sees no entry, even if Redis still has the record."""
    store.set("k", entry("old", fresh=10, stale=10), now=NOW)
    found = store.lookup("k", now=NOW + 25, lease_ttl=5)
    assert found.entry is None
    assert found.lease is not None


def test_write_with_a_lease_that_is_not_current_fails(store: RedisStore) -> None:
    """A set carrying a lease that is not the key's lease writes nothing."""
    store.lookup("k", now=NOW, lease_ttl=5)
    assert not store.set("k", entry("v"), now=NOW, lease="not-the-lease")
    assert store.get("k") is None


def test_release_frees_the_lease_only_for_its_holder(store: RedisStore) -> None:
    """Releasing someone else's lease does nothing; releasing one's own lets the next caller lease."""
    held = store.lookup("k", now=NOW, lease_ttl=5)
    assert held.lease is not None
    store.release("k", "someone-else")
    assert store.lookup("k", now=NOW, lease_ttl=5).refreshing
    store.release("k", held.lease)
    assert store.lookup("k", now=NOW, lease_ttl=5).lease is not None


def test_invalidate_during_a_lease_blocks_the_stale_write(store: RedisStore) -> None:
    """A refresh that began before an invalidation cannot write its older value afterwards."""
    store.set("k", entry("v1", fresh=10), now=NOW)
    slow = store.lookup("k", now=NOW + 11, lease_ttl=5)
    store.invalidate("k")
    newer = store.lookup("k", now=NOW + 11, lease_ttl=5)
    assert slow.lease is not None
    assert newer.lease is not None
    assert not store.set("k", entry("v2-computed-before-invalidation"), now=NOW, lease=slow.lease)
    assert store.get("k") is None
    assert store.set("k", entry("v3"), now=NOW, lease=newer.lease)
    assert store.get("k") == entry("v3")


async def test_async_invalidate_during_a_lease_blocks_the_stale_write(astore: RedisStore) -> None:
    """The async twins keep the same stale-set protection."""
    slow = await astore.alookup("k", now=NOW, lease_ttl=5)
    await astore.ainvalidate("k")
    assert slow.lease is not None
    assert not await astore.aset("k", entry("old"), now=NOW, lease=slow.lease)
    assert await astore.aget("k") is None
    again = await astore.alookup("k", now=NOW, lease_ttl=5)
    assert again.lease is not None
    await astore.arelease("k", again.lease)
    assert (await astore.alookup("k", now=NOW, lease_ttl=5)).lease is not None


def test_an_abandoned_lease_expires_and_a_waiter_takes_it(store: RedisStore) -> None:
    """A lease whose holder never writes expires after lease_ttl; a polling waiter then gets it."""
    held = store.lookup("k", now=time.time(), lease_ttl=0.2)
    assert held.lease is not None
    started = time.monotonic()
    found = poll_lookup(store, "k", lease_ttl=0.2, wait=3.0, clock=rs.Clock())
    waited = time.monotonic() - started
    assert found is not None
    assert found.lease not in (None, held.lease)
    assert 0.1 <= waited < 2.0


async def test_async_poll_returns_the_value_written_by_the_holder(astore: RedisStore) -> None:
    """A waiter polling asynchronously returns the fresh entry once the holder writes it."""
    now = time.time()
    held = await astore.alookup("k", now=now, lease_ttl=5)
    await astore.aset("k", Entry("v", now + 60, now + 120), now=now, lease=held.lease)
    found = await apoll_lookup(astore, "k", lease_ttl=5, wait=1.0, clock=rs.Clock())
    assert found is not None
    assert found.entry is not None
    assert found.entry.value == "v"
    assert found.lease is None


def test_poll_gives_up_after_wait(store: RedisStore) -> None:
    """A waiter whose holder neither writes nor lets go returns None after its wait."""
    store.lookup("k", now=time.time(), lease_ttl=30)
    found = poll_lookup(store, "k", lease_ttl=30, wait=0.05, clock=rs.Clock())
    assert found is None


def test_raw_bytes_are_json_not_pickle(store: RedisStore, client: redis.Redis) -> None:
    """By default the stored record holds JSON, and is not something pickle would load."""
    store.set("k", entry({"a": [1, "é"]}), now=NOW)
    raw = client.get("resilient:{k}:v")
    assert isinstance(raw, bytes)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)
    assert json.loads(raw.partition(b"\n")[2]) == {"a": [1, "é"]}


def test_signed_pickle_round_trips_only_with_the_same_key(client: redis.Redis) -> None:
    """A pickled record reads back with its key; with another key it is a logged miss."""
    writer = RedisStore(client, serializer=rs.PickleSerializer(key=b"k" * 32))
    reader = RedisStore(client, serializer=rs.PickleSerializer(key=b"x" * 32))
    writer.set("k", entry({1, 2}), now=NOW)
    assert writer.get("k") == entry({1, 2})
    with capture_events() as events:
        assert reader.get("k") is None
    assert [e["event"] for e in events] == ["cache.decode_error"]


def test_undecodable_record_is_a_logged_miss(store: RedisStore, client: redis.Redis) -> None:
    """Garbage under an entry's key is a miss with a cache.decode_error event, not a crash."""
    client.set("resilient:{k}:v", b"\x80garbage")
    with capture_events() as events:
        assert store.get("k") is None
    assert events[0]["event"] == "cache.decode_error"
    assert events[0]["key"] == "k"


def test_fresh_record_that_fails_to_decode_yields_the_lease(store: RedisStore, client: redis.Redis) -> None:
    """A fresh-looking record whose payload does not decode is a miss: the lookup grants the lease."""
    client.set("resilient:{k}:v", b"R1 %r %r 0.0\n{not json" % (NOW + 60, NOW + 120))
    with capture_events():
        found = store.lookup("k", now=NOW, lease_ttl=5)
    assert found.entry is None
    assert found.lease is not None


def test_a_module_with_str_dumps_is_a_serializer(client: redis.Redis) -> None:
    """Anything with dumps/loads serializes, even the json module whose dumps returns str."""
    store = RedisStore(client, serializer=json)
    store.set("k", entry([1]), now=NOW)
    assert store.get("k") == entry([1])


async def test_a_store_with_both_clients_serves_sync_and_async(client: redis.Redis, aclient: Any) -> None:
    """Paired clients let one store be used from sync and async code on the same data."""
    store = RedisStore(client, aclient=aclient)
    store.set("k", entry("v"), now=NOW)
    assert await store.aget("k") == entry("v")
    assert await store.atake("b", rate=1, burst=1, now=NOW) == 0.0
    assert store.take("b", rate=1, burst=1, now=NOW) == pytest.approx(1.0)


async def test_from_url_pairs_and_closes_its_clients(redis_url: str) -> None:
    """RedisStore.from_url makes a sync and an async client of the same server."""
    store = RedisStore.from_url(redis_url, prefix="app:")
    try:
        store.set("k", entry(1), now=NOW)
        assert await store.aget("k") == entry(1)
    finally:
        await store.aclose()


def test_sync_method_without_a_sync_client_names_the_mismatch(redis_url: str) -> None:
    """Calling a sync method on an asyncio-only store raises a TypeError that says what to do."""
    store = RedisStore(redis.asyncio.Redis.from_url(redis_url))
    with pytest.raises(TypeError, match=r"needs a sync redis.Redis client.*RedisStore.from_url"):
        store.get("k")


async def test_async_method_without_an_async_client_names_the_mismatch(store: RedisStore) -> None:
    """Calling an async twin on a sync-only store raises a TypeError that says what to do."""
    with pytest.raises(TypeError, match=r"needs a redis.asyncio client.*RedisStore.from_url.*aclient="):
        await store.alookup("k", now=NOW, lease_ttl=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, "needs a client"),
        ({"client": "redis://x"}, TypeError, "client must be"),
        ({"prefix": "a{b"}, ValueError, "prefix"),
        ({"serializer": object()}, TypeError, "serializer"),
        ({"reset_timeout": 10}, ValueError, "reset_timeout"),
        ({"failure_threshold": 0}, ValueError, "failure_threshold"),
    ],
)
def test_bad_options_are_refused_naming_them(
    client: redis.Redis, kwargs: dict[str, Any], error: type, match: str
) -> None:
    """Bad constructor arguments raise errors that name the parameter."""
    if kwargs and "client" not in kwargs:
        kwargs = {"client": client, **kwargs}
    with pytest.raises(error, match=match):
        RedisStore(**kwargs)


def test_a_decoding_client_is_refused(redis_url: str) -> None:
    """A client with decode_responses=True cannot hold byte records and is refused at once."""
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            RedisStore(c)
    finally:
        c.close()


def test_a_changed_record_is_decoded_afresh(store: RedisStore, client: redis.Redis) -> None:
    """Hits reuse the decoded entry only while the stored bytes are the same."""
    store.set("k", entry({"v": 1}), now=NOW)
    first = store.get("k")
    assert store.get("k") is first
    store.set("k", entry({"v": 2}), now=NOW)
    assert store.get("k") == entry({"v": 2})
    client.set("resilient:{k}:v", b"garbage")
    with capture_events():
        assert store.get("k") is None


def test_a_value_that_does_not_serialize_is_a_type_error_and_frees_its_lease(store: RedisStore) -> None:
    """A value JSON cannot hold raises TypeError naming the type and the key (logged), and the lease is released."""
    held = store.lookup("k", now=NOW, lease_ttl=30)
    assert held.lease is not None
    with capture_events() as events, pytest.raises(TypeError, match=r"cannot store a object under key 'k'"):
        store.set("k", entry(object()), now=NOW, lease=held.lease)
    assert [e["event"] for e in events] == ["cache.encode_error"]
    assert store.lookup("k", now=NOW, lease_ttl=30).lease is not None


async def test_async_value_that_does_not_serialize_is_not_written(astore: RedisStore) -> None:
    """The async twin refuses the write the same way."""
    with capture_events() as events, pytest.raises(TypeError, match="cannot store a object"):
        await astore.aset("k", entry(object()), now=NOW)
    assert [e["event"] for e in events] == ["cache.encode_error"]
    assert await astore.aget("k") is None
