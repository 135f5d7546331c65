"""A PerKey partition's inner policy names its key: the breaker's error and every event carry the host."""

from __future__ import annotations

import httpx
import pytest

import resilient as rs
from resilient.testing import FakeClock, capture_events


def test_a_per_host_breaker_names_the_host_in_its_error_and_events() -> None:
    """Opened by /down, the breaker refuses /slow with an error naming the host; its events carry key=host."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.path == "/down" else 200)

    clock = FakeClock()
    per_host = rs.http.per_host(lambda: rs.CircuitBreaker(failure_threshold=2, on=rs.http.RETRYABLE, clock=clock))
    client = rs.http.client(per_host, transport=httpx.MockTransport(handler))
    with capture_events() as events:
        for _ in range(2):
            client.get("https://api.test/down")
        with pytest.raises(rs.CircuitOpenError) as caught:
            client.get("https://api.test/slow")
    client.close()
    message = str(caught.value)
    assert message.startswith("circuit 'api.test' is open"), message
    assert "refusing GET api.test" in message  # the refused request, named as such
    breaker_events = [e for e in events if e["event"].startswith("breaker.")]
    assert {e["event"] for e in breaker_events} == {"breaker.opened", "breaker.rejected"}
    assert all(e["key"] == "api.test" for e in breaker_events)


def test_the_function_behind_a_partition_does_not_inherit_its_key() -> None:
    """An unrelated policy called inside the partitioned function emits its own key (None), not the partition's."""
    inner_retry = rs.Retry(attempts=2, clock=FakeClock())
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return "ok"

    per_key = rs.PerKey(lambda: rs.CircuitBreaker(), key=lambda ctx: "tenant-a")
    with capture_events() as events:
        assert per_key.call(lambda: inner_retry.call(flaky)) == "ok"
    attempts = [e for e in events if e["event"] == "retry.attempt"]
    assert attempts and all(e["key"] is None for e in attempts)
