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
* ``Context.operation`` is ``"METHOD host"`` (``route=`` adds a route template); ``ctx.key``, the default
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

from ..tokens.auth import TokenAuth
from .clients import async_client, client, host_key, per_host, request_of
from .semantics import IDEMPOTENT_METHODS, RETRYABLE, RETRYABLE_STATUSES, replay_refusal, request_key, statuses
from .share import SharedResponses
from .transport import AsyncResilientTransport, ResilientTransport

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
