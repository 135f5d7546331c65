"""Bodies through the transports: the deadline bounds reading them, a connection lost
mid-body is retried in any pipeline order, and large bodies stream through a Cache."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator

import httpx
import pytest

import resilient as rs
from resilient.testing import FakeClock

from .origin import Bodies

MODES = ["sync", "async"]


@pytest.fixture
def bodies() -> Iterator[Bodies]:
    server = Bodies().start()
    try:
        yield server
    finally:
        server.stop()


def with_cache(policy: rs.Policy, cached: bool) -> rs.Policy:
    return rs.pipeline(rs.Cache(ttl=60), policy) if cached else policy


async def read(mode: str, policy: rs.Policy, url: str, *, stream: bool) -> bytes:
    """GET ``url`` through ``policy`` (client.get or client.stream), returning the body."""
    if mode == "sync":
        with rs.http.client(policy) as client:
            if not stream:
                return client.get(url).content
            with client.stream("GET", url) as response:
                return b"".join(response.iter_bytes())
    async with rs.http.async_client(policy) as aclient:
        if not stream:
            return (await aclient.get(url)).content
        async with aclient.stream("GET", url) as response:
            return b"".join([part async for part in response.aiter_bytes()])


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream", [False, True], ids=["get", "stream"])
@pytest.mark.parametrize("cached", [False, True], ids=["plain", "cache"])
@pytest.mark.parametrize("path", ["/trickle", "/trickle-chunked"])
async def test_the_deadline_bounds_reading_the_body(
    mode: str, stream: bool, cached: bool, path: str, bodies: Bodies
) -> None:
    """Timeout(0.5) against a body trickling for 10 s raises TimeoutExceeded long before the body ends."""
    policy = with_cache(rs.Timeout(0.5), cached)
    started = time.monotonic()
    with pytest.raises(rs.TimeoutExceeded):
        await read(mode, policy, bodies.url + path, stream=stream)
    assert time.monotonic() - started < 5.0  # the body would take 10 s


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", ["cache-retry", "retry-cache", "retry"])
async def test_a_connection_lost_mid_body_is_retried_in_any_order(mode: str, order: str, bodies: Bodies) -> None:
    """A GET whose connection drops half-way through the body is retried: Cache outside, inside, or no Cache."""
    retry = rs.Retry(attempts=3, on=rs.http.RETRYABLE, clock=FakeClock())
    cache = rs.Cache(ttl=60)
    policy = {
        "cache-retry": rs.pipeline(cache, retry),
        "retry-cache": rs.pipeline(retry, cache),
        "retry": retry,
    }[order]
    body = await read(mode, policy, bodies.url + "/drop-once", stream=False)
    assert body == b"0123456789" * 10
    assert bodies.hits["/drop-once"] == 2


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_300_mb_stream_through_a_cache_stays_streaming(mode: str, bodies: Bodies) -> None:
    """300 MB through client.stream() with a Cache: the body is never held whole (RSS grows < 64 MB)."""
    size = 300 * 1024 * 1024
    url = bodies.url + f"/big?bytes={size}"
    cache = rs.Cache(ttl=60)
    before = _rss_bytes()
    peak = before
    total = 0
    if mode == "sync":
        with rs.http.client(cache) as client, client.stream("GET", url) as response:
            for part in response.iter_raw(1 << 20):
                total += len(part)
                peak = max(peak, _rss_bytes()) if total % (16 << 20) < (1 << 20) else peak
    else:
        async with rs.http.async_client(cache) as aclient, aclient.stream("GET", url) as response:
            async for part in response.aiter_raw(1 << 20):
                total += len(part)
                peak = max(peak, _rss_bytes()) if total % (16 << 20) < (1 << 20) else peak
    assert total == size
    assert peak - before < 64 * 1024 * 1024
    assert cache.stats()["hits"] == 0


@pytest.mark.parametrize("mode", MODES)
async def test_a_body_over_max_body_is_not_stored(mode: str, bodies: Bodies) -> None:
    """A body larger than max_body reaches its caller whole and is not stored: the next GET asks again."""
    url = bodies.url + "/big?bytes=300000"
    cache = rs.Cache(ttl=60)
    if mode == "sync":
        with rs.http.client(cache, max_body=100_000) as client:
            sizes = [len(client.get(url).content) for _ in range(2)]
    else:
        async with rs.http.async_client(cache, max_body=100_000) as aclient:
            sizes = [len((await aclient.get(url)).content) for _ in range(2)]
    assert sizes == [300000, 300000]
    assert bodies.hits["/big"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_body_within_max_body_is_stored(mode: str, bodies: Bodies) -> None:
    """A chunked body within max_body is stored and served again without the origin."""
    url = bodies.url + "/big?bytes=300000"
    cache = rs.Cache(ttl=60)
    if mode == "sync":
        with rs.http.client(cache) as client:
            sizes = [len(client.get(url).content) for _ in range(2)]
    else:
        async with rs.http.async_client(cache) as aclient:
            sizes = [len((await aclient.get(url)).content) for _ in range(2)]
    assert sizes == [300000, 300000]
    assert bodies.hits["/big"] == 1


def _state(response: httpx.Response) -> tuple[object, ...]:
    return (
        response.status_code,
        response.headers.get("content-encoding"),
        response.is_stream_consumed,
        response.is_closed,
        response.num_bytes_downloaded,
    )


def _observed(client: httpx.Client, url: str) -> list[object]:
    """What a caller sees of a small body: get (and reading it again), and stream (raw, then decoded)."""
    seen: list[object] = []
    got = client.get(url)
    seen += [got.content, _state(got), got.read(), _state(got)]
    with pytest.raises(httpx.StreamConsumed):
        list(got.iter_raw())
    with client.stream("GET", url) as response:
        seen += [_state(response), b"".join(response.iter_raw()), _state(response)]
    with client.stream("GET", url) as response:
        seen += [b"".join(response.iter_bytes()), _state(response)]
    with client.stream("GET", url) as response:
        seen += [response.read(), _state(response)]
    return seen


async def _aobserved(aclient: httpx.AsyncClient, url: str) -> list[object]:
    """The async twin of :func:`_observed`."""
    seen: list[object] = []
    got = await aclient.get(url)
    seen += [got.content, _state(got), await got.aread(), _state(got)]
    with pytest.raises(httpx.StreamConsumed):
        [part async for part in got.aiter_raw()]
    async with aclient.stream("GET", url) as response:
        seen += [_state(response), b"".join([p async for p in response.aiter_raw()]), _state(response)]
    async with aclient.stream("GET", url) as response:
        seen += [b"".join([p async for p in response.aiter_bytes()]), _state(response)]
    async with aclient.stream("GET", url) as response:
        seen += [await response.aread(), _state(response)]
    return seen


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["/small", "/small-gzip"])
async def test_a_body_read_inside_the_attempt_looks_as_plain_httpx_leaves_it(
    mode: str, path: str, bodies: Bodies
) -> None:
    """A small body, read inside the attempt (and handed to httpx when it is not encoded),
    gives the caller what plain httpx gives: content, raw bytes, decoded bytes, and the
    response's state (stream consumed, closed, bytes downloaded) after each way of reading."""
    url = bodies.url + path
    policy = rs.pipeline(rs.Timeout(30), rs.Retry(attempts=2, on=rs.http.RETRYABLE))
    if mode == "sync":
        with httpx.Client() as plain, rs.http.client(policy) as ours:
            expected, seen = _observed(plain, url), _observed(ours, url)
    else:
        async with httpx.AsyncClient() as aplain, rs.http.async_client(policy) as aours:
            expected, seen = await _aobserved(aplain, url), await _aobserved(aours, url)
    assert seen == expected
    assert expected[0] == b"a short body, " * 8
