"""NearCache on its own (no Redis): tickets, eviction, the channel's state, waiters."""

from __future__ import annotations

import asyncio
import threading

import pytest

import resilient as rs
from resilient.stores.base import Entry
from resilient.stores.near import DROP, WAKE

NOW = 1_700_000_000.0


def live(maxsize: int = 10) -> rs.NearCache:
    near = rs.NearCache(maxsize=maxsize)
    near.attach(object(), lambda: NOW)
    near.up()
    return near


def entry(value: object, stale_until: float = NOW + 60) -> Entry:
    return Entry(value, NOW + 30, stale_until)


def keep(near: rs.NearCache, key: str, value: object) -> None:
    near.install(key, near.begin(key), entry(value))


def test_a_read_keeps_its_copy_unless_an_invalidation_overtook_it() -> None:
    """install() keeps the copy only if no message for the key came since begin()."""
    near = live()
    keep(near, "a", 1)
    assert near.get("a") == entry(1)
    ticket = near.begin("b")
    near.notified(DROP, "b")
    near.install("b", ticket, entry(2))
    assert near.get("b") is None


def test_a_wake_message_keeps_the_copy_and_a_drop_message_removes_it() -> None:
    """A freed lease (WAKE) changes no record; a write (DROP) does."""
    near = live()
    keep(near, "a", 1)
    near.notified(WAKE, "a")
    assert near.get("a") is not None
    near.notified(DROP, "a")
    assert near.get("a") is None


def test_own_writes_are_not_dropped_twice() -> None:
    """A DROP sent by this cache itself leaves a copy read after the write in place."""
    near = live()
    keep(near, "a", 1)
    near.notified(DROP, "a", near.sender)
    assert near.get("a") is not None


def test_past_maxsize_the_oldest_copy_goes() -> None:
    """maxsize copies at most; the oldest-installed is dropped first."""
    near = live(maxsize=2)
    for key in ("a", "b", "c"):
        keep(near, key, key)
    assert len(near) == 2
    assert near.get("a") is None and near.get("c") is not None


def test_a_copy_past_its_stale_deadline_is_not_served() -> None:
    """The record's own expiry bounds the copy."""
    near = live()
    near.install("a", near.begin("a"), entry(1, stale_until=NOW))
    assert near.get("a") is None
    assert len(near) == 0


def test_while_down_nothing_is_served_kept_or_ticketed() -> None:
    """down() drops every copy; reads begun before it, or while down, keep nothing."""
    near = live()
    keep(near, "a", 1)
    before = near.begin("b")
    near.down()
    assert not near.live and near.get("a") is None
    assert near.begin("c") is None and near.watch("c") is None
    near.up()
    near.install("b", before, entry(2))
    assert near.get("b") is None
    keep(near, "b", 3)
    assert near.get("b") == entry(3)


def test_a_waiter_is_woken_by_its_keys_message_and_by_the_channel_going_down() -> None:
    """watch() waiters wake on the key's message, or when the channel drops (then they poll)."""
    near = live()
    waiter = near.watch("a")
    other = near.watch("b")
    assert waiter is not None and other is not None
    threading.Timer(0.01, near.notified, (DROP, "a")).start()
    assert waiter.wait(10)
    assert not other.wait(0)
    near.down()
    assert other.wait(0)
    waiter.close()
    other.close()


async def test_an_async_waiter_is_woken_from_another_thread() -> None:
    """awatch() waiters are woken thread-safely from the subscriber thread."""
    near = live()
    waiter = near.awatch("a")
    assert waiter is not None
    try:
        threading.Timer(0.01, near.notified, (DROP, "a")).start()
        assert await asyncio.wait_for(waiter.wait(10), 20)
    finally:
        waiter.close()


def test_bad_maxsize_is_refused_naming_it() -> None:
    """maxsize must be an int >= 1."""
    for bad in (0, -3, 2.0, False, None):
        with pytest.raises(ValueError, match="maxsize"):
            rs.NearCache(maxsize=bad)  # type: ignore[arg-type]
