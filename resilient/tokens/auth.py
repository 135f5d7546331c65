"""``TokenAuth``: a :class:`TokenProvider`'s token on every httpx request, one retry on 401."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx

__all__ = ["TokenAuth", "TokenSource"]


class TokenSource(Protocol):
    """What ``TokenAuth`` needs of a provider (``rs.TokenProvider`` is one)."""

    def get(self) -> str: ...
    async def aget(self) -> str: ...
    def invalidate(self, value: str) -> object: ...
    async def ainvalidate(self, value: str) -> object: ...


class TokenAuth(httpx.Auth):
    """An ``httpx.Auth`` that sends ``header: scheme <token>`` from a provider.

    On a 401 it invalidates the token it sent (a no-op if another request has
    already replaced it, so 50 requests refused together cost one refresh) and
    sends the request once more with the provider's current token. A second 401
    is returned as it is. A streaming request body cannot be sent twice: its 401
    is returned (the token is still invalidated, so the next request is fresh).

    Works with ``httpx.Client`` (``provider.get()``) and ``httpx.AsyncClient``
    (``await provider.aget()``); the same object may serve both.

    Args:
        provider: the :class:`~resilient.TokenProvider` to take tokens from.
        header: the request header to set.
        scheme: put before the token with a space (``""``: the bare token).
    """

    def __init__(self, provider: TokenSource, *, header: str = "Authorization", scheme: str = "Bearer") -> None:
        for method in ("get", "aget", "invalidate", "ainvalidate"):
            if not callable(getattr(provider, method, None)):
                raise TypeError(f"provider must be a resilient.TokenProvider, got {provider!r}")
        if not isinstance(header, str) or not header.strip():
            raise ValueError(f"header must be a non-empty str, got {header!r}")
        if not isinstance(scheme, str):
            raise TypeError(f"scheme must be a str, got {scheme!r}")
        self.provider = provider
        self.header = header
        self.scheme = scheme
        self._prefix = f"{scheme} " if scheme else ""

    def _authorize(self, request: httpx.Request, value: str) -> None:
        request.headers[self.header] = self._prefix + value

    @staticmethod
    def _retry(request: httpx.Request, response: httpx.Response) -> bool:
        return response.status_code == 401 and isinstance(request.stream, httpx.ByteStream)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self.provider.get()
        self._authorize(request, sent)
        response = yield request
        if response.status_code == 401:
            self.provider.invalidate(sent)
            if self._retry(request, response):
                self._authorize(request, self.provider.get())
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = await self.provider.aget()
        self._authorize(request, sent)
        response = yield request
        if response.status_code == 401:
            await self.provider.ainvalidate(sent)
            if self._retry(request, response):
                self._authorize(request, await self.provider.aget())
                yield request

    def __repr__(self) -> str:
        return f"TokenAuth({self.provider!r}, header={self.header!r}, scheme={self.scheme!r})"
