"""One request's trip through a policy: the exchange, sync beside its async twin.

A request becomes one :class:`RequestContext` whose ``fn`` is an exchange (it
takes no arguments); each call of the exchange is one attempt on the inner
transport. The exchange remembers the response of its last
attempt, so the next attempt (a retry) closes it first and the pool cannot
leak; a response of 400 or above is read at once and its connection released,
so a retry's backoff never holds one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from time import monotonic as _monotonic
from typing import Any

import httpx

from ..core.clock import Clock, monotonic_of
from ..core.context import Context, current_deadline
from ..core.errors import TimeoutExceeded
from .semantics import (
    DEFAULT_KEYS,
    RequestKeys,
    cut_timeouts,
    from_snapshot,
    host_of,
    operation_of,
    snapshot,
    timeout_phase,
)

__all__ = [
    "AsyncExchange",
    "Exchange",
    "RequestContext",
    "aread_body",
    "aread_upto",
    "exchange_of",
    "read_body",
    "read_upto",
]

#: Bodies up to this size (by their Content-Length) are read inside the attempt,
#: so a connection lost mid-body is a failure the attempt's policies see (a retry).
PREREAD_LIMIT = 1 << 20

_NO_CUT: frozenset[str] = frozenset()


def _attach(exc: httpx.RequestError, request: httpx.Request) -> None:
    try:
        exc.request  # noqa: B018 (raises RuntimeError when unset)
    except RuntimeError:
        exc.request = request


def _original_timeouts(exchange: Exchange | AsyncExchange) -> dict[str, float | None]:
    """The request's own timeouts, before any deadline cut them (a fork's start)."""
    if exchange.timeouts is None:
        exchange.timeouts = dict(exchange.request.extensions.get("timeout") or {})
    return exchange.timeouts


def _deadline_cut(request: httpx.Request, exchange: Exchange | AsyncExchange, deadline: float) -> frozenset[str]:
    """Cut the request's timeouts to what is left before ``deadline``; the phases cut."""
    clock = exchange.clock  # monotonic_of(clock)(), inline: this runs on every timed attempt
    remaining = deadline - (_monotonic() if type(clock) is Clock else clock.monotonic())
    if remaining <= 0:
        raise TimeoutExceeded(f"{operation_of(request)}: the deadline passed before the request was sent")
    original = exchange.timeouts
    if original is None:
        current = request.extensions.get("timeout")
        if current:
            try:  # the usual case: every phase's own timeout ends before the deadline
                if max(current["connect"], current["read"], current["write"], current["pool"]) <= remaining:
                    return _NO_CUT
            except (KeyError, TypeError):  # a phase missing, or None (unbounded): cut
                pass
        original = exchange.timeouts = dict(current or {})
    timeouts, cut = cut_timeouts(original, remaining)
    request.extensions["timeout"] = timeouts
    return cut


def _deadline_error(exc: httpx.TimeoutException, request: httpx.Request, cut: frozenset[str]) -> TimeoutExceeded | None:
    phase = timeout_phase(exc)
    if phase is None or phase not in cut:
        return None
    return TimeoutExceeded(f"{operation_of(request)}: the deadline passed during the request ({phase})")


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


def _passed(request: httpx.Request) -> TimeoutExceeded:
    return TimeoutExceeded(f"{operation_of(request)}: the deadline passed while reading the body")


def _read_by(stream: Any, deadline: float, clock: Clock, request: httpx.Request) -> bytes:
    """A body read whole inside the attempt, checking the deadline between chunks."""
    monotonic = monotonic_of(clock)
    parts: list[bytes] = []
    for chunk in stream:
        parts.append(chunk)
        if monotonic() >= deadline:
            raise _passed(request)
    return b"".join(parts)


class _Body(httpx.ByteStream):
    """A body read into memory, as ``httpx.ByteStream``, whose async iteration is no async
    generator (the event loop's hooks on every async generator cost more than the read)."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Once(self._stream)


class _Once:
    """An async iterator over one chunk."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: bytes) -> None:
        self.chunk: bytes | None = chunk

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        chunk = self.chunk
        if chunk is None:
            raise StopAsyncIteration
        self.chunk = None
        return chunk


