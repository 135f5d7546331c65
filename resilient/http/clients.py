"""Clients whose requests run through a policy, and keys for per-host isolation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ..core.context import Context
from ..core.policy import Policy
from ..policies.perkey import PerKey
from .exchange import RequestContext, exchange_of
from .semantics import host_of
from .transport import AsyncResilientTransport, ResilientTransport

__all__ = ["async_client", "client", "host_key", "per_host", "request_of"]

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
_OWN_OPTIONS = (
    "clock",
    "route",
    "observe",
    "credential_headers",
    "fingerprint_key",
    "heuristic",
    "max_ttl",
    "max_body",
)


def _own_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: kwargs.pop(name) for name in _OWN_OPTIONS if name in kwargs}


def client(policy: Policy, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose requests all run through ``policy``.

    ``kwargs`` are ``httpx.Client``'s; ``limits``, ``verify``, ``cert``,
    ``http1``, ``http2`` and ``proxy`` configure the inner transport (or pass
    ``transport=`` to wrap your own); ``clock=`` (give it the clock of your
    ``rs.Timeout``), ``route=``, ``observe=``, ``credential_headers=``,
    ``fingerprint_key=``, ``heuristic=``, ``max_ttl=`` and ``max_body=`` go to the
    resilient transport (see :class:`ResilientTransport`). Transports given in ``mounts=``
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
    if isinstance(ctx, RequestContext):
        return ctx.host
    exchange = exchange_of(ctx)
    return ctx.operation if exchange is None else host_of(exchange.request)


def per_host(factory: Callable[[], Policy] | Callable[[str], Policy], *, maxsize: int = 1024) -> PerKey:
    """One policy per host, made by ``factory()`` (or ``factory(host)``) on the host's first request.

    ``rs.http.per_host(lambda: rs.pipeline(rs.CircuitBreaker(on=rs.http.RETRYABLE), rs.Bulkhead(20)))``
    gives every host its own breaker and bulkhead: a host that fails opens only
    its own circuit. The host includes the port when the URL gives one. At most
    ``maxsize`` hosts are kept, least recently used dropped first.
    """
    return PerKey(factory, key=host_key, maxsize=maxsize)
