"""Sharing responses through ``rs.Cache`` and ``rs.Coalesce``: as snapshots, by RFC 9111.

A policy that hands one call's value to other calls (a cache hit, a coalesced
waiter) cannot hand out one ``httpx.Response``: its body is a network stream
read once, and httpx mutates it. Through the transports such a policy runs over
a JSON-safe record of the response (a :func:`~resilient.http.semantics.snapshot`
plus the request headers its ``Vary`` names, credentials as keyed
fingerprints), and every caller gets a fresh response built from it.

What may be stored, for how long, which stored variant answers a request and
how a revalidation goes are hishel's decisions (:mod:`resilient.http.rfc9111`);
the herd protection around them (coalesced misses and revalidations, leases,
stale-while-revalidate, XFetch) is ``rs.Cache``'s. A response is stored with
the freshness it states (``Timed``), and, when it has an ``ETag`` or a
``Last-Modified``, also kept as the *validator record* (the key plus
``" |v"``) past its freshness, so that the next origin call is a conditional
request, answered by a ``304`` that refreshes it.

Never handed to anyone but the caller who asked: responses with ``Set-Cookie``,
``private``, ``no-store`` or ``Vary: *``, and bodies larger than ``max_body``
(these pass through as a stream). A waiter that got one of these, or a record
whose ``Vary``'d headers differ from its own, sends its own request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, ClassVar

import httpx

from .._machines.cache import Timed
from ..core.context import Context
from ..core.events import emit
from ..core.pipeline import Pipeline
from ..core.policy import AsyncStep, Policy, SyncStep
from ..stores.base import Entry
from .exchange import AsyncExchange, Exchange, RequestContext, aread_upto, exchange_of, read_upto
from .semantics import SUCCESS_STATUSES, RequestKeys, SnapshotError, from_snapshot, snapshot

__all__ = ["SharedResponses", "for_http"]

#: ``Policy.kind`` of the policies that hand one call's value to others.
SHARING_KINDS = frozenset({"cache", "coalesce"})
_SHARED_METHODS = frozenset({"GET", "HEAD"})
_OWN_VALIDATION = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range")
_VALIDATORS = " |v"


#: ``_deliver``'s answer when the record it got did not decode (and was dropped).
UNDECODABLE: Any = object()


class Passing:
    """A response for its own caller only, or one not stored: never written (its lifetime is nothing)."""

    __slots__ = ("owner", "personal", "record", "response")

    def __init__(
        self, owner: object, record: dict[str, Any] | None, response: httpx.Response | None, personal: bool
    ) -> None:
        self.owner = owner
        self.record = record
        self.response = response
        self.personal = personal


class PassingError(Exception):
    """An error response (5xx) a cache does not store: with ``stale_if_error``, a stale entry is served instead."""

    def __init__(self, passing: Passing) -> None:
        super().__init__("error response not stored")
        self.passing = passing


def forked(ctx: Context) -> RequestContext:
    """``ctx`` on its own exchange: the sharing policy's origin call may outlive the request
    that started it (a background refresh), and must not share its last response."""
    if isinstance(ctx, RequestContext):
        return ctx.fork()
    exchange = exchange_of(ctx)
    assert exchange is not None  # only reached through step(), which checked
    twin = RequestContext(ctx.operation, exchange.fork())
    twin.attempt, twin.deadline = ctx.attempt, ctx.deadline
    return twin


def _adopt(exchange: Exchange | AsyncExchange | None, fork: Exchange | AsyncExchange) -> None:
    """Hand the fork's last response to the request's own exchange (a body that streams through)."""
    if exchange is not None:
        exchange.response, fork.response = fork.response, None


def _bypass(request: httpx.Request, stores: bool) -> bool:
    if request.method not in _SHARED_METHODS:
        return True
    headers = request.headers
    for name in _OWN_VALIDATION:
        if name in headers:
            return True  # the caller validates, or asks for a part: its exchange alone
    if stores:
        directives = headers.get("cache-control")
        if directives:
            lowered = directives.lower()
            if "no-store" in lowered or "no-cache" in lowered or "max-age=0" in lowered:
                return True
    return False


def _variant_key(key: str, values: dict[str, str]) -> str:
    digest = hashlib.blake2b(digest_size=8, person=b"resilient-vary")
    for name in sorted(values):
        digest.update(name.encode("latin-1", "replace") + b"\0" + values[name].encode("latin-1", "replace") + b"\0\1")
    return f"{key} ^{digest.hexdigest()}"


def _key(ctx: Context) -> str:
    return ctx.key if isinstance(ctx, RequestContext) else ctx.operation


def _keys(ctx: Context) -> RequestKeys:
    from .semantics import DEFAULT_KEYS

    return ctx.keys if isinstance(ctx, RequestContext) else DEFAULT_KEYS


class SharedResponses(Policy):
    """Runs a sharing policy (``Cache``, ``Coalesce``) over response records.

    The transports wrap the sharing policies they find (the policy itself, or
    a member of its pipelines, nested or not; not one made inside a
    ``PerKey``) by themselves, with the transport's ``heuristic``, ``max_ttl``
    and ``max_body``; wrap one yourself only to change which statuses a cache
    stores. A cache stores what RFC 9111 lets a *shared* cache store (hishel
    decides), for as long as the response says (``s-maxage``, ``max-age``,
    ``Expires``; the cache's ``ttl`` when it says nothing). A 5xx the cache may
    not store counts as a failed refresh (with ``stale_if_error``, a stale entry
    is served instead when there is one).

    Args:
        policy: the sharing policy.
        statuses: the statuses a cache may store (default: 2xx but 206).
        heuristic: RFC 9111's Last-Modified heuristic for responses that state
            no freshness (otherwise the cache's ``ttl`` is theirs).
        max_ttl: the longest freshness any response gets, seconds.
        max_body: the largest body stored, bytes (default 1 MiB); a larger one
            passes through to its caller as a stream, never read whole.
    """

    kind: ClassVar[str] = "http_shared"

    def __init__(
        self,
        policy: Policy,
        *,
        statuses: Iterable[int] | None = None,
        heuristic: bool = False,
        max_ttl: float | None = None,
        max_body: int = 1 << 20,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a resilient policy, got {policy!r}")
        from .rfc9111 import HttpRules  # hishel is imported once a response may be cached

        self.policy = policy
        vars(self)["kind"] = policy.kind  # a pipeline's stats name the wrapped policy
        self.stores = policy.kind == "cache"
        if statuses is None:
            self.statuses = SUCCESS_STATUSES
        else:
            codes = frozenset(statuses)
            for code in codes:
                if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                    raise ValueError(f"statuses must be HTTP status codes (100-599), got {code!r}")
            self.statuses = codes
        if max_ttl is not None and (
            isinstance(max_ttl, bool) or not isinstance(max_ttl, (int, float)) or not max_ttl >= 0
        ):
            raise ValueError(f"max_ttl must be a number >= 0 or None, got {max_ttl!r}")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
            raise ValueError(f"max_body must be an int >= 0, got {max_body!r}")
        self.rules = HttpRules(heuristic=bool(heuristic), max_ttl=max_ttl, max_body=max_body)

    # -- records ---------------------------------------------------------------------------

    def _record(self, ctx: Context, response: httpx.Response, body: bytes, decoded: bool) -> dict[str, Any]:
        from .rfc9111 import vary_names, vary_of

        record = snapshot(response, body, decoded=decoded)
        names = vary_names(response.headers)
        if names is not None and "*" not in names:
            record["vary_names"] = names
            record["vary"] = vary_of(exchange_of(ctx).request, names, _keys(ctx))  # type: ignore[union-attr]
        return record

    def _matches(self, ctx: Context, record: dict[str, Any]) -> bool:
        names = record.get("vary_names")
        if names is None:
            return True
        from .rfc9111 import varies_alike

        stored = record.get("vary")
        if type(names) is not list or type(stored) is not dict:
            return False
        return varies_alike(stored, names, exchange_of(ctx).request, _keys(ctx))  # type: ignore[union-attr]

    def _outcome(self, ctx: Context, response: httpx.Response, body: bytes | None, decoded: bool) -> tuple[Any, float]:
        """What the sharing policy gets from one origin call (a Timed record, a Passing, or
        PassingError raised), and how long to keep it as the validator record (0: not)."""
        from .rfc9111 import personal, storable

        exchange = exchange_of(ctx)
        if body is None:  # larger than max_body: streams to its caller alone
            value = Passing(exchange, None, response, True)
            return (Timed(value, 0.0, 0.0) if self.stores else value), 0.0
        record = self._record(ctx, response, body, decoded)
        exchange.fetched = record  # type: ignore[union-attr]
        if not self.stores:
            if personal(response):
                return Passing(exchange, record, None, True), 0.0
            return record, 0.0
        request = exchange.request  # type: ignore[union-attr]
        if response.status_code not in self.statuses or not storable(request, response, _keys(ctx)):
            passing = Passing(exchange, record, None, personal(response))
            if response.status_code >= 500 and not passing.personal:
                raise PassingError(passing)
            return Timed(passing, 0.0, 0.0), 0.0
        return self._timed(record)

    def _timed(self, record: dict[str, Any]) -> tuple[Timed, float]:
        from .rfc9111 import freshness, validators

        cache: Any = self.policy
        headers = [(k, v) for k, v in record["headers"]]
        fresh = freshness(record["status"], headers, self.rules, ttl=cache.ttl, stale_ttl=cache.stale_ttl)
        keep = fresh.fresh + fresh.stale + cache.ttl + cache.stale_ttl if validators(headers) else 0.0
        return Timed(record, fresh.fresh, fresh.stale), keep

    def _read_validators(self, ctx: Context) -> Entry | None:
        try:
            return self.policy.store.get(_key(ctx) + _VALIDATORS)  # type: ignore[attr-defined, no-any-return]
        except Exception:
            return None  # a full request instead; the caller never sees a store error

    async def _aread_validators(self, ctx: Context) -> Entry | None:
        try:
            return await self.policy.store.aget(_key(ctx) + _VALIDATORS)  # type: ignore[attr-defined, no-any-return]
        except Exception:
            return None

    def _keep_validators(self, ctx: Context, value: Any, keep: float) -> None:
        if keep <= 0:
            return
        cache: Any = self.policy
        now = cache.clock.time()
        try:
            cache.store.set(_key(ctx) + _VALIDATORS, Entry(value.value, now + keep, now + keep), now=now)
        except Exception:
            pass  # the next revalidation is a full request; the caller never sees a store error

    async def _akeep_validators(self, ctx: Context, value: Any, keep: float) -> None:
        if keep <= 0:
            return
        cache: Any = self.policy
        now = cache.clock.time()
        try:
            await cache.store.aset(_key(ctx) + _VALIDATORS, Entry(value.value, now + keep, now + keep), now=now)
        except Exception:
            pass

    def _prior(self, ctx: Context, entry: Entry | None) -> dict[str, Any] | None:
        record = None if entry is None else entry.value
        if type(record) is not dict:
            return None
        try:
            from_snapshot(record, exchange_of(ctx).request)  # type: ignore[union-attr]
        except SnapshotError:
            return None
        return record if self._matches(ctx, record) else None

    def _conditional(self, ctx: Context, prior: dict[str, Any] | None) -> dict[str, str]:
        if prior is None:
            return {}
        from .rfc9111 import conditional_headers

        request = exchange_of(ctx).request  # type: ignore[union-attr]
        added = conditional_headers(request, [(k, v) for k, v in prior["headers"]])
        for name, value in added.items():
            request.headers[name] = value
        return added

    def _revalidated(self, ctx: Context, prior: dict[str, Any], response: httpx.Response) -> dict[str, Any] | None:
        from .rfc9111 import refreshed

        headers = refreshed(
            exchange_of(ctx).request,  # type: ignore[union-attr]
            prior["status"],
            [(k, v) for k, v in prior["headers"]],
            response,
        )
        if headers is None:
            return None
        record = dict(prior)
        record["headers"] = [[k, v] for k, v in headers]
        return record

    def _deliver(self, ctx: Context, exchange: Exchange | AsyncExchange, value: Any) -> Any:
        """The response for this caller from a shared value; None: it must send its own
        request; UNDECODABLE: the stored record was dropped, ask the cache again."""
        if isinstance(value, Passing):
            if value.owner is exchange:
                if value.response is not None:
                    return value.response
                record = value.record
            elif value.personal or value.response is not None:
                return None
            else:
                record = value.record
        else:
            record = value
        if type(record) is not dict:
            return self._decode_error(
                ctx, SnapshotError(f"a record must be a JSON object, got {type(record).__name__}")
            )
        try:
            if record is not exchange.fetched and not self._matches(ctx, record):
                return None
            response = from_snapshot(record, exchange.request)
        except (TypeError, ValueError, AttributeError) as exc:  # SnapshotError, or Vary fields of the wrong shape
            return self._decode_error(ctx, exc)
        exchange.delivered = response
        return response

    def _decode_error(self, ctx: Context, error: BaseException) -> Any:
        emit("cache.decode_error", operation=ctx.operation, key=_key(ctx), error=error, policy="cache")
        if not self.stores:
            return None
        try:
            self.policy.invalidate(_key(ctx))  # type: ignore[attr-defined]
        except Exception:
            return None
        return UNDECODABLE

    def _variant(self, ctx: Context, exchange: Exchange | AsyncExchange, value: Any) -> Context | None:
        """A context keyed by this request's variant, when ``value`` is a stored record of another one."""
        if not self.stores or isinstance(value, Passing) or type(value) is not dict or value is exchange.fetched:
            return None
        names = value.get("vary_names")
        if type(names) is not list or not isinstance(ctx, RequestContext):
            return None
        from .rfc9111 import vary_of

        values = vary_of(exchange.request, names, ctx.keys)
        return ctx.variant(_variant_key(ctx.key, values))

    # -- the sync step beside its async twin --------------------------------------------

    def bind(self, inner: SyncStep) -> SyncStep:
        limit = self.rules.max_body
        stores = self.stores

        def origin(ctx: Context) -> Any:
            prior = self._prior(ctx, self._read_validators(ctx)) if stores else None
            added = self._conditional(ctx, prior)
            request = exchange_of(ctx).request  # type: ignore[union-attr]
            own = forked(ctx)  # its response is this call's alone, whoever started it
            try:
                try:
                    response = inner(own)
                finally:
                    for name in added:
                        del request.headers[name]
                if prior is not None and added and response.status_code == 304:
                    response.close()
                    record = self._revalidated(ctx, prior, response)
                    if record is not None:
                        exchange_of(ctx).fetched = record  # type: ignore[union-attr]
                        value, keep = self._timed(record)
                        self._keep_validators(ctx, value, keep)
                        return value
                    response = inner(own)
                body, decoded = read_upto(response, limit)
                if body is None:  # it streams to this request's caller: the request's exchange owns it
                    _adopt(exchange_of(ctx), own.exchange)
            except BaseException:
                if isinstance(own.exchange, Exchange):
                    own.exchange.abandon()
                raise
            value, keep = self._outcome(ctx, response, body, decoded)
            self._keep_validators(ctx, value, keep)
            return value

        shared = self.policy.bind(origin)

        def call(ctx: Context) -> Any:
            try:
                return shared(ctx)
            except PassingError as passed:
                return passed.passing

        def step(ctx: Context) -> Any:
            exchange = exchange_of(ctx)
            if not isinstance(exchange, Exchange) or _bypass(exchange.request, stores):
                return inner(ctx)
            value = call(ctx)
            response = self._deliver(ctx, exchange, value)
            if response is UNDECODABLE:
                value = call(ctx)
                response = self._deliver(ctx, exchange, value)
            if response is None or response is UNDECODABLE:
                variant = self._variant(ctx, exchange, value)
                if variant is not None:
                    response = self._deliver(variant, exchange, call(variant))
            return inner(ctx) if response is None or response is UNDECODABLE else response

        return step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        limit = self.rules.max_body
        stores = self.stores

        async def origin(ctx: Context) -> Any:
            prior = self._prior(ctx, await self._aread_validators(ctx)) if stores else None
            added = self._conditional(ctx, prior)
            request = exchange_of(ctx).request  # type: ignore[union-attr]
            own = forked(ctx)  # its response is this call's alone, whoever started it
            try:
                try:
                    response = await inner(own)
                finally:
                    for name in added:
                        del request.headers[name]
                if prior is not None and added and response.status_code == 304:
                    await response.aclose()
                    record = self._revalidated(ctx, prior, response)
                    if record is not None:
                        exchange_of(ctx).fetched = record  # type: ignore[union-attr]
                        value, keep = self._timed(record)
                        await self._akeep_validators(ctx, value, keep)
                        return value
                    response = await inner(own)
                body, decoded = await aread_upto(response, limit)
                if body is None:  # it streams to this request's caller: the request's exchange owns it
                    _adopt(exchange_of(ctx), own.exchange)
            except BaseException:
                if isinstance(own.exchange, AsyncExchange):
                    await own.exchange.abandon()
                raise
            value, keep = self._outcome(ctx, response, body, decoded)
            await self._akeep_validators(ctx, value, keep)
            return value

        shared = self.policy.abind(origin)

        async def call(ctx: Context) -> Any:
            try:
                return await shared(ctx)
            except PassingError as passed:
                return passed.passing

        async def step(ctx: Context) -> Any:
            exchange = exchange_of(ctx)
            if not isinstance(exchange, AsyncExchange) or _bypass(exchange.request, stores):
                return await inner(ctx)
            value = await call(ctx)
            response = self._deliver(ctx, exchange, value)
            if response is UNDECODABLE:
                value = await call(ctx)
                response = self._deliver(ctx, exchange, value)
            if response is None or response is UNDECODABLE:
                variant = self._variant(ctx, exchange, value)
                if variant is not None:
                    response = self._deliver(variant, exchange, await call(variant))
            return await inner(ctx) if response is None or response is UNDECODABLE else response

        return step

    def stats(self) -> dict[str, Any]:
        return self.policy.stats()

    def __repr__(self) -> str:
        return f"SharedResponses({self.policy!r})"


def for_http(policy: Policy, **options: Any) -> Policy:
    """``policy`` as the transports run it: sharing policies (also inside a pipeline) see records.

    ``options`` (``heuristic``, ``max_ttl``, ``max_body``) go to each :class:`SharedResponses` made here.
    """
    if isinstance(policy, SharedResponses):
        return policy
    if policy.kind in SHARING_KINDS:
        return SharedResponses(policy, **options)
    if isinstance(policy, Pipeline):
        parts = tuple(for_http(p, **options) for p in policy.policies)
        if any(a is not b for a, b in zip(parts, policy.policies, strict=True)):
            return Pipeline(*parts)
    return policy
