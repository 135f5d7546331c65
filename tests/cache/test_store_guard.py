"""The cache's store guard with a store that keeps its own health (as RedisStore does), without Redis."""

from __future__ import annotations

from typing import Any

import resilient as rs
from resilient.cache.guard import StoreGuard
from resilient.stores.memory import MemoryStore
from resilient.testing import FakeClock, capture_events


class Resting(MemoryStore):
    """A MemoryStore with RedisStore's health surface: ``available``, refusals, per-call errors."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.poison: set[str] = set()

    @property
    def available(self) -> bool:
        return self.up

    def get(self, key: str) -> Any:
        if not self.up:
            raise rs.StoreUnavailable("resting", remaining=0.2, refused=True)
        if key in self.poison:
            raise UnicodeEncodeError("utf-8", key, 0, 1, "surrogates not allowed")
        return super().get(key)


def test_a_refusal_is_no_failure_and_the_store_is_used_again_once_available() -> None:
    """While the store rests the fallback serves without counting errors; once available the primary is back."""
    store = Resting()
    guard = StoreGuard(store, FakeClock())
    store.up = False
    with capture_events() as events:
        assert guard.get("k", "op") is None
        assert guard.active is guard.fallback
    assert guard.errors.value == 0
    assert [e for e in events if e["event"] == "cache.store_error"] == []
    store.up = True
    assert guard.current() is store


def test_a_per_call_error_leaves_the_other_keys_on_the_store() -> None:
    """An error that is not StoreUnavailable fails that call's access alone."""
    store = Resting()
    store.poison.add("bad")
    guard = StoreGuard(store, FakeClock())
    with capture_events() as events:
        assert guard.get("bad", "op") is None
    assert guard.active is store
    assert guard.errors.value == 1
    assert [e["call_only"] for e in events if e["event"] == "cache.store_error"] == [True]


def test_after_a_failure_calls_keep_to_the_fallback_for_the_store_timeout() -> None:
    """A real failure (not a refusal) keeps the rest of that call, and its neighbours, off the store for a moment."""
    store = Resting()
    clock = FakeClock()
    guard = StoreGuard(store, clock)
    guard.failed(rs.StoreUnavailable("timed out"), "get", "k", "op")
    assert store.available
    assert guard.current() is guard.fallback  # the same call's lookup does not wait on the store again
    clock.advance(0.25)
    assert guard.current() is store
