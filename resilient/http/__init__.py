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
  key of ``rs.Cache`` and ``rs.Coalesce``, is :func:`request_key`: method, host
  and path, a hash of the whole URL (no query string in any key or event) and
  a keyed HMAC fingerprint of ``Authorization``, ``Proxy-Authorization``,
  ``Cookie`` and the ``credential_headers`` (default ``X-Api-Key``,
  ``X-Auth-Token``; the secret is ``fingerprint_key=``, random per process by
  default), so two users never share a response. :func:`request_of` gives
  custom keys the request.
* Inside ``rs.Timeout``, each attempt's httpx timeouts are cut to what is left,
  and the deadline bounds reading the body too (``get`` and ``stream``): past
  it, ``rs.TimeoutExceeded``. Bodies up to 1 MiB (by Content-Length) are read
  inside the attempt, so a connection lost mid-body is retried.
* ``rs.Cache`` caches by RFC 9111, decided by hishel's engine acting as a
  shared cache: ``max-age`` / ``s-maxage`` / ``Expires`` set freshness (the
  cache's ``ttl`` when the response states none; at most ``max_ttl=``);
  ``no-store``, ``private``, ``Set-Cookie`` and ``Vary: *`` are never stored;
  ``no-cache``, ``max-age=0`` and ``must-revalidate`` are revalidated with
  ``If-None-Match`` / ``If-Modified-Since``, and a ``304`` refreshes the entry;
  ``Vary`` keeps variants apart; heuristic freshness only with ``heuristic=True``.
  Bodies over ``max_body`` (1 MiB) stream through, unstored. ``rs.Coalesce``
  shares responses too, never a personal one (``Set-Cookie``, ``private``,
  ``no-store``, ``Vary: *``) nor across ``Vary``'d headers. Records are
  JSON-safe (Redis); one that does not decode is a miss (``cache.decode_error``).

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
