"""Watch the herd: Prometheus metrics for a resilient client, served on 127.0.0.1.

A loopback origin answers /products/<id> (every 4th request a 503); a client
retries through it with a per-host breaker and bulkhead, and a cache in front
of a function absorbs a herd on one cold key. ``resilient.metrics.Prometheus``
watches both policies and ``/metrics`` serves what Prometheus would scrape.

    python examples/metrics.py            # drive traffic, print the herd's signals, exit
    python examples/metrics.py --serve    # ... and keep serving /metrics until Ctrl-C

Needs the ``prometheus`` extra: ``pip install "resilient[prometheus]"``.
"""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, start_http_server

import resilient as rs
from resilient.metrics import Prometheus


class _Origin(BaseHTTPRequestHandler):
    """Every 4th request gets a 503; the others a small JSON body."""

    protocol_version = "HTTP/1.1"
    served = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with _Origin.lock:
            _Origin.served += 1
            failing = _Origin.served % 4 == 0
        body = b'{"error": "busy"}' if failing else b'{"price": 10.99}'
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Running:
    """The example's pieces while it runs."""

    metrics_url: str
    origin_url: str
    prom: Prometheus
    client: httpx.Client
    product: Any


@contextmanager
def running(port: int = 0) -> Iterator[Running]:
    """Start the origin and ``/metrics`` on 127.0.0.1 (``port=0``: any free port); stop both after."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    origin_thread = threading.Thread(target=origin.serve_forever, args=(0.05,), daemon=True)
    origin_thread.start()
    metrics, metrics_thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    origin_url = f"http://127.0.0.1:{origin.server_address[1]}"

    policy = prom.watch(
        rs.pipeline(
            rs.Retry(attempts=3, backoff=rs.FullJitter(0.001, 0.01), on=rs.http.RETRYABLE, budget=rs.RetryBudget()),
            rs.http.per_host(lambda: rs.pipeline(rs.CircuitBreaker(on=rs.http.RETRYABLE), rs.Bulkhead(20))),
        ),
        "prices-api",
    )
    client = rs.http.client(
        policy,
        base_url=origin_url,
        route=lambda request: re.sub(r"/\d+$", "/{id}", request.url.path),  # one label value per route
        observe=prom.origin("prices-api"),  # each attempt's duration -> the origin histogram
    )
    cache = prom.watch(rs.Cache(ttl=60), "products")

    @cache
    def product(pid: int) -> dict[str, Any]:
        return client.get(f"/products/{pid}").json()  # type: ignore[no-any-return]

    try:
        yield Running(f"http://127.0.0.1:{metrics.server_address[1]}/metrics", origin_url, prom, client, product)
    finally:
        client.close()
        prom.close()
        metrics.shutdown()
        metrics.server_close()
        metrics_thread.join(10)
        origin.shutdown()
        origin.server_close()
        origin_thread.join(10)


def traffic(run: Running, requests: int = 40, herd: int = 20, hits: int = 5) -> None:
    """Requests to distinct URLs through the retrying client, a herd of threads on one cold key, then hits."""
    for i in range(requests):
        run.client.get(f"/products/{i}")
    threads = [threading.Thread(target=run.product, args=(7,)) for _ in range(herd)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for _ in range(hits):
        run.product(7)


SIGNALS = (
    "resilient_cache_hits_total",
    "resilient_cache_misses_total",
    "resilient_cache_origin_calls_total",
    "resilient_calls_total",
    "resilient_retries_total",
    "resilient_rejections_total",
    "resilient_origin_duration_seconds_count",
    "resilient_bulkhead_in_use",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port for /metrics on 127.0.0.1 (0: any free port)")
    parser.add_argument("--serve", action="store_true", help="keep serving /metrics until Ctrl-C")
    args = parser.parse_args(argv)
    with running(args.port) as run:
        traffic(run)
        text = httpx.get(run.metrics_url).text  # what Prometheus scrapes
        print(f"serving {run.metrics_url}")
        for line in text.splitlines():
            if line.startswith(SIGNALS):
                print(line)
        if args.serve:
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