#: The streams of a body in memory already (nothing to read inside the attempt).
_IN_MEMORY = (httpx.ByteStream, _Body)


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that ends in ``TimeoutExceeded`` once the attempt's deadline passes."""

    def __init__(self, stream: Any, deadline: float, exchange: Exchange, cut: frozenset[str]) -> None:
        self.stream = stream
        self.deadline = deadline
        self.exchange = exchange
        self.cut = cut

    def __iter__(self) -> Iterator[bytes]:
        clock, deadline, request = self.exchange.clock, self.deadline, self.exchange.request
        try:
            for chunk in self.stream:
                yield chunk
                if clock.monotonic() >= deadline:
                    raise _passed(request)
        except httpx.TimeoutException as exc:
            error = _deadline_error(exc, request, self.cut) if self.cut else None
            if error is not None:
                raise error from exc
            raise

    def close(self) -> None:
        self.stream.close()


class _AsyncDeadlineStream(httpx.AsyncByteStream):
    """The asyncio twin of :class:`_DeadlineStream`."""

    def __init__(self, stream: Any, deadline: float, exchange: AsyncExchange, cut: frozenset[str]) -> None:
        self.stream = stream
        self.deadline = deadline
        self.exchange = exchange
        self.cut = cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        clock, deadline, request = self.exchange.clock, self.deadline, self.exchange.request
        try:
            async for chunk in self.stream:
                yield chunk
                if clock.monotonic() >= deadline:
                    raise _passed(request)
        except httpx.TimeoutException as exc:
            error = _deadline_error(exc, request, self.cut) if self.cut else None
            if error is not None:
                raise error from exc
            raise

    async def aclose(self) -> None:
        await self.stream.aclose()


