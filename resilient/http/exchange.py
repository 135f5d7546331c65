"""One request's trip through a policy: the exchange, sync beside its async twin.

A request becomes one :class:`RequestContext` whose ``fn`` is an exchange (it
takes no arguments); each call of the exchange is one attempt on the inner
transport. The exchange remembers the response of its last
attempt, so the next attempt (a retry) closes it first and the pool cannot
leak; a response of 400 or above is read at once and its connection released,
so a retry's backoff never holds one.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..core.clock import Clock
from ..core.context import Context, current_deadline
from ..core.errors import TimeoutExceeded
from .semantics import cut_timeouts, from_snapshot, operation_of, request_key, snapshot, timeout_phase

__all__ = ["AsyncExchange", "Exchange", "RequestContext", "aread_body", "exchange_of", "read_body"]

_NO_CUT: frozenset[str] = frozenset()


def _attach(exc: httpx.RequestError, request: httpx.Request) -> None:
    try:
        exc.request  # noqa: B018 (raises RuntimeError when unset)
    except RuntimeError:
        exc.request = request


def _deadline_cut(request: httpx.Request, exchange: Exchange | AsyncExchange, deadline: float) -> frozenset[str]:
    """Cut the request's timeouts to what is left before ``deadline``; the phases cut."""
    remaining = deadline - exchange.clock.monotonic()
    if remaining <= 0:
        raise TimeoutExceeded(f"{operation_of(request)}: the deadline passed before the request was sent")
    if exchange.timeouts is None:
        exchange.timeouts = dict(request.extensions.get("timeout") or {})
    timeouts, cut = cut_timeouts(exchange.timeouts, remaining)
    request.extensions["timeout"] = timeouts
    return cut


def _deadline_error(exc: httpx.TimeoutException, request: httpx.Request, cut: frozenset[str]) -> TimeoutExceeded | None:
    phase = timeout_phase(exc)
    if phase is None or phase not in cut:
        return None
    return TimeoutExceeded(f"{operation_of(request)}: the deadline passed during the request ({phase})")


def _rebuilt(response: httpx.Response, request: httpx.Request, raw: bytes) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(raw),
        extensions=response.extensions,
        request=request,
    )


def read_body(response: httpx.Response) -> tuple[bytes, bool]:
    """The body and whether it is decoded: raw as it came, unless it was read already.

    The response ends closed (its connection released).
    """
    if response.is_stream_consumed:  # read already (an httpx.MockTransport response, a shared one)
        return response.content, True
    try:
        return b"".join(response.iter_raw()), False
    finally:
        response.close()


async def aread_body(response: httpx.Response) -> tuple[bytes, bool]:
    """The async twin of :func:`read_body`."""
    if response.is_stream_consumed:
        return response.content, True
    try:
        return b"".join([part async for part in response.aiter_raw()]), False
    finally:
        await response.aclose()


def _foreign(value: Any, exchange: Exchange | AsyncExchange) -> httpx.Response:
    """The response to hand out when the pipeline returned something this exchange did not produce."""
    if isinstance(value, dict):  # a snapshot (rs.http response sharing)
        return from_snapshot(value, exchange.request)
    delivered = exchange.delivered
    if delivered is not None and delivered is value:  # made for this request from a shared snapshot
        return delivered
    if isinstance(value, httpx.Response) and hasattr(value, "_content"):
        # Read already (shared by some policy): a fresh copy of it.
        return from_snapshot(snapshot(value, value.content, decoded=True), exchange.request)
    raise TypeError(
        f"the policy around {operation_of(exchange.request)} returned {type(value).__name__}, not a response "
        "this request can use; share responses through rs.Cache / rs.Coalesce (snapshotted by the transport)"
    )


# -- one request's attempts: the sync exchange beside its async twin -------------


