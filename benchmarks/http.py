"""Requests per second through ResilientTransport beside plain httpx and httpx-retries.

A minimal keep-alive HTTP/1.1 origin runs in a child process on 127.0.0.1 (so
it does not share the client's GIL) and answers every request with ``200 ok``.
Each client sends requests one after another over one connection; short rounds
of every client are interleaved (the order rotating) and the best round of each
is kept, which damps the noise of a shared machine. The same comparison then
runs against an in-memory origin, which leaves only the clients' own CPU cost.
Printed: requests/s and the client process's CPU time per request (robust to
a busy machine), each with its ratio to plain httpx; ``paired`` is the median,
over rounds, of plain httpx's time over the client's in the same round (robust
to a machine whose speed drifts from one second to the next).

Two resilient clients run: one with a retry only (like httpx-retries), and
one with every policy on its happy path: a timeout, a retry (with a budget,
on ``rs.http.RETRYABLE``) and a per-host circuit breaker and bulkhead.

    python -m benchmarks.http [--requests 150] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from typing import Any

import httpx
from httpx_retries import Retry as PeerRetry
from httpx_retries import RetryTransport

import resilient as rs

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class _OriginProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # GETs only: no request body
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            assert self.transport is not None
            self.transport.write(RESPONSE)


def _serve(ready: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_OriginProtocol, "127.0.0.1", 0)
        ready.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def retry_policy() -> rs.Policy:
    """The like-for-like peer of httpx-retries' transport: a retry on transient failures."""
    return rs.Retry(attempts=3, on=rs.http.RETRYABLE)


def resilient_policy() -> rs.Policy:
    """Every policy available, configured as a user would, all on their happy path."""
    return rs.pipeline(
        rs.Timeout(30),
        rs.Retry(attempts=3, on=rs.http.RETRYABLE, budget=rs.RetryBudget()),
        rs.http.per_host(lambda: rs.pipeline(rs.CircuitBreaker(on=rs.http.RETRYABLE), rs.Bulkhead(100))),
    )


class _InMemory(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An origin without a network: the same 200 ``ok``, built in memory."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=[(b"Content-Length", b"2")], stream=httpx.ByteStream(b"ok"))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=[(b"Content-Length", b"2")], stream=httpx.ByteStream(b"ok"))


def _sync_clients(url: str, memory: bool) -> dict[str, httpx.Client]:
    def inner() -> httpx.BaseTransport:
        return _InMemory() if memory else httpx.HTTPTransport()

    return {
        "plain httpx": httpx.Client(base_url=url, transport=inner()),
        "httpx-retries": httpx.Client(base_url=url, transport=RetryTransport(inner(), retry=PeerRetry(total=2))),
        "resilient, retry": rs.http.client(retry_policy(), base_url=url, transport=inner()),
        "resilient, all": rs.http.client(resilient_policy(), base_url=url, transport=inner()),
    }


def _async_clients(url: str, memory: bool) -> dict[str, httpx.AsyncClient]:
    def inner() -> httpx.AsyncBaseTransport:
        return _InMemory() if memory else httpx.AsyncHTTPTransport()

    return {
        "plain httpx": httpx.AsyncClient(base_url=url, transport=inner()),
        "httpx-retries": httpx.AsyncClient(base_url=url, transport=RetryTransport(inner(), retry=PeerRetry(total=2))),
        "resilient, retry": rs.http.async_client(retry_policy(), base_url=url, transport=inner()),
        "resilient, all": rs.http.async_client(resilient_policy(), base_url=url, transport=inner()),
    }


Timing = tuple[float, float]  # (wall seconds, this process's CPU seconds)


def _sync_round(client: httpx.Client, n: int) -> Timing:
    get = client.get
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        get("/item")
    return time.perf_counter() - wall, time.process_time() - cpu


async def _async_round(client: httpx.AsyncClient, n: int) -> Timing:
    get = client.get
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await get("/item")
    return time.perf_counter() - wall, time.process_time() - cpu


def _report(title: str, best: dict[str, list[float]], n: int) -> dict[str, float]:
    base_wall, base_cpu = best["plain httpx"][:2]
    base_rounds = best["plain httpx"][2:]
    print(f"\n{title}: best of the rounds of {n} sequential GETs")
    print(f"  {'client':<18}{'requests/s':>12}{'vs plain':>10}{'paired':>8}{'client CPU us/req':>20}{'vs plain':>10}")
    for name, (wall, cpu, *rounds) in best.items():
        paired = statistics.median(b / r for b, r in zip(base_rounds, rounds, strict=True))
        print(
            f"  {name:<18}{n / wall:>12,.0f}{base_wall / wall:>10.3f}{paired:>8.3f}"
            f"{cpu / n * 1e6:>20.1f}{base_cpu / cpu:>10.3f}"
        )
    return {name: n / wall for name, (wall, _, *_rounds) in best.items()}


def _keep_best(best: dict[str, list[float]], name: str, timing: Timing) -> None:
    """Keep the best wall and CPU time of ``name``, and every round's wall time after them
    (``paired``: the median over rounds of plain's time over this client's in the same round,
    which cancels a machine whose speed drifts between rounds)."""
    slot = best.setdefault(name, [float("inf"), float("inf")])
    slot[0] = min(slot[0], timing[0])
    slot[1] = min(slot[1], timing[1])
    slot.append(timing[0])


def _compare_sync(clients: dict[str, httpx.Client], requests: int, rounds: int) -> dict[str, list[float]]:
    best: dict[str, list[float]] = {}
    names = list(clients)
    for name in names:
        _sync_round(clients[name], 100)  # warm up: connection, caches
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            _keep_best(best, name, _sync_round(clients[name], requests))
    for client in clients.values():
        client.close()
    return {name: best[name] for name in names}


async def _compare_async(clients: dict[str, httpx.AsyncClient], requests: int, rounds: int) -> dict[str, list[float]]:
    best: dict[str, list[float]] = {}
    names = list(clients)
    for name in names:
        await _async_round(clients[name], 100)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            _keep_best(best, name, await _async_round(clients[name], requests))
    for client in clients.values():
        await client.aclose()
    return {name: best[name] for name in names}


def run(requests: int, rounds: int) -> dict[str, dict[str, float]]:
    """Run every comparison; return requests/s per client for each."""
    here, there = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(there,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{here.recv()}"
        results: dict[str, dict[str, float]] = {}
        best = _compare_sync(_sync_clients(url, memory=False), requests, rounds)
        results["sync loopback"] = _report("sync Client, loopback origin", best, requests)
        best = asyncio.run(_compare_async(_async_clients(url, memory=False), requests, rounds))
        results["async loopback"] = _report("async AsyncClient, loopback origin", best, requests)
        best = _compare_sync(_sync_clients(url, memory=True), requests, rounds)
        results["sync in-memory"] = _report("sync Client, in-memory origin (client overhead only)", best, requests)
        best = asyncio.run(_compare_async(_async_clients(url, memory=True), requests, rounds))
        results["async in-memory"] = _report("async AsyncClient, in-memory origin", best, requests)
        return results
    finally:
        server.terminate()
        server.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=150, help="GETs per round (default 150)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds per client (default 40)")
    args = parser.parse_args(argv)
    print(f"policy: {resilient_policy()!r}")
    run(args.requests, args.rounds)


if __name__ == "__main__":
    main()
