"""Support for the httpx tests: a real loopback HTTP/1.1 origin (scripted replies,
counted hits) and a caller that drives the sync or the async client."""

from __future__ import annotations

import gzip
import socket
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

import resilient as rs


@dataclass
class Reply:
    """One scripted answer; with ``hold``, the handler first waits for the origin's ``release``."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False


class Origin:
    """A threaded HTTP server on 127.0.0.1:0 (keep-alive), shut down by :meth:`stop`.

    ``script(path, *replies)`` queues answers for a path (then 200 ``ok``);
    ``hits[path]`` counts requests; ``arrived`` is set by every request;
    replies with ``hold`` wait for ``release`` (bounded, never a sleep).
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.release = threading.Event()
        self.arrived = threading.Event()
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                elif self.headers.get("Transfer-Encoding") == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        self.rfile.read(size + 2)
                        if size == 0:
                            break
                path = self.path.split("?", 1)[0]
                reply = origin._take(path, dict(self.headers.items()))
                if reply.hold:
                    origin.release.wait(10)
                self.send_response(reply.status)
                body = b"" if self.command == "HEAD" else reply.body
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512  # the default backlog of 5 resets concurrent connects

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (a timeout test) closed its connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def _take(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.hits[path] += 1
            self.headers_seen.append(headers)
            queue = self._scripts.get(path)
            reply = queue.popleft() if queue else Reply()
        self.arrived.set()
        return reply

    def start(self) -> Origin:
        self.thread.start()
        return self

    def close(self) -> None:
        """The same as :meth:`stop` (for ``contextlib.closing``)."""
        self.stop()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class Caller:
    """Sends requests through the sync or the async resilient client, so one test covers both."""

    def __init__(self, mode: str, client: httpx.Client | httpx.AsyncClient) -> None:
        self.mode = mode
        self.client = client

    @classmethod
    def make(cls, mode: str, policy: rs.Policy, **kwargs: Any) -> Caller:
        if mode == "sync":
            return cls(mode, rs.http.client(policy, **kwargs))
        return cls(mode, rs.http.async_client(policy, **kwargs))

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if isinstance(self.client, httpx.Client):
            return self.client.request(method, url, **kwargs)
        return await self.client.request(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def aclose(self) -> None:
        if isinstance(self.client, httpx.Client):
            self.client.close()
        else:
            await self.client.aclose()


class Bodies:
    """A loopback origin for body behaviour: trickling, dropped mid-body, and large generated bodies.

    * ``/trickle`` and ``/trickle-chunked``: one byte every 0.1 s for ``trickle_seconds``
      (with a Content-Length, or chunked).
    * ``/drop-once``: the first request gets half its body, then the connection closes;
      later ones get all of it (``hits`` counts them).
    * ``/big?bytes=N``: ``N`` generated bytes, chunked, written 64 KiB at a time.
    * ``/small`` and ``/small-gzip``: a short body with a Content-Length (gzipped for the second).
    """

    def __init__(self, trickle_seconds: float = 10.0) -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        bodies = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                with bodies._lock:
                    bodies.hits[path] += 1
                    hit = bodies.hits[path]
                if path in ("/trickle", "/trickle-chunked"):
                    steps = int(trickle_seconds / 0.1)
                    self.send_response(200)
                    if path == "/trickle":
                        self.send_header("Content-Length", str(steps))
                    else:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for _ in range(steps):
                        if bodies.stopping.wait(0.1):
                            return
                        try:
                            if path == "/trickle":
                                self.wfile.write(b"x")
                            else:
                                self._chunk(b"x")
                            self.wfile.flush()
                        except OSError:
                            return  # the client gave up
                    if path == "/trickle-chunked":
                        self.wfile.write(b"0\r\n\r\n")
                elif path == "/drop-once":
                    body = b"0123456789" * 10
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "max-age=60")
                    self.end_headers()
                    if hit == 1:
                        self.wfile.write(body[:50])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(body)
                elif path in ("/small", "/small-gzip"):
                    body = b"a short body, " * 8
                    self.send_response(200)
                    if path == "/small-gzip":
                        body = gzip.compress(body, mtime=0)
                        self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif path == "/big":
                    size = int(query.split("=", 1)[1]) if query.startswith("bytes=") else 0
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Cache-Control", "max-age=60")
                    self.end_headers()
                    block = b"b" * 65536
                    left = size
                    try:
                        while left > 0:
                            part = block if left >= len(block) else block[:left]
                            self._chunk(part)
                            left -= len(part)
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        return
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Bodies:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
