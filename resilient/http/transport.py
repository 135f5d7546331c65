"""The resilient httpx transports: every request runs through a policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import Token
from typing import Any

import httpx

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.context import Context, replay_forbidden
from ..core.policy import Policy
from .exchange import AsyncExchange, Exchange, RequestContext
from .semantics import DEFAULT_KEYS, IDEMPOTENT_METHODS, RequestKeys, operation_of, replay_refusal
from .share import for_http

__all__ = ["AsyncResilientTransport", "ResilientTransport"]


#: ``observe(seconds, error)``: told the duration of each attempt sent to the origin
#: and its exception (``None`` when a response came back).
Observer = Callable[[float, BaseException | None], None]
Route = Callable[[httpx.Request], str | None]


def _start(
    request: httpx.Request, exchange: Exchange | AsyncExchange, route: Route | None, keys: RequestKeys
) -> tuple[RequestContext, Token[str | None] | None]:
    """The request's context, and the token of ``replay_forbidden`` when the request must
    not be sent twice (else ``None``).

    The context's operation names the host (or the route), worked out once. The common
    case (an idempotent method with an in-memory body) needs no replay_refusal.
    """
    ref = request.url._uri_reference  # host_of(request), inline: this runs on every request
    host = f"{ref.host}:{ref.port}" if ref.port else ref.host
    operation = f"{request.method} {host}" if route is None else operation_of(request, route)
    ctx = RequestContext(operation, exchange, keys, host)
    if request.method in IDEMPOTENT_METHODS and type(request.stream) is httpx.ByteStream:
        return ctx, None
    refusal = replay_refusal(request)
    return ctx, None if refusal is None else replay_forbidden.set(refusal)


def _attempt(ctx: Context) -> Any:
    """The innermost step: one attempt of the request (the exchange takes no arguments)."""
    return ctx.fn()


def _keys(credential_headers: Any, fingerprint_key: Any) -> RequestKeys:
    if credential_headers is None and fingerprint_key is None:
        return DEFAULT_KEYS
    return RequestKeys(credential_headers, fingerprint_key)


def _timed(observe: Observer, clock: Clock) -> Callable[[Context], Any]:
    """:func:`_attempt`, timed for ``observe``."""
    monotonic = clock.monotonic

    def timed_attempt(ctx: Context) -> Any:
        started = monotonic()
        try:
            value = ctx.fn()
        except Exception as exc:
            observe(monotonic() - started, exc)
            raise
        observe(monotonic() - started, None)
        return value

    return timed_attempt


def _atimed(observe: Observer, clock: Clock) -> Callable[[Context], Awaitable[Any]]:
    """The async twin of :func:`_timed`."""
    monotonic = clock.monotonic

    async def timed_attempt(ctx: Context) -> Any:
        started = monotonic()
        try:
            value = await ctx.fn()
        except Exception as exc:
            observe(monotonic() - started, exc)
            raise
        observe(monotonic() - started, None)
        return value

    return timed_attempt


def _check(policy: object, clock: object, route: object = None, observe: object = None) -> Clock:
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a resilient policy (rs.Retry(), rs.pipeline(...), ...), got {policy!r}")
    if clock is not None and not isinstance(clock, Clock):
        raise TypeError(f"clock must be a resilient.Clock, got {clock!r}")
    if route is not None and not callable(route):
        raise TypeError(f"route must be a callable naming a request's route template, got {route!r}")
    if observe is not None and not callable(observe):
        raise TypeError(f"observe must be a callable (seconds, error), got {observe!r}")
    return clock or SYSTEM_CLOCK


class ResilientTransport(httpx.BaseTransport):
    """An httpx transport that sends every request through ``policy``.

    Each request is one call of the policy, whose :class:`~resilient.Context`
    has ``operation`` ``"METHOD host"`` (or ``"METHOD host/route"`` with
    ``route=``: bounded, so a metric label made of it stays small), no arguments, and ``key`` the
    request's key (method, URL and a fingerprint of its credentials: the
    default key of ``rs.Cache`` and ``rs.Coalesce``); each attempt goes to
    ``transport``.

    * A non-idempotent request (POST, PATCH) is retried only with an
      ``Idempotency-Key`` header; a streamed request body never is.
    * A response discarded by a retry is closed before the next attempt, and
      a response of 400 or above is read (and its connection released) at once,
      so ``Limits(max_connections=1)`` survives any number of retries.
    * Inside a ``rs.Timeout``, each attempt's connect/read/write/pool timeouts
      are cut to the time left, and a timeout so caused raises
      ``rs.TimeoutExceeded`` chained from httpx's error.
    * ``rs.Cache`` and ``rs.Coalesce`` in the policy share responses as
      snapshots (status, headers, body): every caller gets its own response.

    Args:
        policy: any resilient policy or pipeline.
        transport: the transport that sends (default: ``httpx.HTTPTransport()``).
        clock: the clock the enclosing ``Timeout`` uses (its deadline is on it).
        route: ``route(request)`` names the route template of a request
            (``"/items/{id}"``) for its ``operation``; ``None`` (or a ``None``
            answer) names the host alone. Never return the raw path: it would
            make one metric label value per URL.
        observe: ``observe(seconds, error)`` after each attempt sent to the
            origin (``resilient.metrics``' ``origin(name)`` feeds its histogram).
        credential_headers: headers that identify a caller besides ``Authorization``,
            ``Proxy-Authorization`` and ``Cookie`` (default ``X-Api-Key``, ``X-Auth-Token``):
            requests differing in them never share a response.
        fingerprint_key: the HMAC secret of the credential fingerprints in keys (a
            fleet secret, so members share credentialed entries); random per process
            by default.
        heuristic, max_ttl, max_body: the response cache's rules (see
            :class:`~resilient.http.SharedResponses`).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``operation`` names the host, not the path; ``route=``, ``observe=``.
    """

    def __init__(
        self,
        policy: Policy,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Clock | None = None,
        route: Route | None = None,
        observe: Observer | None = None,
        credential_headers: Iterable[str] | None = None,
        fingerprint_key: str | bytes | None = None,
        heuristic: bool = False,
        max_ttl: float | None = None,
        max_body: int = 1 << 20,
    ):
        self.clock = _check(policy, clock, route, observe)
        self.keys = _keys(credential_headers, fingerprint_key)
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(f"transport must be an httpx.BaseTransport, got {transport!r}")
        self.policy = policy
        self.route = route
        self.transport = transport if transport is not None else httpx.HTTPTransport()
        self._chain = for_http(policy, heuristic=heuristic, max_ttl=max_ttl, max_body=max_body).bind(
            _attempt if observe is None else _timed(observe, self.clock)
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange = Exchange(self.transport, request, self.clock)
        ctx, token = _start(request, exchange, self.route, self.keys)
        try:
            value = self._chain(ctx)
        except BaseException:
            exchange.abandon()
            raise
        finally:
            if token is not None:
                replay_forbidden.reset(token)
        own = exchange.response
        if own is not None and own is value:  # the usual case
            return own
        return exchange.finish(value)

    def close(self) -> None:
        self.transport.close()

    def __repr__(self) -> str:
        return f"ResilientTransport({self.policy!r}, {self.transport!r})"


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`ResilientTransport` (same policy object, same rules).

    Args:
        policy: any resilient policy or pipeline.
        transport: the transport that sends (default: ``httpx.AsyncHTTPTransport()``).
        clock: the clock the enclosing ``Timeout`` uses.
        route: as for :class:`ResilientTransport`.
        observe: as for :class:`ResilientTransport`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        policy: Policy,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        clock: Clock | None = None,
        route: Route | None = None,
        observe: Observer | None = None,
        credential_headers: Iterable[str] | None = None,
        fingerprint_key: str | bytes | None = None,
        heuristic: bool = False,
        max_ttl: float | None = None,
        max_body: int = 1 << 20,
    ):
        self.clock = _check(policy, clock, route, observe)
        self.keys = _keys(credential_headers, fingerprint_key)
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(f"transport must be an httpx.AsyncBaseTransport, got {transport!r}")
        self.policy = policy
        self.route = route
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._chain = for_http(policy, heuristic=heuristic, max_ttl=max_ttl, max_body=max_body).abind(
            _attempt if observe is None else _atimed(observe, self.clock)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = AsyncExchange(self.transport, request, self.clock)
        ctx, token = _start(request, exchange, self.route, self.keys)
        try:
            value = await self._chain(ctx)
        except BaseException:
            await exchange.abandon()
            raise
        finally:
            if token is not None:
                replay_forbidden.reset(token)
        own = exchange.response
        if own is not None and own is value:  # the usual case, without a coroutine
            return own
        return await exchange.finish(value)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"AsyncResilientTransport({self.policy!r}, {self.transport!r})"
