"""RFC 9111 decisions for the response cache, taken by hishel's sans-I/O engine.

hishel (``hishel._core._spec``) decides, acting as a *shared* cache, whether a
response may be stored (``CacheMiss.next``: ``no-store``, ``private``, final
status, explicit or heuristic cacheability), how long it is fresh
(``get_freshness_lifetime``: ``s-maxage``, ``max-age``, ``Expires``; its
Last-Modified heuristic only when asked), whether a stored variant answers a
request (``vary_headers_match``), which validators a revalidation sends
(``make_conditional_request``) and how a ``304`` refreshes the stored headers
(``NeedRevalidation.next``). This module turns ``httpx`` objects into hishel's
and back; what it adds is our own rule set on top: ``Set-Cookie`` and
``Vary: *`` are never stored, credentials never reach a record (the request
headers kept for ``Vary`` hold a keyed fingerprint instead), and the lifetime a
response states is cut by ``max_ttl``.

Nothing here waits or does I/O; the clock's readings come in as arguments
(hishel reads the wall clock itself only to age a response by its ``Date``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from hishel import CacheMiss, CacheOptions, Entry, Headers, NeedRevalidation, NeedToBeUpdated, StoreAndUse
from hishel import Request as HRequest
from hishel import Response as HResponse
from hishel._core._headers import parse_cache_control
from hishel._core._spec import (
    get_age,
    get_freshness_lifetime,
    get_heuristic_freshness,
    make_conditional_request,
    vary_headers_match,
)

from .semantics import RequestKeys

__all__ = ["Freshness", "HttpRules", "conditional_headers", "freshness", "refreshed", "storable", "vary_of"]

#: hishel acts as a shared cache: ``private`` is never stored, ``s-maxage`` wins.
_OPTIONS = CacheOptions(shared=True, supported_methods=["GET", "HEAD"], allow_stale=False)
_NO_ID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class HttpRules:
    """The response cache's HTTP options (``rs.http.client(..., heuristic=..., max_ttl=..., max_body=...)``).

    Attributes:
        heuristic: use RFC 9111's Last-Modified heuristic for responses that state no freshness.
        max_ttl: upper bound of any response's freshness, seconds (None: none).
        max_body: largest body stored, bytes; a larger one passes through as a stream.
    """

    heuristic: bool = False
    max_ttl: float | None = None
    max_body: int = 1 << 20


@dataclass(frozen=True, slots=True)
class Freshness:
    """How long a stored response is fresh, then servable stale (seconds from now)."""

    fresh: float
    stale: float


def _hheaders(pairs: list[tuple[str, str]] | httpx.Headers) -> Headers:
    merged: dict[str, list[str]] = {}
    items = pairs.multi_items() if isinstance(pairs, httpx.Headers) else pairs
    for name, value in items:
        merged.setdefault(name.lower(), []).append(value)
    return Headers(merged)


def _hresponse(status: int, headers: list[tuple[str, str]] | httpx.Headers) -> HResponse:
    return HResponse(status_code=status, headers=_hheaders(headers))


def _hrequest(request: httpx.Request, keys: RequestKeys, names: list[str] | None = None) -> HRequest:
    """The request as hishel sees it: credentials left out (the key already holds their fingerprint)."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.multi_items():
        lower = name.lower()
        if names is not None and lower not in names:
            continue
        if keys.is_credential(lower):
            if names is None:
                continue  # storability: a credentialed request is cached per credential, by its key
            value = keys.fingerprint(value.encode("latin-1", "replace"))
        headers.setdefault(lower, []).append(value)
    return HRequest(method=request.method, url=str(request.url), headers=Headers(headers))


def vary_names(headers: list[tuple[str, str]] | httpx.Headers) -> list[str] | None:
    """The request header names a response varies on (lower-case), ``["*"]``, or None without Vary."""
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers
    names: list[str] = []
    for name, value in items:
        if name.lower() == "vary":
            names.extend(part.strip().lower() for part in value.split(",") if part.strip())
    return names or None


def vary_of(request: httpx.Request, names: list[str], keys: RequestKeys) -> dict[str, str]:
    """The values of the ``Vary``'d request headers, credentials as keyed fingerprints (JSON-safe)."""
    hrequest = _hrequest(request, keys, names)
    return {name: hrequest.headers[name] for name in names if name in hrequest.headers}


def varies_alike(stored: dict[str, str], names: list[str], request: httpx.Request, keys: RequestKeys) -> bool:
    """Whether ``request`` selects the variant whose ``Vary``'d headers were ``stored`` (hishel decides)."""
    entry = Entry(
        id=_NO_ID,
        request=HRequest(method=request.method, url="", headers=Headers(dict(stored))),
        response=HResponse(status_code=200, headers=Headers({"vary": ", ".join(names)})),
    )
    return vary_headers_match(_hrequest(request, keys, names), entry)


