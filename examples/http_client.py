"""A resilient httpx client against a flaky loopback server, start to finish.

The script starts its own HTTP server on 127.0.0.1 that answers the first
request to each path with ``503 Service Unavailable`` (and ``Retry-After: 0``),
then sends through ``rs.http.client``:

* a GET, retried through the 503;
* a POST, not retried (it is not idempotent), so its 503 comes back;
* the same POST with an ``Idempotency-Key``, retried like a GET;
* three GETs of a catalogue through a cache: the server sees two (the 503,
  which is not stored, and the 200 that is);

all under a 5 s timeout (each attempt's httpx timeouts cut to what is left)
and a circuit breaker per host, and prints what the server saw and the stats.

    python examples/http_client.py
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import resilient as rs


def start_flaky_server() -> tuple[ThreadingHTTPServer, Counter[str]]:
    """A loopback server failing each path's first request with 503; returns it and its hit counts."""
    hits: Counter[str] = Counter()
    lock = threading.Lock()

    class Flaky(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = f"{self.command} {self.path}"
            with lock:
                hits[key] += 1
                first = hits[key] == 1
            body = b"busy, try again" if first else b"done"
            self.send_response(503 if first else 200)
            if first:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, hits


def main() -> dict[str, Any]:
    server, hits = start_flaky_server()
    host, port = server.server_address[:2]
    retry = rs.Retry(attempts=3, backoff=rs.FullJitter(0.01, 0.1), on=rs.http.RETRYABLE, budget=rs.RetryBudget())
    breakers = rs.http.per_host(lambda: rs.CircuitBreaker(failure_threshold=5, on=rs.http.RETRYABLE))
    policy = rs.pipeline(rs.Timeout(5), retry, breakers)
    cache = rs.Cache(ttl=60)
    try:
        with rs.http.client(policy, base_url=f"http://{host!s}:{port}", timeout=30) as client:
            got = client.get("/prices/42")
            posted = client.post("/orders", json={"sku": 42})
            keyed = client.post("/payments", json={"sku": 42}, headers={"Idempotency-Key": "pay-42"})
        with rs.http.client(rs.pipeline(cache, policy), base_url=f"http://{host!s}:{port}") as cached:
            catalogue = [cached.get("/catalogue").status_code for _ in range(3)]
    finally:
        server.shutdown()
        server.server_close()
    print(f"GET  /prices/42 -> {got.status_code} {got.text!r}  (server hits: {hits['GET /prices/42']})")
    print(f"POST /orders    -> {posted.status_code} {posted.text!r}  (server hits: {hits['POST /orders']})")
    print(f"POST /payments  -> {keyed.status_code} {keyed.text!r}  (server hits: {hits['POST /payments']}, keyed)")
    print(f"GET  /catalogue x3 through a cache -> {catalogue}  (server hits: {hits['GET /catalogue']})")
    print(f"retry stats: {retry.stats()}")
    print(f"cache stats: {cache.stats()}")
    hosts = breakers.keys()  # PerKey: the hosts seen, each with its own breaker
    print(f"breakers: { {host: getattr(breakers.get(host), 'state', None) for host in hosts} }")
    return {
        "get": got.status_code,
        "post": posted.status_code,
        "keyed": keyed.status_code,
        "catalogue": catalogue,
        "hits": dict(hits),
    }


if __name__ == "__main__":
    main()
