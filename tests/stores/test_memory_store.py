"""MemoryStore: entries, leases and invalidation in process."""

from __future__ import annotations

import json
from typing import Any

import pytest

import resilient as rs
from resilient.stores.base import Entry, Lookup, Store


def entry(value: Any, expires_at: float = 10.0, stale_until: float = 20.0) -> Entry:
    return Entry(value, expires_at, stale_until, 0.1)


def test_implements_the_store_interface() -> None:
    """MemoryStore has every method of the Store protocol."""
    store: Store = rs.MemoryStore()
    for name in ("get", "lookup", "set", "release", "invalidate", "aget", "alookup", "aset", "arelease", "ainvalidate"):
        assert callable(getattr(store, name))


def test_fresh_entry_is_returned_without_a_lease() -> None:
    """lookup returns a fresh entry as it is: no lease, not refreshing."""
    store = rs.MemoryStore()
    store.set("k", entry("v"), now=0.0)
    assert store.get("k") == entry("v")
    assert store.lookup("k", now=5.0, lease_ttl=1.0) == Lookup(entry("v"), None, False)


def test_first_lookup_of_a_missing_key_gets_the_lease_and_the_next_sees_refreshing() -> None:
    """One caller gets the lease; while it is valid others are told someone refreshes."""
    store = rs.MemoryStore()
    first = store.lookup("k", now=0.0, lease_ttl=5.0)
    assert first.lease is not None
    assert first.entry is None
    second = store.lookup("k", now=1.0, lease_ttl=5.0)
    assert second.lease is None
    assert second.refreshing
    third = store.lookup("k", now=5.0, lease_ttl=5.0)  # the first lease has lapsed
    assert third.lease is not None
    assert third.lease != first.lease


def test_stale_entry_comes_with_the_lease() -> None:
    """Past expiry but within the stale window, lookup returns the stale entry with a lease."""
    store = rs.MemoryStore()
    store.set("k", entry("old"), now=0.0)
    found = store.lookup("k", now=12.0, lease_ttl=5.0)
    assert found.entry == entry("old")
    assert found.lease is not None
    waiting = store.lookup("k", now=12.0, lease_ttl=5.0)
    assert waiting.entry == entry("old")
    assert waiting.refreshing


def test_set_with_the_lease_writes_and_releases_it() -> None:
    """A write under the valid lease lands and frees the lease."""
    store = rs.MemoryStore()
    lease = store.lookup("k", now=0.0, lease_ttl=5.0).lease
    assert store.set("k", entry("v"), now=1.0, lease=lease)
    assert store.get("k") == entry("v")
    assert store.lookup("k", now=11.0, lease_ttl=5.0).lease is not None


def test_invalidate_voids_outstanding_leases() -> None:
    """A refresh that began before invalidate() cannot write afterwards."""
    store = rs.MemoryStore()
    store.set("k", entry("old"), now=0.0)
    lease = store.lookup("k", now=11.0, lease_ttl=5.0).lease
    store.invalidate("k")
    assert store.get("k") is None
    assert not store.set("k", entry("slow refresh"), now=12.0, lease=lease)
    assert store.get("k") is None


def test_an_expired_lease_cannot_write() -> None:
    """A lease used after its lease_ttl is refused."""
    store = rs.MemoryStore()
    lease = store.lookup("k", now=0.0, lease_ttl=1.0).lease
    assert not store.set("k", entry("late"), now=2.0, lease=lease)
    assert store.get("k") is None


def test_release_frees_the_lease_without_writing() -> None:
    """After release, the next lookup gets a new lease and nothing was written."""
    store = rs.MemoryStore()
    lease = store.lookup("k", now=0.0, lease_ttl=5.0).lease
    assert lease is not None
    store.release("k", lease)
    assert store.get("k") is None
    assert store.lookup("k", now=0.0, lease_ttl=5.0).lease is not None


def test_entries_past_stale_until_are_dropped() -> None:
    """An entry past its stale deadline is gone for lookup and purged on later writes."""
    store = rs.MemoryStore()
    store.set("a", entry("a", 1.0, 2.0), now=0.0)
    store.set("b", entry("b", 1.0, 2.0), now=0.0)
    assert store.lookup("a", now=3.0, lease_ttl=1.0).entry is None
    store.set("c", entry("c", 10.0, 20.0), now=3.0)
    assert store.get("a") is None
    assert store.get("b") is None
    assert len(store) == 1


def test_a_lookup_ahead_of_time_grants_a_lease_without_deleting() -> None:
    """lookup(now=expires_at) of a fresh entry (an early refresh) gets the lease and keeps the entry."""
    store = rs.MemoryStore()
    store.set("k", entry("v", 10.0, 10.0), now=0.0)  # no stale window
    found = store.lookup("k", now=10.0, lease_ttl=1.0)
    assert found.lease is not None
    assert store.get("k") == entry("v", 10.0, 10.0)


def test_maxsize_bounds_the_entries() -> None:
    """At most maxsize keys are kept; the least recently used goes first."""
    store = rs.MemoryStore(maxsize=2)
    store.set("a", entry(1), now=0.0)
    store.set("b", entry(2), now=0.0)
    store.get("a")
    store.set("c", entry(3), now=0.0)
    assert store.get("b") is None
    assert store.get("a") is not None
    assert store.get("c") is not None


class JsonSerializer:
    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def test_serializer_keeps_encoded_values_and_returns_copies() -> None:
    """With a serializer values are stored encoded and each read decodes a fresh copy."""
    store = rs.MemoryStore(serializer=JsonSerializer())
    store.set("k", entry({"a": [1]}), now=0.0)
    first = store.get("k")
    assert first is not None
    assert first.value == {"a": [1]}
    first.value["a"].append(2)
    again = store.get("k")
    assert again is not None
    assert again.value == {"a": [1]}
    assert store.lookup("k", now=1.0, lease_ttl=1.0).entry == entry({"a": [1]})


async def test_async_twins_behave_like_the_sync_forms() -> None:
    """aget/alookup/aset/arelease/ainvalidate do what their sync forms do."""
    store = rs.MemoryStore()
    found = await store.alookup("k", now=0.0, lease_ttl=5.0)
    assert found.lease is not None
    assert await store.aset("k", entry("v"), now=0.0, lease=found.lease)
    assert await store.aget("k") == entry("v")
    again = await store.alookup("k", now=11.0, lease_ttl=5.0)
    assert again.lease is not None
    await store.arelease("k", again.lease)
    await store.ainvalidate("k")
    assert await store.aget("k") is None


@pytest.mark.parametrize(("kwargs", "name"), [({"maxsize": 0}, "maxsize"), ({"serializer": object()}, "serializer")])
def test_bad_arguments_name_the_parameter(kwargs: dict[str, Any], name: str) -> None:
    """Bad constructor arguments raise an error naming the parameter."""
    with pytest.raises((ValueError, TypeError), match=name):
        rs.MemoryStore(**kwargs)
