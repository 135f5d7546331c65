"""Labels stay bounded: a thousand URLs of one route give one operation and a fixed set of series."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import resilient as rs
from resilient.metrics import Prometheus
from resilient.testing import FakeClock, capture_events

from ..http.origin import Origin, Reply

URLS = 1000


@pytest.fixture
def origin() -> Iterator[Origin]:
    with contextlib.closing(Origin().start()) as server:
        yield server


def series(registry: CollectorRegistry) -> dict[str, set[str]]:
    """The distinct values each label takes across every resilient_* series of one scrape."""
    values: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.startswith("resilient_"):
                for label, value in sample.labels.items():
                    values.setdefault(label, set()).add(value)
    return values


def policy() -> rs.Policy:
    return rs.pipeline(
        rs.Retry(attempts=2, backoff=rs.Constant(0), on=rs.http.statuses(503), clock=FakeClock()),
        rs.http.per_host(lambda: rs.pipeline(rs.CircuitBreaker(failure_threshold=10**6), rs.Bulkhead(10))),
    )


@pytest.mark.parametrize(
    ("route", "count", "operation"),
    [(None, URLS, "GET {host}"), (lambda r: re.sub(r"/\d+$", "/{id}", r.url.path), 200, "GET {host}/items/{{id}}")],
    ids=["host", "route"],
)
def test_a_thousand_urls_of_one_route_give_one_operation(origin: Origin, route, count: int, operation: str) -> None:
    """1,000 requests to 1,000 distinct URLs (each retried once) carry one operation; every label stays small."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    host = httpx.URL(origin.url).netloc.decode()
    for i in range(count):
        origin.script(f"/items/{i}", Reply(503))
    try:
        watched = prom.watch(policy(), "api")
        with (
            rs.http.client(watched, base_url=origin.url, route=route, observe=prom.origin("api")) as client,
            capture_events() as events,
        ):
            for i in range(count):
                assert client.get(f"/items/{i}", params={"token": f"secret-{i}"}).status_code == 200
        assert len(events) == count  # one retry.attempt per request
        assert {e["operation"] for e in events} == {operation.format(host=host)}
        assert {e["key"] for e in events} == {None}
        labels = series(registry)
    finally:
        prom.close()
    assert labels["name"] == {"api"}
    assert labels["policy"] <= {"retry", "per_key.breaker", "per_key.bulkhead", "http", "cache", "breaker", "bulkhead"}
    assert labels["outcome"] <= {
        "recovered",
        "gave_up",
        "failure",
        "opened",
        "half_opened",
        "closed",
        "ok",
        "error",
        "attempt",
    }
    assert labels["reason"] <= {"open", "full", "queue_timeout", "503", ""}
    assert all(len(values) <= 15 for values in labels.values())  # le buckets: 14 + Inf
