"""resilient's response cache beside hishel's, against one scripted origin.

Both clients run as RFC 9111 *shared* caches in front of the same loopback
origin (a threaded HTTP/1.1 server that answers ``If-None-Match`` /
``If-Modified-Since`` with ``304`` when the validator matches). Each scenario
runs once with ``rs.http.client(rs.Cache(...))`` and once with
``hishel.httpx.CacheTransport(rfc=CacheOptions(shared=True))``; printed: origin
calls (and how many of them were answered 304) per client and scenario.

The last scenario sends 100 concurrent cold requests for one URL (threads, a
500 ms origin): resilient coalesces them into one origin call, hishel has no
herd protection and makes one call per request.

Freshness runs on the real clock (hishel reads it itself), so the max-age
scenarios sleep a little over a second: the run takes about ten seconds.

    python -m benchmarks.http_cache_vs_hishel
"""

from __future__ import annotations

import email.utils
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hishel
import httpx
from hishel.httpx import CacheTransport

import resilient as rs

from ._util import quiet

LAST_MODIFIED = email.utils.formatdate(time.time() - 3600, usegmt=True)

#: path -> (response headers, validator kind)
ROUTES: dict[str, dict[str, str]] = {
    "/vary": {"Cache-Control": "max-age=60", "Vary": "Accept-Language"},
    "/no-cache": {"Cache-Control": "no-cache", "ETag": '"nc1"'},
    "/max-age": {"Cache-Control": "max-age=1"},
    "/etag": {"Cache-Control": "max-age=1", "ETag": '"e1"'},
    "/last-modified": {"Cache-Control": "max-age=1", "Last-Modified": LAST_MODIFIED},
    "/cold": {"Cache-Control": "max-age=60"},
}


class Origin:
    """The scripted origin: counts calls and 304s per path; /cold answers after 500 ms."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                headers = ROUTES.get(path, {})
                etag, modified = headers.get("ETag"), headers.get("Last-Modified")
                unchanged = (etag is not None and self.headers.get("If-None-Match") == etag) or (
                    modified is not None and self.headers.get("If-Modified-Since") == modified
                )
                with origin.lock:
                    origin.calls[path] += 1
                    if unchanged:
                        origin.not_modified[path] += 1
                if path == "/cold":
                    time.sleep(0.5)
                body = f"{path} {self.headers.get('Accept-Language', '')}".encode()
                self.send_response(304 if unchanged else 200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0" if unchanged else str(len(body)))
                self.end_headers()
                if not unchanged:
                    self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def scenarios() -> list[tuple[str, str, Callable[[httpx.Client], None]]]:
    def varying(*langs: str) -> Callable[[httpx.Client], None]:
        def run(c: httpx.Client) -> None:
            for lang in langs:
                c.get("/vary", headers={"Accept-Language": lang})

        return run

    def no_cache(c: httpx.Client) -> None:
        for _ in range(4):
            c.get("/no-cache")

    def expiring(path: str) -> Callable[[httpx.Client], None]:
        def run(c: httpx.Client) -> None:
            c.get(path)
            c.get(path)
            time.sleep(1.2)
            c.get(path)
            c.get(path)
            time.sleep(1.2)
            c.get(path)

        return run

    return [
        ("Vary (fr, fr, en, en, de, de)", "/vary", varying("fr", "fr", "en", "en", "de", "de")),
        # hishel keeps one variant per URL (a new one replaces the last): interleaved users cost it more.
        ("Vary interleaved (fr, en, fr, en, de, fr)", "/vary", varying("fr", "en", "fr", "en", "de", "fr")),
        ("no-cache + ETag (4 uses)", "/no-cache", no_cache),
        ("max-age=1 (5 uses over 2.4 s)", "/max-age", expiring("/max-age")),
        ("ETag, max-age=1 (5 uses)", "/etag", expiring("/etag")),
        ("Last-Modified, max-age=1 (5 uses)", "/last-modified", expiring("/last-modified")),
    ]


def rs_client(base_url: str) -> tuple[httpx.Client, rs.Cache]:
    # stale_ttl=0: the response's own directives decide, as they do for hishel.
    cache = rs.Cache(ttl=60, stale_ttl=0, lock_ttl=10)
    return rs.http.client(cache, base_url=base_url, limits=httpx.Limits(max_connections=200)), cache


def hishel_client(base_url: str, folder: Path, name: str) -> httpx.Client:
    storage = hishel.SqliteStorage(database_path=str(folder / f"{name}.db"))
    transport = CacheTransport(
        httpx.HTTPTransport(limits=httpx.Limits(max_connections=200)),
        storage=storage,
        rfc=hishel.CacheOptions(shared=True),
    )
    return httpx.Client(transport=transport, base_url=base_url)


def cold_herd(client: httpx.Client, n: int = 100) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(10)
            client.get("/cold")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        raise RuntimeError(f"{len(errors)} cold requests failed: {errors[0]!r}")


def main() -> None:
    quiet()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, (title, path, run) in enumerate([*scenarios(), ("100 concurrent cold requests", "/cold", cold_herd)]):
            counts = []
            for name in ("rs", "hishel"):
                origin = Origin()
                try:
                    if name == "rs":
                        client, cache = rs_client(origin.url)
                        with client:
                            run(client)
                        cache.close()
                    else:
                        with hishel_client(origin.url, folder, f"{name}-{i}") as client:
                            run(client)
                    counts.append(f"{origin.calls[path]} ({origin.not_modified[path]} x 304)")
                finally:
                    origin.stop()
            rows.append((title, counts[0], counts[1]))
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  {'resilient':>16}  {'hishel':>16}   origin calls")
    for title, ours, theirs in rows:
        print(f"{title:<{width}}  {ours:>16}  {theirs:>16}")


if __name__ == "__main__":
    main()