class _Resumed(httpx.SyncByteStream):
    """The chunks read so far, then the rest of the stream: a body too large to share, passed on."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], stream: Any) -> None:
        self.head = head
        self.rest = rest
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        head, self.head = self.head, []
        yield from head
        yield from self.rest

    def close(self) -> None:
        self.stream.close()


class _AsyncResumed(httpx.AsyncByteStream):
    """The asyncio twin of :class:`_Resumed`."""

    def __init__(self, head: list[bytes], rest: AsyncIterator[bytes], stream: Any) -> None:
        self.head = head
        self.rest = rest
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head, self.head = self.head, []
        for chunk in head:
            yield chunk
        async for chunk in self.rest:
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


def read_upto(response: httpx.Response, limit: int) -> tuple[bytes | None, bool]:
    """The raw body when it is at most ``limit`` bytes (the response ends closed), and whether it
    is decoded; ``None`` when it is larger: then the response streams on, from its first byte."""
    if response.is_stream_consumed or (hasattr(response, "_content") and type(response.stream) is not _Body):
        content = response.content
        return (content if len(content) <= limit else None), True
    stream = response.stream
    rest = iter(stream)  # type: ignore[arg-type]
    head: list[bytes] = []
    size = 0
    try:
        for chunk in rest:
            head.append(chunk)
            size += len(chunk)
            if size > limit:
                response.stream = _Resumed(head, rest, stream)
                return None, False
    except BaseException:
        response.close()
        raise
    response.close()
    return b"".join(head), False


async def aread_upto(response: httpx.Response, limit: int) -> tuple[bytes | None, bool]:
    """The async twin of :func:`read_upto`."""
    if response.is_stream_consumed or (hasattr(response, "_content") and type(response.stream) is not _Body):
        content = response.content
        return (content if len(content) <= limit else None), True
    stream = response.stream
    rest = aiter(stream)  # type: ignore[arg-type]
    head: list[bytes] = []
    size = 0
    try:
        async for chunk in rest:
            head.append(chunk)
            size += len(chunk)
            if size > limit:
                response.stream = _AsyncResumed(head, rest, stream)
                return None, False
    except BaseException:
        await response.aclose()
        raise
    await response.aclose()
    return b"".join(head), False


def _small(response: httpx.Response) -> bool:
    """A body to read inside the attempt: from the network, not read yet, and a
    Content-Length within PREREAD_LIMIT."""
    if response.is_stream_consumed or hasattr(response, "_content"):
        return False
    for _, name, value in response.headers._list:  # one pass, no decoding (Headers.get scans and decodes)
        if name == b"content-length":
            return value.isdigit() and int(value) <= PREREAD_LIMIT
    return False


class _Held(httpx.Response):
    """A response whose raw body, read inside the attempt, is its content (no
    ``Content-Encoding``): httpx's reads return it without a second pass through its
    decoders, ending in the state they would have (stream consumed, response closed)."""

    # Closed as httpx's reads end; the network stream is closed already (_Body's close is a no-op).
    def read(self) -> bytes:
        self._consumed()
        return self._content

    async def aread(self) -> bytes:
        self._consumed()
        return self._content

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        self._consumed()
        yield from super().iter_bytes(chunk_size)

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        self._consumed()
        async for chunk in super().aiter_bytes(chunk_size):
            yield chunk

    def _consumed(self) -> None:
        if not self.is_stream_consumed:
            self.is_stream_consumed = self.is_closed = True
            self._num_bytes_downloaded = len(self._content)


def _hold(response: httpx.Response, raw: bytes) -> None:
    """Keep ``response``'s body, read inside the attempt, in memory.

    Without a ``Content-Encoding`` the raw body is the content too: the response becomes
    a :class:`_Held` (httpx's own ``read()`` / ``aread()`` then cost nothing), while its
    stream still gives the raw bytes to a caller of ``client.stream()``.
    """
    response.stream = _Body(raw)
    if type(response) is not httpx.Response:  # a subclass of the inner transport's: left as it is
        return
    for _, name, value in response.headers._list:  # one pass, no decoding
        if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return
    response._content = raw
    response.__class__ = _Held


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

    __slots__ = ("clock", "delivered", "fetched", "inner", "request", "response", "timeouts")

    def __init__(self, inner: httpx.BaseTransport, request: httpx.Request, clock: Clock) -> None:
        self.inner = inner
        self.request = request
        self.clock = clock
        self.response: httpx.Response | None = None
        self.delivered: httpx.Response | None = None
        self.fetched: Any = None
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
        if type(response.stream) in _IN_MEMORY or response.is_stream_consumed:  # in memory already
            self.response = response
            return response
        if response.status_code >= 400 or _small(response):
            # Read now: no connection is held through a backoff, and a connection lost
            # mid-body fails this attempt (which a retry may repeat). Not yet self.response:
            # a caller served meanwhile (a background refresh runs on its exchange) closes that.
            stream = response.stream
            try:
                raw = b"".join(stream) if deadline is None else _read_by(stream, deadline, self.clock, request)  # type: ignore[arg-type]
            except httpx.RequestError as exc:
                _attach(exc, request)
                if cut and isinstance(exc, httpx.TimeoutException):
                    error = _deadline_error(exc, request, cut)
                    if error is not None:
                        raise error from exc
                raise
            finally:
                stream.close()  # type: ignore[union-attr]
            _hold(response, raw)  # the same response, its body in memory
        elif deadline is not None:
            response.stream = _DeadlineStream(response.stream, deadline, self, cut)
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

    def fork(self) -> Exchange:
        """A new exchange for the same request, with its own last response.

        A sharing policy's origin call (a cache's background refresh among them)
        runs on a fork, so the request that started it closing its own exchange
        when it returns cannot close the response the refresh is still reading.
        """
        twin = Exchange(self.inner, self.request, self.clock)
        twin.timeouts = _original_timeouts(self)
        return twin

    def abandon(self) -> None:
        """The pipeline raised: close the last attempt's response, if any."""
        own = self.response
        if own is not None:
            self.response = None
            own.close()


