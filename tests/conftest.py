"""Shared fixtures: a private redis-server, and helpers that never leave tasks behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free loopback port that a test may stop and restart."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="resilient-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)  # waiting for a child process to listen, not for test logic
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def flush(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the session (skipped without one, unless required)."""
    binary = shutil.which("redis-server")
    required = os.environ.get("RESILIENT_REQUIRE_REDIS") == "1"
    if binary is None:
        if required:
            pytest.fail("RESILIENT_REQUIRE_REDIS=1 but no redis-server binary is on PATH")
        pytest.skip("no redis-server binary on PATH (set RESILIENT_REQUIRE_REDIS=1 to fail instead)")
    try:
        import redis  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("RESILIENT_REQUIRE_REDIS=1 but redis-py is not installed (pip install -e '.[dev]')")
        pytest.skip("redis-py is not installed")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private server's URL, running and empty for this test."""
    redis_server.start()
    redis_server.flush()
    return redis_server.url


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """Run awaitables as tasks; on any failure cancel and await the rest (no pending task survives)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_threads(n: int, target: Callable[[int], Any], *, timeout: float = 30.0) -> list[Any]:
    """Run ``target(i)`` in ``n`` real threads; return results (or exceptions) in order."""
    import threading

    results: list[Any] = [None] * n

    def runner(i: int) -> None:
        try:
            results[i] = target(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            raise AssertionError(f"thread did not finish within {timeout}s")
    return results


@pytest.fixture(autouse=True)
def _events_follow_the_schema() -> Iterator[None]:
    """Every event any test makes follows docs/events.md (name, fields, error form, no query strings)."""
    import threading

    import resilient as rs

    from .events_table import violations

    found: dict[str, None] = {}  # ordered, without repeats
    lock = threading.Lock()

    def check(event: dict[str, Any]) -> None:
        wrong = violations(event)
        if wrong:
            with lock:
                found.update(dict.fromkeys(wrong))

    rs.add_listener(check)
    try:
        yield
    finally:
        rs.remove_listener(check)
    if found:
        pytest.fail("events outside the schema of docs/events.md:\n" + "\n".join(list(found)[:20]), pytrace=False)
