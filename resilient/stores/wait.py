"""Waiting for another process's refresh of a shared entry: bounded, jittered polling.

A caller that finds the key's lease held elsewhere and has no stale value to
serve polls the store's single-call ``lookup`` until one of these holds, then
returns that ``Lookup``:

* a fresh entry is there (the holder wrote it);
* the lease came to this caller (the holder released it after a failure, or
  died and its lease expired): the caller now refreshes, holding the lease;
* ``wait`` seconds passed: ``None`` (the caller then fetches itself).

Pauses follow ``EqualJitter(base, cap)`` (never 0, so no busy-spinning; jittered,
so waiters of a fleet do not poll in step), each cut to what is left of
``wait``; the number of polls is bounded too. Each poll is one Redis
command (EVALSHA). Polling was chosen over pub/sub notification: it needs no
extra connection per waiter, works the same on Redis Cluster, and notices a
dead holder's expired lease, which a notification never would.
"""

from __future__ import annotations

import math
import random

from .._machines.backoff import EqualJitter
from ..core.clock import Clock
from ..core.waiting import asleep, sleep
from .base import Lookup, Store

__all__ = ["POLL_BASE", "POLL_CAP", "apoll_lookup", "poll_lookup"]

POLL_BASE = 0.01
POLL_CAP = 0.2
_MAX_POLLS = 10_000


def _settled(found: Lookup, now: float) -> bool:
    if found.lease is not None:
        return True
    entry = found.entry
    return not found.refreshing and entry is not None and entry.expires_at > now


def _max_polls(wait: float) -> int:
    return min(_MAX_POLLS, math.ceil(wait / (POLL_BASE / 2)) + 2)


def poll_lookup(
    store: Store, key: str, *, lease_ttl: float, wait: float, clock: Clock, rng: random.Random | None = None
) -> Lookup | None:
    """Poll ``store.lookup(key)`` until a fresh entry or the lease is ours; None after ``wait`` s."""
    deadline = clock.monotonic() + wait
    delays = EqualJitter(POLL_BASE, POLL_CAP).delays(rng)
    for _ in range(_max_polls(wait)):
        left = deadline - clock.monotonic()
        if left <= 0:
            return None
        sleep(clock, min(next(delays), left))
        now = clock.time()
        found = store.lookup(key, now=now, lease_ttl=lease_ttl)
        if _settled(found, now):
            return found
    return None


async def apoll_lookup(
    store: Store, key: str, *, lease_ttl: float, wait: float, clock: Clock, rng: random.Random | None = None
) -> Lookup | None:
    """The async twin of :func:`poll_lookup`."""
    deadline = clock.monotonic() + wait
    delays = EqualJitter(POLL_BASE, POLL_CAP).delays(rng)
    for _ in range(_max_polls(wait)):
        left = deadline - clock.monotonic()
        if left <= 0:
            return None
        await asleep(clock, min(next(delays), left))
        now = clock.time()
        found = await store.alookup(key, now=now, lease_ttl=lease_ttl)
        if _settled(found, now):
            return found
    return None
