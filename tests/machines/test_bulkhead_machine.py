"""Bulkhead slot bookkeeping on the pure machine."""

from __future__ import annotations

import pytest

from resilient._machines.bulkhead import FULL, QUEUE, RUN, Slots


def test_runs_queues_then_refuses() -> None:
    """Up to max_concurrent run, up to max_queue queue, the rest are refused."""
    s: Slots[str] = Slots(max_concurrent=2, max_queue=1)
    assert [s.try_enter(), s.try_enter()] == [RUN, RUN]
    assert s.try_enter() == QUEUE
    s.enqueue("a")
    assert s.try_enter() == FULL


def test_a_freed_slot_goes_to_the_oldest_waiter() -> None:
    """leave() hands the slot to the oldest waiter, keeping the active count; with none it frees it."""
    s: Slots[str] = Slots(max_concurrent=1, max_queue=2)
    s.try_enter()
    s.enqueue("a")
    s.enqueue("b")
    assert s.leave() == "a"
    assert s.active == 1
    assert s.leave() == "b"
    assert s.leave() is None
    assert s.active == 0


def test_newcomers_do_not_jump_the_queue() -> None:
    """While waiters are queued a newcomer queues too, even if a slot count looks free."""
    s: Slots[str] = Slots(max_concurrent=1, max_queue=5)
    s.try_enter()
    s.enqueue("a")
    assert s.try_enter() == QUEUE


def test_abandon_tells_queued_from_granted() -> None:
    """abandon() is True for a waiter still queued, False for one already handed a slot."""
    s: Slots[str] = Slots(max_concurrent=1, max_queue=2)
    s.try_enter()
    s.enqueue("a")
    s.enqueue("b")
    assert s.abandon("b") is True
    assert s.leave() == "a"
    assert s.abandon("a") is False


def test_bad_max_concurrent() -> None:
    """max_concurrent below 1 raises ValueError naming it."""
    with pytest.raises(ValueError, match="max_concurrent"):
        Slots(max_concurrent=0)
