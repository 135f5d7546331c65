"""Shared auth tokens: 40 concurrent requests, one token fetch; a rotation, 40 401s, one refresh.

Run it: ``python examples/token_refresh.py``. It starts a tiny API on
127.0.0.1 (``POST /token`` issues a token, ``GET /orders`` needs the latest
one), then sends requests through ``httpx`` with ``rs.TokenAuth``. Nothing
leaves the machine; the token value never appears in the log lines.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

import resilient as rs

REQUESTS = 40


class Api(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.current: str | None = None
        self.issued = 0
        self.refused = 0
        self.batch: threading.Barrier | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def rotate(self, in_flight: int) -> None:
        """Revoke the current token, as an auth server's key rotation would, while
        ``in_flight`` requests carrying it are being answered (their 401s go out together)."""
        with self.lock:
            self.current = None
            self.batch = threading.Barrier(in_flight, timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: Api

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        api = self.server
        with api.lock:
            api.issued += 1
            api.current = f"secret-{api.issued}"
            body = json.dumps({"access_token": api.current, "expires_in": 3600}).encode()
        self._reply(200, body)

    def do_GET(self) -> None:
        api = self.server
        with api.lock:
            ok = api.current is not None and self.headers.get("Authorization") == f"Bearer {api.current}"
            api.refused += not ok
            batch = api.batch
        if ok:
            self._reply(200, b'{"orders": []}')
            return
        if batch is not None:
            try:
                batch.wait()
            except threading.BrokenBarrierError:
                pass
        self._reply(401, b"")


def main() -> dict[str, int]:
    api = Api()
    server = threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    server.start()

    def fetch() -> rs.Token:
        body = httpx.post(f"{api.url}/token").json()
        return rs.Token.expiring_in(body["access_token"], body["expires_in"])

    provider = rs.TokenProvider(fetch, refresh_before=60)
    try:
        with (
            httpx.Client(base_url=api.url, auth=rs.TokenAuth(provider)) as client,
            ThreadPoolExecutor(REQUESTS) as pool,
        ):
            cold = list(pool.map(lambda _: client.get("/orders").status_code, range(REQUESTS)))
            print(f"cold start: {REQUESTS} requests -> {cold.count(200)} ok, token fetches so far: {api.issued}")
            api.rotate(in_flight=REQUESTS)
            rotated = list(pool.map(lambda _: client.get("/orders").status_code, range(REQUESTS)))
            print(
                f"after rotation: {REQUESTS} requests -> {rotated.count(200)} ok, "
                f"{api.refused} refused once and retried, token fetches in total: {api.issued}"
            )
    finally:
        api.shutdown()
        api.server_close()
        server.join(10)
    print(f"provider stats: {provider.stats()}")
    return {"ok": cold.count(200) + rotated.count(200), "fetches": api.issued, "refused": api.refused}


if __name__ == "__main__":
    main()
