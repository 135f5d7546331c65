"""A token shared by a fleet through a :class:`~resilient.stores.base.Store`.

The record under the provider's ``key`` is the token only::

    Entry(value={"value": <the secret>, "expires_at": <epoch s>},
          expires_at=<start of the fleet's refresh window>,
          stale_until=<the token's expiry>)

so the store holds a live credential until it expires. The entry turns "stale"
(``lookup`` then hands out the refresh lease) at the earliest refresh point any
process may draw; the first process whose own jittered point has passed takes
the lease, fetches and writes; the others read what it wrote. Processes with no
valid token wait for the writer with bounded, jittered polling
(:func:`resilient.tokens.wait.poll_shared`); past twice the lease they fetch
on their own and use that token without writing it (only a lease holder
writes). A store that fails degrades to fetching in this process.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._machines.backoff import EqualJitter
from ..core.clock import Clock
from ..core.events import emit
from ..stores.base import Entry, Lookup, Store
from .token import Obtained, Token
from .wait import apoll_shared, poll_shared

__all__ = ["Owner", "SharedToken", "decode", "encode"]


@dataclass(frozen=True, slots=True)
class Owner:
    """What the fleet protocol needs of its provider, handed in by it: settings and callbacks."""

    clock: Clock
    key: str
    operation: str
    rng: random.Random
    fetch: Callable[[], Token]
    afetch: Callable[[], Awaitable[Token]]
    accepts: Callable[[Token, float], bool]
    rejected: Callable[[], str | None]
    window_start: Callable[..., float]


_POLL = EqualJitter(0.02, 0.5)  # between looks at the store while another process refreshes


def decode(entry: Entry | None) -> Token | None:
    """The token in a store entry, or None (absent or not a token record)."""
    if entry is None or not isinstance(entry.value, dict):
        return None
    value, expires_at = entry.value.get("value"), entry.value.get("expires_at")
    try:
        return Token(value, expires_at)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def encode(token: Token, window_start: float) -> Entry:
    """The store entry for ``token``: fresh until ``window_start``, kept until it expires."""
    return Entry(
        value={"value": token.value, "expires_at": token.expires_at},
        expires_at=window_start,
        stale_until=token.expires_at,
    )


class SharedToken:
    """The fleet protocol of one provider (sync methods beside their async twins)."""

    __slots__ = ("_lease_ttl", "_owner", "_polls", "_store")

    def __init__(self, owner: Owner, store: Store, *, lease_ttl: float) -> None:
        for method in ("get", "lookup", "set", "release", "invalidate"):
            if not callable(getattr(store, method, None)):
                raise TypeError(f"store must implement resilient.stores.base.Store (no {method}()), got {store!r}")
        self._owner = owner
        self._store = store
        self._lease_ttl = lease_ttl
        self._polls = _POLL.delays(owner.rng)

    def next_poll(self) -> float:
        """Seconds until a background refresh looks at the store again."""
        return next(self._polls)

    # -- decisions on what a lookup found ------------------------------------------

    def _entry(self, token: Token, now: float) -> Entry:
        return encode(token, self._owner.window_start(token.expires_at, obtained_at=now))

    def _usable(self, found: Lookup, now: float, *, blocking: bool) -> tuple[Token | None, bool]:
        """(a token to adopt or None, whether the entry should be deleted as refused or expired)."""
        token = decode(found.entry)
        if token is None:
            return None, False
        if (blocking or not found.refreshing) and self._owner.accepts(token, now):
            return token, False
        refused = token.value == self._owner.rejected() or token.expires_at <= now
        return None, refused and not found.refreshing

    def _store_error(self, operation: str, exc: Exception) -> None:
        p = self._owner
        emit("token.store_error", operation=p.operation, key=p.key, store_op=operation, error=exc)

    # -- threads --------------------------------------------------------------------

    def refresh(self, *, blocking: bool) -> Obtained | None:
        """Blocking: a token (waiting for another process if need be). Background:
        one look, None if another process holds the refresh."""
        if not blocking:
            return self._attempt(blocking=False)
        p = self._owner
        got = poll_shared(lambda: self._attempt(blocking=True), p.clock, _POLL.delays(p.rng), wait=2 * self._lease_ttl)
        if got is not None:
            return got
        token = p.fetch()  # the holder never wrote: do without it (and without writing: no lease)
        return Obtained(token, fetched=True)

    def _attempt(self, *, blocking: bool) -> Obtained | None:
        p = self._owner
        now = p.clock.time()
        try:
            found = self._store.lookup(p.key, now=now, lease_ttl=self._lease_ttl)
        except TypeError:  # a misconfigured store (say, no asyncio client for aget()): not an outage
            raise
        except Exception as exc:
            self._store_error("lookup", exc)
            return Obtained(p.fetch(), fetched=True)
        if found.lease is not None:
            try:
                token = p.fetch()
            except BaseException:
                self._release(found.lease)
                raise
            self._write(token, found.lease)
            return Obtained(token, fetched=True)
        shared, refused = self._usable(found, now, blocking=blocking)
        if shared is not None:
            return Obtained(shared, fetched=False)
        if refused:
            self._delete()
        return None

    def _write(self, token: Token, lease: str | None) -> None:
        now = self._owner.clock.time()
        try:
            self._store.set(self._owner.key, self._entry(token, now), now=now, lease=lease)
        except Exception as exc:
            self._store_error("set", exc)

    def _release(self, lease: str) -> None:
        try:
            self._store.release(self._owner.key, lease)
        except Exception as exc:
            self._store_error("release", exc)

    def _delete(self) -> None:
        try:
            self._store.invalidate(self._owner.key)
        except Exception as exc:
            self._store_error("invalidate", exc)

    def invalidate(self, value: str) -> None:
        """Delete the shared record if it still holds ``value`` (best effort: a
        record written between the read and the delete is deleted too, costing one
        more refresh, never a wrong token)."""
        try:
            current = decode(self._store.get(self._owner.key))
        except Exception as exc:
            self._store_error("get", exc)
            return
        if current is not None and current.value == value:
            self._delete()

    # -- asyncio --------------------------------------------------------------------

    async def arefresh(self, *, blocking: bool) -> Obtained | None:
        """The async twin of :meth:`refresh`."""
        if not blocking:
            return await self._aattempt(blocking=False)
        p = self._owner
        got = await apoll_shared(
            lambda: self._aattempt(blocking=True), p.clock, _POLL.delays(p.rng), wait=2 * self._lease_ttl
        )
        if got is not None:
            return got
        token = await p.afetch()  # without the lease: used here, not written
        return Obtained(token, fetched=True)

    async def _aattempt(self, *, blocking: bool) -> Obtained | None:
        p = self._owner
        now = p.clock.time()
        try:
            found = await self._store.alookup(p.key, now=now, lease_ttl=self._lease_ttl)
        except TypeError:  # a misconfigured store (say, no asyncio client for aget()): not an outage
            raise
        except Exception as exc:
            self._store_error("lookup", exc)
            return Obtained(await p.afetch(), fetched=True)
        if found.lease is not None:
            try:
                token = await p.afetch()
            except BaseException:
                await self._arelease(found.lease)
                raise
            await self._awrite(token, found.lease)
            return Obtained(token, fetched=True)
        shared, refused = self._usable(found, now, blocking=blocking)
        if shared is not None:
            return Obtained(shared, fetched=False)
        if refused:
            await self._adelete()
        return None

    async def _awrite(self, token: Token, lease: str | None) -> None:
        now = self._owner.clock.time()
        try:
            await self._store.aset(self._owner.key, self._entry(token, now), now=now, lease=lease)
        except Exception as exc:
            self._store_error("set", exc)

    async def _arelease(self, lease: str) -> None:
        try:
            await self._store.arelease(self._owner.key, lease)
        except Exception as exc:
            self._store_error("release", exc)

    async def _adelete(self) -> None:
        try:
            await self._store.ainvalidate(self._owner.key)
        except Exception as exc:
            self._store_error("invalidate", exc)

    async def ainvalidate(self, value: str) -> None:
        """The async twin of :meth:`invalidate`."""
        try:
            current = decode(await self._store.aget(self._owner.key))
        except Exception as exc:
            self._store_error("get", exc)
            return
        if current is not None and current.value == value:
            await self._adelete()

    def __repr__(self) -> str:
        return f"SharedToken(store={self._store!r}, lease_ttl={self._lease_ttl!r})"
