"""A cache's background refresh through the transports owns its response: the request that
started it cannot close it (the `ReadError: Bad file descriptor` of a loaded machine)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

import resilient as rs
from resilient.stores.memory import MemoryStore
from resilient.testing import FakeClock


class JSON:
    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class GatedBody(httpx.SyncByteStream):
    """A body that says when its reading began, then waits for `release`; closed under it, it fails."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.reading = threading.Event()
        self.release = threading.Event()
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        self.reading.set()
        self.release.wait(30)
        if self.closed:
            raise httpx.ReadError("[Errno 9] Bad file descriptor")
        yield self.body

    def close(self) -> None:
        self.closed = True


def test_a_background_refresh_reads_its_response_after_the_request_that_started_it_returned() -> None:
    """The stale request returns while the refresh still reads its body; the refresh still completes."""
    clock = FakeClock()
    gated = GatedBody(b"v2")
    replies = iter([httpx.Response(200, content=b"v1"), httpx.Response(200, stream=gated)])
    cache = rs.Cache(ttl=10, ttl_jitter=0, store=MemoryStore(serializer=JSON()), clock=clock)
    outcomes: list[str] = []
    done = threading.Event()

    def listener(event: dict[str, Any]) -> None:
        if event["event"] == "cache.stale_served":
            gated.reading.wait(30)  # the refresh holds its response before this request returns
        if event["event"] in ("cache.refreshed", "cache.refresh_failed"):
            outcomes.append(event["event"])
            done.set()

    rs.add_listener(listener)
    client = rs.http.client(cache, transport=httpx.MockTransport(lambda request: next(replies)))
    try:
        assert client.get("https://origin.test/item").text == "v1"
        clock.advance(11)
        assert client.get("https://origin.test/item").text == "v1"  # stale, refreshed in the background
        gated.release.set()
        assert done.wait(30)
        assert client.get("https://origin.test/item").text == "v2"
    finally:
        gated.release.set()
        rs.remove_listener(listener)
        cache.close()
        client.close()
    assert outcomes == ["cache.refreshed"]