class AsyncExchange:
    """The asyncio twin of :class:`Exchange`."""

    __slots__ = ("clock", "delivered", "fetched", "inner", "request", "response", "timeouts")

    def __init__(self, inner: httpx.AsyncBaseTransport, request: httpx.Request, clock: Clock) -> None:
        self.inner = inner
        self.request = request
        self.clock = clock
        self.response: httpx.Response | None = None
        self.delivered: httpx.Response | None = None
        self.fetched: Any = None
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
        if type(response.stream) in _IN_MEMORY or response.is_stream_consumed:  # in memory already
            self.response = response
            return response
        if response.status_code >= 400 or _small(response):
            stream = response.stream
            parts: list[bytes] = []
            try:  # read here, not in a coroutine of its own: the deadline checked between chunks
                if deadline is None:
                    async for chunk in stream:  # type: ignore[union-attr]
                        parts.append(chunk)
                else:
                    monotonic = monotonic_of(self.clock)
                    async for chunk in stream:  # type: ignore[union-attr]
                        parts.append(chunk)
                        if monotonic() >= deadline:
                            raise _passed(request)
            except httpx.RequestError as exc:
                _attach(exc, request)
                if cut and isinstance(exc, httpx.TimeoutException):
                    error = _deadline_error(exc, request, cut)
                    if error is not None:
                        raise error from exc
                raise
            finally:
                await stream.aclose()  # type: ignore[union-attr]
            _hold(response, b"".join(parts))
        elif deadline is not None:
            response.stream = _AsyncDeadlineStream(response.stream, deadline, self, cut)
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

    def fork(self) -> AsyncExchange:
        """As :meth:`Exchange.fork`."""
        twin = AsyncExchange(self.inner, self.request, self.clock)
        twin.timeouts = _original_timeouts(self)
        return twin

    async def abandon(self) -> None:
        own = self.response
        if own is not None:
            self.response = None
            await own.aclose()


class RequestContext(Context):
    """The :class:`~resilient.Context` of one request through a transport.

    ``operation`` is ``"METHOD host"`` (or ``"METHOD host/route"``), ``fn`` the exchange (no arguments),
    and ``key`` the request's :func:`~resilient.http.semantics.request_key`,
    worked out when a policy first asks (``Cache`` and ``Coalesce`` use it as
    their default key).
    """

    __slots__ = ("_key", "exchange", "host", "keys")

    def __init__(
        self,
        operation: str,
        exchange: Exchange | AsyncExchange,
        keys: RequestKeys = DEFAULT_KEYS,
        host: str | None = None,
    ) -> None:
        Context.__init__(self, operation, exchange)  # not super(): one lookup less per request
        self.exchange = exchange
        self.keys = keys
        self._key: str | None = None
        #: The request's host (with a port the URL gives): what ``rs.http.per_host`` keys on.
        self.host = host_of(exchange.request) if host is None else host

    @property
    def key(self) -> str:
        key = self._key
        if key is None:
            key = self._key = self.keys.key(self.exchange.request)
        return key

    def fork(self) -> RequestContext:
        """This request's context on a forked exchange (see :meth:`Exchange.fork`)."""
        twin = RequestContext(self.operation, self.exchange.fork(), self.keys, self.host)
        twin._key = self._key
        twin.attempt = self.attempt
        twin.deadline = self.deadline
        return twin

    def variant(self, key: str) -> RequestContext:
        """The same request under another key (one stored variant of a ``Vary``'d response)."""
        ctx = RequestContext(self.operation, self.exchange, self.keys, self.host)
        ctx._key = key
        ctx.attempt = self.attempt
        ctx.deadline = self.deadline
        return ctx


def exchange_of(ctx: Context) -> Exchange | AsyncExchange | None:
    """The exchange whose request ``ctx`` carries, or ``None`` for a call that is not a request."""
    fn = ctx.fn
    return fn if isinstance(fn, (Exchange, AsyncExchange)) else None
