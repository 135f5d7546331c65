"""TokenAuth against a real loopback HTTP server that rotates its token: one 401, one refresh, one retry."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import resilient as rs
from tests.conftest import gather_all, run_threads

CONCURRENT = 50


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 50 clients connect at once; the default backlog of 5 would stall them


class AuthServer:
    """A loopback API: ``POST /token`` issues a new token (the only one accepted); ``GET /data`` needs it.

    ``revoke()`` makes the current token refused (as at a rotation); ``hold_refusals(n)``
    makes refusals wait until ``n`` requests are being refused at once.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.issued = 0
        self.accepted: str | None = None
        self.refused = 0
        self.served = 0
        self.barrier: threading.Barrier | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with server.lock:
                    server.issued += 1
                    server.accepted = f"tok-{server.issued}"
                    body = json.dumps({"access_token": server.accepted, "expires_in": 3600}).encode()
                self._reply(200, body)

            def do_GET(self) -> None:
                with server.lock:
                    sent = self.headers.get("Authorization")
                    ok = server.accepted is not None and sent == f"Bearer {server.accepted}"
                    if ok:
                        server.served += 1
                    else:
                        server.refused += 1
                    barrier = server.barrier
                if ok:
                    self._reply(200, b"ok")
                    return
                if barrier is not None:
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        pass
                self._reply(401, b"unauthorized")

            do_PUT = do_GET

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def revoke(self) -> None:
        with self.lock:
            self.accepted = None

    def hold_refusals(self, n: int) -> None:
        self.barrier = threading.Barrier(n, timeout=10)

    def fetch(self) -> rs.Token:
        body = httpx.post(f"{self.url}/token").json()
        return rs.Token.expiring_in(body["access_token"], body["expires_in"])

    async def afetch(self) -> rs.Token:
        async with httpx.AsyncClient() as client:
            body = (await client.post(f"{self.url}/token")).json()
        return rs.Token.expiring_in(body["access_token"], body["expires_in"])


@pytest.fixture
def server() -> Iterator[AuthServer]:
    srv = AuthServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        if srv.barrier is not None:
            srv.barrier.abort()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(10)


def test_a_refused_token_costs_one_401_one_refresh_and_one_retry(server: AuthServer) -> None:
    """After a rotation, a request gets one 401, the provider refreshes once, and the retried request succeeds."""
    auth = rs.TokenAuth(rs.TokenProvider(server.fetch))
    with httpx.Client(base_url=server.url, auth=auth) as client:
        assert client.get("/data").status_code == 200
        server.revoke()
        response = client.get("/data")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert (server.refused, server.issued, server.served) == (1, 2, 2)


def test_fifty_concurrent_401s_cause_one_refresh(server: AuthServer) -> None:
    """50 threads whose requests are all refused together share one refresh, and all their retries succeed."""
    provider = rs.TokenProvider(server.fetch)
    with httpx.Client(base_url=server.url, auth=rs.TokenAuth(provider)) as client:
        assert client.get("/data").status_code == 200
        server.revoke()
        server.hold_refusals(CONCURRENT)
        statuses = run_threads(CONCURRENT, lambda _: client.get("/data").status_code)
    assert statuses == [200] * CONCURRENT
    assert server.refused == CONCURRENT
    assert server.issued == 2
    assert provider.stats()["invalidations"] == 1


async def test_fifty_concurrent_async_401s_cause_one_refresh(server: AuthServer) -> None:
    """50 tasks whose requests are all refused together share one refresh, and all their retries succeed."""
    provider = rs.TokenProvider(server.afetch)
    try:
        async with httpx.AsyncClient(base_url=server.url, auth=rs.TokenAuth(provider)) as client:
            assert (await client.get("/data")).status_code == 200
            server.revoke()
            server.hold_refusals(CONCURRENT)
            responses = await gather_all(*(client.get("/data") for _ in range(CONCURRENT)))
    finally:
        await provider.aclose()
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    assert all([h.status_code for h in r.history] == [401] for r in responses)
    assert server.refused == CONCURRENT
    assert server.issued == 2


def test_a_second_401_is_returned_without_another_retry(server: AuthServer) -> None:
    """When the fresh token is refused too, the 401 is returned after exactly one retry."""
    issued = 0

    def fetch() -> rs.Token:
        nonlocal issued
        issued += 1
        return rs.Token.expiring_in(f"never-valid-{issued}", 3600)

    with httpx.Client(base_url=server.url, auth=rs.TokenAuth(rs.TokenProvider(fetch))) as client:
        response = client.get("/data")
    assert response.status_code == 401
    assert len(response.history) == 1
    assert server.refused == 2
    assert issued == 2


def test_a_streaming_body_is_not_sent_twice(server: AuthServer) -> None:
    """A request with a one-shot streaming body gets its 401 back (the token is still invalidated)."""
    provider = rs.TokenProvider(server.fetch)
    with httpx.Client(base_url=server.url, auth=rs.TokenAuth(provider)) as client:
        provider.get()
        server.revoke()
        response = client.put("/data", content=iter([b"chunk"]))
    assert response.status_code == 401
    assert server.refused == 1
    assert provider.stats()["invalidations"] == 1


def test_header_and_scheme_are_configurable(server: AuthServer) -> None:
    """TokenAuth writes the token in the named header with the given scheme (or bare)."""
    provider = rs.TokenProvider(lambda: rs.Token.expiring_in("abc", 3600))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["X-Api-Key"])
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    with httpx.Client(transport=transport, auth=rs.TokenAuth(provider, header="X-Api-Key", scheme="")) as client:
        client.get("http://example.invalid/")
    with httpx.Client(transport=transport, auth=rs.TokenAuth(provider, header="X-Api-Key", scheme="Token")) as client:
        client.get("http://example.invalid/")
    assert seen == ["abc", "Token abc"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"header": ""}, ValueError, "header must be a non-empty str, got ''"),
        ({"scheme": None}, TypeError, "scheme must be a str, got None"),
    ],
)
def test_token_auth_validation(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    """A bad TokenAuth option raises an error naming it."""
    with pytest.raises(error, match=match):
        rs.TokenAuth(rs.TokenProvider(lambda: rs.Token("v", 2e9)), **kwargs)  # type: ignore[arg-type]


def test_token_auth_needs_a_provider() -> None:
    """TokenAuth refuses anything that is not a token provider."""
    with pytest.raises(TypeError, match=r"provider must be a resilient\.TokenProvider"):
        rs.TokenAuth("token")  # type: ignore[arg-type]


async def test_one_token_auth_serves_sync_and_async_clients(server: AuthServer) -> None:
    """The same TokenAuth (and provider) authorizes an httpx.Client and an httpx.AsyncClient."""
    auth = rs.TokenAuth(rs.TokenProvider(server.fetch))
    sync_status = await asyncio.to_thread(_get_status, server.url, auth)
    async with httpx.AsyncClient(base_url=server.url, auth=auth) as aclient:
        assert (await aclient.get("/data")).status_code == 200
    assert sync_status == 200
    assert server.issued == 1


def _get_status(url: str, auth: httpx.Auth) -> int:
    with httpx.Client(base_url=url, auth=auth) as client:
        return client.get("/data").status_code
