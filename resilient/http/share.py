"""Sharing responses through ``rs.Cache`` and ``rs.Coalesce``: as snapshots.

A policy that hands one call's value to other calls (a cache hit, a coalesced
waiter) cannot hand out one ``httpx.Response``: its body is a network stream
read once, and httpx mutates it. Through the transports such a policy runs over
a JSON-safe :func:`~resilient.http.semantics.snapshot` of the response (status,
headers, raw body), and every caller gets a fresh response built from it.

Only GET and HEAD are shared. A cache stores only responses that
:func:`~resilient.http.semantics.cacheable` allows (by default the 2xx
statuses, without ``Cache-Control: no-store``/``private``); the others still
reach the callers that waited for them, and are not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import httpx

from ..core.context import Context
from ..core.pipeline import Pipeline
from ..core.policy import AsyncStep, Policy, SyncStep
from .exchange import AsyncExchange, Exchange, RequestContext, aread_body, exchange_of, read_body
from .semantics import SUCCESS_STATUSES, cacheable, from_snapshot, snapshot

__all__ = ["SharedResponses", "for_http"]

#: ``Policy.kind`` of the policies that hand one call's value to others.
SHARING_KINDS = frozenset({"cache", "coalesce"})
_SHARED_METHODS = frozenset({"GET", "HEAD"})


class NotStored(Exception):
    """Carries a response snapshot past a cache that must not store it."""

    def __init__(self, snap: dict[str, Any]) -> None:
        super().__init__("response not cacheable")
        self.snapshot = snap


def request_of(ctx: Context) -> httpx.Request:
    exchange = exchange_of(ctx)
    assert exchange is not None  # only reached through step(), which checked
    return exchange.request


def forked(ctx: Context) -> RequestContext:
    """``ctx`` on its own exchange: the sharing policy's call may outlive the request
    that started it (a background refresh), and must not share its last response."""
    if isinstance(ctx, RequestContext):
        return ctx.fork()
    exchange = exchange_of(ctx)
    assert exchange is not None  # only reached through step(), which checked
    twin = RequestContext(ctx.operation, exchange.fork())
    twin.attempt, twin.deadline = ctx.attempt, ctx.deadline
    return twin


def _bypass(request: httpx.Request, stores: bool) -> bool:
    if request.method not in _SHARED_METHODS:
        return True
    if stores:
        directives = request.headers.get("cache-control")
        if directives and ("no-store" in directives.lower() or "no-cache" in directives.lower()):
            return True
    return False


class SharedResponses(Policy):
    """Runs a sharing policy (``Cache``, ``Coalesce``) over response snapshots.

    The transports wrap the sharing policies they find (the policy itself, or
    a member of its pipelines, nested or not; not one made inside a
    ``PerKey``) by themselves; wrap one yourself only to change which statuses
    a cache stores. A response the cache may not store is handed to the callers
    that waited for it, and counts as a failed refresh (with ``stale_if_error``,
    a stale entry is served instead when there is one).

    Args:
        policy: the sharing policy.
        statuses: the statuses a cache may store (default: 2xx but 206).
    """

    kind: ClassVar[str] = "http_shared"

    def __init__(self, policy: Policy, *, statuses: Iterable[int] | None = None) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a resilient policy, got {policy!r}")
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

    def _keep(self, request: httpx.Request, response: httpx.Response, snap: dict[str, Any]) -> dict[str, Any]:
        if self.stores and not cacheable(request, response, self.statuses):
            raise NotStored(snap)
        return snap

    def bind(self, inner: SyncStep) -> SyncStep:
        keep = self._keep

        def snapshotting(ctx: Context) -> dict[str, Any]:
            own = forked(ctx)
            try:
                response = inner(own)
            except BaseException:
                exchange = own.exchange
                if isinstance(exchange, Exchange):
                    exchange.abandon()
                raise
            body, decoded = read_body(response)
            return keep(request_of(own), response, snapshot(response, body, decoded=decoded))

        shared = self.policy.bind(snapshotting)
        stores = self.stores

        def step(ctx: Context) -> Any:
            exchange = exchange_of(ctx)
            if not isinstance(exchange, Exchange) or _bypass(exchange.request, stores):
                return inner(ctx)
            try:
                snap = shared(ctx)
            except NotStored as passed:
                snap = passed.snapshot
            response = exchange.delivered = from_snapshot(snap, exchange.request)
            return response

        return step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        keep = self._keep

        async def snapshotting(ctx: Context) -> dict[str, Any]:
            own = forked(ctx)
            try:
                response = await inner(own)
            except BaseException:
                exchange = own.exchange
                if isinstance(exchange, AsyncExchange):
                    await exchange.abandon()
                raise
            body, decoded = await aread_body(response)
            return keep(request_of(own), response, snapshot(response, body, decoded=decoded))

        shared = self.policy.abind(snapshotting)
        stores = self.stores

        async def step(ctx: Context) -> Any:
            exchange = exchange_of(ctx)
            if not isinstance(exchange, AsyncExchange) or _bypass(exchange.request, stores):
                return await inner(ctx)
            try:
                snap = await shared(ctx)
            except NotStored as passed:
                snap = passed.snapshot
            response = exchange.delivered = from_snapshot(snap, exchange.request)
            return response

        return step

    def stats(self) -> dict[str, Any]:
        return self.policy.stats()

    def __repr__(self) -> str:
        return f"SharedResponses({self.policy!r})"


def for_http(policy: Policy) -> Policy:
    """``policy`` as the transports run it: sharing policies (also inside a pipeline) see snapshots."""
    if isinstance(policy, SharedResponses):
        return policy
    if policy.kind in SHARING_KINDS:
        return SharedResponses(policy)
    if isinstance(policy, Pipeline):
        parts = tuple(for_http(p) for p in policy.policies)
        if any(a is not b for a, b in zip(parts, policy.policies, strict=True)):
            return Pipeline(*parts)
    return policy
