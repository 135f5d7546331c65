"""httpx integration: resilient transports and clients, HTTP predicates, per-host isolation.

Every request sent through :class:`ResilientTransport` (or its async twin) runs
through one policy, sync and async alike::

    import resilient as rs

    policy = rs.pipeline(
        rs.Retry(attempts=4, on=rs.http.RETRYABLE, budget=rs.RetryBudget()),
        rs.CircuitBreaker(on=rs.http.RETRYABLE),
    )
    with rs.http.client(policy, base_url="https://api.example.com", timeout=5) as client:
        client.get("/prices/42")

Rules the transports apply whatever the policy:

* GET, HEAD, OPTIONS, PUT, DELETE and TRACE may be retried; POST and PATCH
  only with an ``Idempotency-Key`` header; a streamed request body never.
* ``Retry-After`` (429, 503) replaces the backoff delay (``rs.Retry`` reads it).
* A response a retry discards is closed before the next attempt; one of 400
  or above is read and its connection released at once.
* ``Context.operation`` is ``"METHOD host/path"``; ``ctx.key``, the default
  key of ``rs.Cache`` and ``rs.Coalesce``, is :func:`request_key`: method, URL
  and a hash of ``Authorization`` and ``Cookie`` (never the values), so two
  users never share a response. :func:`request_of` gives custom keys the request.
* Inside ``rs.Timeout``, each attempt's httpx timeouts are cut to what is left.
* ``rs.Cache`` and ``rs.Coalesce`` share GET/HEAD responses as snapshots
  (status, headers, body; JSON-safe for a Redis store); a cache stores only
  2xx responses without ``Cache-Control: no-store``/``private`` (other
  statuses: wrap it in :class:`SharedResponses` with ``statuses=``).

Per-host isolation (the recipe): one breaker and one bulkhead per host, so a
failing host cannot open the circuit, or fill the bulkhead, of the others::

    policy = rs.pipeline(
        rs.Cache(ttl=30),                   # outermost: a hit skips everything behind it
        rs.Timeout(10),                     # the whole call, retries included
        rs.Retry(attempts=4, on=rs.http.RETRYABLE, budget=rs.RetryBudget()),
        rs.http.per_host(                   # inside the retry: every attempt counts
            lambda: rs.pipeline(rs.CircuitBreaker(on=rs.http.RETRYABLE), rs.Bulkhead(20))
        ),
    )

``per_host`` is ``rs.PerKey(factory, key=rs.http.host_key)``: the key is the
request's host, with its port when the URL names one. An open circuit raises
``rs.CircuitOpenError``, which ``Retry`` does not retry (it is a rejection).
Keep ``Cache`` and ``Coalesce`` out of the factory: the transports give them
response snapshots only where they can see them (the policy, or its pipelines).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ._context import Context
from ._http_exchange import exchange_of
from ._http_semantics import IDEMPOTENT_METHODS, RETRYABLE, RETRYABLE_STATUSES, replay_refusal, request_key, statuses
from ._http_share import SharedResponses
from ._http_transport import AsyncResilientTransport, ResilientTransport
from ._policy import Policy
from ._token_auth import TokenAuth
from .policies.perkey import PerKey

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE",
    "RETRYABLE_STATUSES",
    "AsyncResilientTransport",
    "ResilientTransport",
    "SharedResponses",
    "TokenAuth",
    "async_client",
    "client",
    "host_key",
    "per_host",
    "replay_refusal",
    "request_key",
    "request_of",
    "statuses",
]

# Options of httpx.Client that configure its default transport: given with no
# transport=, they build the inner transport, which the resilient one wraps.
_TRANSPORT_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy")


def _inner_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    options = {name: kwargs.pop(name) for name in _TRANSPORT_OPTIONS if name in kwargs}
    if "trust_env" in options:
        kwargs["trust_env"] = options["trust_env"]  # the client reads it too (netrc)
    if kwargs.get("transport") is not None and set(options) - {"trust_env"}:
        raise TypeError(f"configure the transport you pass, not the client: got transport= and {sorted(options)}")
    return options


# Options of the resilient transport itself.
_OWN_OPTIONS = ("clock", "credential_headers", "fingerprint_key", "heuristic", "max_ttl", "max_body")


def _own_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs.pop(name) for name in _OWN_OPTIONS if name in kwargs}


def client(policy: Policy, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose requests all run through ``policy``.

    ``kwargs`` are ``httpx.Client``'s; ``limits``, ``verify``, ``cert``,
    ``http1``, ``http2`` and ``proxy`` configure the inner transport (or pass
    ``transport=`` to wrap your own); ``clock=`` (give it the clock of your
    ``rs.Timeout``), ``credential_headers=``, ``fingerprint_key=``, ``heuristic=``,
    ``max_ttl=`` and ``max_body=`` go to the resilient transport (see
    :class:`ResilientTransport`). Transports given in ``mounts=``
    are used as they are (wrap them in :class:`ResilientTransport` yourself),
    and proxies from the environment (``HTTPS_PROXY``, ...) are not applied:
    pass ``proxy=``.
    """
    own = _own_options(kwargs)
    options = _inner_options(kwargs)
    inner = kwargs.pop("transport", None) or httpx.HTTPTransport(**options)
    return httpx.Client(transport=ResilientTransport(policy, inner, **own), **kwargs)


def async_client(policy: Policy, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests all run through ``policy`` (see :func:`client`)."""
    own = _own_options(kwargs)
    options = _inner_options(kwargs)
    inner = kwargs.pop("transport", None) or httpx.AsyncHTTPTransport(**options)
    return httpx.AsyncClient(transport=AsyncResilientTransport(policy, inner, **own), **kwargs)


def request_of(ctx: Context) -> httpx.Request | None:
    """The ``httpx.Request`` a call carries through a transport, or ``None`` for other calls.

    For keys of your own: ``rs.PerKey(factory, key=lambda ctx: rs.http.request_of(ctx).url.path)``.
    """
    exchange = exchange_of(ctx)
    return None if exchange is None else exchange.request


def host_key(ctx: Context) -> str:
    """The host of the request a call carries (``"api.example.com"``, ``"127.0.0.1:8080"``).

    Calls that are not requests (a decorated function) are keyed by their operation.
    """
    exchange = exchange_of(ctx)
    if exchange is None:
        return ctx.operation
    ref = exchange.request.url._uri_reference
    return f"{ref.host}:{ref.port}" if ref.port else ref.host


def per_host(factory: Callable[[], Policy] | Callable[[str], Policy], *, maxsize: int = 1024) -> PerKey:
    """One policy per host, made by ``factory()`` (or ``factory(host)``) on the host's first request.

    ``rs.http.per_host(lambda: rs.pipeline(rs.CircuitBreaker(on=rs.http.RETRYABLE), rs.Bulkhead(20)))``
    gives every host its own breaker and bulkhead: a host that fails opens only
    its own circuit. The host includes the port when the URL gives one. At most
    ``maxsize`` hosts are kept, least recently used dropped first.
    """
    return PerKey(factory, key=host_key, maxsize=maxsize)