def storable(request: httpx.Request, response: httpx.Response, keys: RequestKeys) -> bool:
    """Whether a shared cache may store ``response`` (hishel's ``CacheMiss``), and ours:
    never with ``Set-Cookie`` or ``Vary: *``."""
    headers = response.headers
    if "set-cookie" in headers:
        return False
    names = vary_names(headers)
    if names is not None and "*" in names:
        return False
    state = CacheMiss(request=_hrequest(request, keys), options=_OPTIONS).next(
        _hresponse(response.status_code, headers)
    )
    return isinstance(state, StoreAndUse)


def personal(response: httpx.Response) -> bool:
    """A response that must reach only the caller who asked: ``Set-Cookie``, ``private``,
    ``no-store`` or ``Vary: *`` (never handed to a coalesced waiter either)."""
    headers = response.headers
    if "set-cookie" in headers:
        return True
    cc = parse_cache_control(headers.get("cache-control"))
    if cc.no_store or cc.private:
        return True
    names = vary_names(headers)
    return names is not None and "*" in names


def freshness(
    status: int, headers: list[tuple[str, str]], rules: HttpRules, *, ttl: float, stale_ttl: float
) -> Freshness:
    """The stored response's freshness and stale window, in seconds from now.

    hishel's lifetime (``s-maxage``, ``max-age``, ``Expires``; the Last-Modified
    heuristic only with ``rules.heuristic``) less the response's age; ``ttl``
    when it states none; at most ``rules.max_ttl``. ``no-cache`` is fresh for 0 s
    (revalidated on every use). Stale for the longest of the policy's
    ``stale_ttl`` and the response's ``stale-while-revalidate`` / ``stale-if-error``,
    but never after ``no-cache``, ``must-revalidate`` or ``proxy-revalidate``.
    """
    response = _hresponse(status, headers)
    cc = parse_cache_control(response.headers.get("cache-control"))
    explicit = cc.s_maxage is not None or cc.max_age is not None or "expires" in response.headers
    lifetime: float | None
    if explicit:
        lifetime = get_freshness_lifetime(response, is_cache_shared=True)
    elif rules.heuristic:
        lifetime = get_heuristic_freshness(response)
    else:
        lifetime = None
    if lifetime is None:
        lifetime = ttl
    if cc.no_cache:
        lifetime = 0.0
    if rules.max_ttl is not None:
        lifetime = min(lifetime, rules.max_ttl)
    age = float(get_age(response))
    try:
        age = max(age, float(int(response.headers.get("age", "0"))))
    except ValueError:
        pass
    fresh = max(0.0, float(lifetime) - age)
    if cc.no_cache or cc.must_revalidate or cc.proxy_revalidate:
        return Freshness(fresh, 0.0)
    stale = max(stale_ttl, float(cc.stale_while_revalidate or 0), float(cc.stale_if_error or 0))
    return Freshness(fresh, stale)


def validators(headers: list[tuple[str, str]]) -> bool:
    """Whether a stored response can be revalidated (it has an ``ETag`` or a ``Last-Modified``)."""
    return any(name.lower() in ("etag", "last-modified") for name, _ in headers)


def conditional_headers(request: httpx.Request, stored_headers: list[tuple[str, str]]) -> dict[str, str]:
    """The precondition headers (``If-None-Match``, ``If-Modified-Since``) hishel adds to revalidate."""
    plain = HRequest(method=request.method, url=str(request.url), headers=Headers({}))
    made = make_conditional_request(plain, _hresponse(200, stored_headers))
    return {name: made.headers[name] for name in made.headers}


def refreshed(
    request: httpx.Request, stored_status: int, stored_headers: list[tuple[str, str]], response: httpx.Response
) -> list[tuple[str, str]] | None:
    """The stored headers refreshed by a ``304`` (hishel's ``NeedRevalidation``), or None when
    the 304 does not match the stored response (then it cannot be used)."""
    original = HRequest(method=request.method, url=str(request.url), headers=Headers({}))
    entry = Entry(id=_NO_ID, request=original, response=_hresponse(stored_status, stored_headers))
    state: Any = NeedRevalidation(
        request=original, original_request=original, revalidating_entries=[entry], options=_OPTIONS
    ).next(_hresponse(response.status_code, response.headers))
    if not isinstance(state, NeedToBeUpdated):
        return None
    headers = state.updating_entries[-1].response.headers
    return [(name, value) for name in headers for value in headers.get_list(name) or []]