class Exchange:
    """One request's trip through the policy (threads); each call is one attempt.

    Attributes:
        request: the request.
        response: the last attempt's response, closed by the next attempt.
        delivered: a response made for this request from a shared snapshot.
    """

    __slots__ = ("clock", "delivered", "inner", "request", "response", "timeouts")

    def __init__(self, inner: httpx.BaseTransport, request: httpx.Request, clock: Clock) -> None:
        self.inner = inner
        self.request = request
        self.clock = clock
        self.response: httpx.Response | None = None
        self.delivered: httpx.Response | None = None
        self.timeouts: dict[str, float | None] | None = None

    def __call__(self) -> httpx.Response:
        """One attempt: send the request on the inner transport."""
        previous = self.response
        if previous is not None:  # discarded by a retry: give its connection back
            self.response = None
            previous.close()
        request = self.request
        deadline = current_deadline.get()
        cut = _NO_CUT if deadline is None else _deadline_cut(request, self, deadline)
        try:
            response = self.inner.handle_request(request)
        except httpx.RequestError as exc:
            _attach(exc, request)
            if cut and isinstance(exc, httpx.TimeoutException):
                error = _deadline_error(exc, request, cut)
                if error is not None:
                    raise error from exc
            raise
        if response.status_code >= 400 and not response.is_stream_consumed:
            # Read now: no connection is held through a backoff.
            try:
                raw = b"".join(response.iter_raw())
            finally:
                response.close()
            response = _rebuilt(response, request, raw)
        self.response = response
        return response

    def finish(self, value: Any) -> httpx.Response:
        """The response the pipeline settled on; any other this exchange opened is closed."""
        own = self.response
        if own is not None and own is value:
            return own
        if own is not None:
            self.response = None
            own.close()
        return _foreign(value, self)

    def abandon(self) -> None:
        """The pipeline raised: close the last attempt's response, if any."""
        own = self.response
        if own is not None:
            self.response = None
            own.close()

    def fork(self) -> Exchange:
        """A new exchange for the same request, with its own last response.

        A sharing policy's origin call (a cache's background refresh among them)
        runs on a fork, so the request that started it closing its own exchange
        when it returns cannot close the response the refresh is still reading.
        """
        twin = Exchange(self.inner, self.request, self.clock)
        twin.timeouts = self.timeouts
        return twin


class AsyncExchange:
    """The asyncio twin of :class:`Exchange`."""

    __slots__ = ("clock", "delivered", "inner", "request", "response", "timeouts")

    def __init__(self, inner: httpx.AsyncBaseTransport, request: httpx.Request, clock: Clock) -> None:
        self.inner = inner
        self.request = request
        self.clock = clock
        self.response: httpx.Response | None = None
        self.delivered: httpx.Response | None = None
        self.timeouts: dict[str, float | None] | None = None

    async def __call__(self) -> httpx.Response:
        """One attempt: send the request on the inner transport."""
        previous = self.response
        if previous is not None:
            self.response = None
            await previous.aclose()
        request = self.request
        deadline = current_deadline.get()
        cut = _NO_CUT if deadline is None else _deadline_cut(request, self, deadline)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.RequestError as exc:
            _attach(exc, request)
            if cut and isinstance(exc, httpx.TimeoutException):
                error = _deadline_error(exc, request, cut)
                if error is not None:
                    raise error from exc
            raise
        if response.status_code >= 400 and not response.is_stream_consumed:
            try:
                raw = b"".join([part async for part in response.aiter_raw()])
            finally:
                await response.aclose()
            response = _rebuilt(response, request, raw)
        self.response = response
        return response

    async def finish(self, value: Any) -> httpx.Response:
        own = self.response
        if own is not None and own is value:
            return own
        if own is not None:
            self.response = None
            await own.aclose()
        return _foreign(value, self)

    async def abandon(self) -> None:
        own = self.response
        if own is not None:
            self.response = None
            await own.aclose()

    def fork(self) -> AsyncExchange:
        """As :meth:`Exchange.fork`."""
        twin = AsyncExchange(self.inner, self.request, self.clock)
        twin.timeouts = self.timeouts
        return twin


class RequestContext(Context):
    """The :class:`~resilient.Context` of one request through a transport.

    ``operation`` is ``"METHOD host"`` (or ``"METHOD host/route"``), ``fn`` the exchange (no arguments),
    and ``key`` the request's :func:`~resilient.http.semantics.request_key`,
    worked out when a policy first asks (``Cache`` and ``Coalesce`` use it as
    their default key).
    """

    __slots__ = ("_key", "exchange")

    def __init__(self, operation: str, exchange: Exchange | AsyncExchange) -> None:
        super().__init__(operation, exchange)
        self.exchange = exchange
        self._key: str | None = None

    @property
    def key(self) -> str:
        key = self._key
        if key is None:
            key = self._key = request_key(self.exchange.request)
        return key

    def fork(self) -> RequestContext:
        """This request's context on a forked exchange (see :meth:`Exchange.fork`)."""
        twin = RequestContext(self.operation, self.exchange.fork())
        twin._key = self._key
        twin.attempt = self.attempt
        twin.deadline = self.deadline
        return twin


def exchange_of(ctx: Context) -> Exchange | AsyncExchange | None:
    """The exchange whose request ``ctx`` carries, or ``None`` for a call that is not a request."""
    fn = ctx.fn
    return fn if isinstance(fn, (Exchange, AsyncExchange)) else None
