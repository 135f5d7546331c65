"""OpenTelemetry: the same scripted herd read through the SDK's InMemoryMetricReader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import resilient as rs
from resilient.metrics import OpenTelemetry

from . import scenario

Points = dict[tuple[str, frozenset[tuple[str, Any]]], Any]


def collect(reader: InMemoryMetricReader) -> Points:
    """Every data point of one collection, keyed by instrument name and attributes."""
    data = reader.get_metrics_data()
    points: Points = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset(dict(point.attributes or {}).items()))
                    points[key] = point if isinstance(point, HistogramDataPoint) else getattr(point, "value", point)
    return points


def at(points: Points, metric: str, /, **labels: str) -> Any:
    return points[(metric, frozenset(labels.items()))]


@pytest.fixture
def otel() -> Iterator[tuple[OpenTelemetry, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exporter = OpenTelemetry(provider)
    try:
        yield exporter, reader
    finally:
        exporter.close()
        provider.shutdown()


async def test_a_scripted_herd_is_collected_exactly(otel: tuple[OpenTelemetry, InMemoryMetricReader]) -> None:
    """Herd, retry storm, breaker and bulkhead: every instrument equals what the run did."""
    exporter, reader = otel
    truth = await scenario.run(exporter, lambda: collect(reader))
    got = collect(reader)

    products = {"name": "products", "policy": "cache"}
    assert at(got, "resilient.cache.origin_calls", **products) == truth.origin_calls == 1
    assert at(got, "resilient.cache.misses", **products) == scenario.HERD
    assert at(got, "resilient.cache.coalesced", **products) == scenario.HERD - 1
    assert at(got, "resilient.cache.hits", **products) == scenario.HITS
    duration = at(got, "resilient.origin.duration", **products, outcome="ok")
    assert duration.count == 1 and duration.sum == pytest.approx(scenario.ORIGIN_SECONDS)
    assert at(got, "resilient.events", policy="cache", outcome="joined", reason="") == scenario.HERD - 1

    storm = {"name": "storm", "policy": "retry"}
    retries = truth.storm_invocations - scenario.STORM
    assert at(got, "resilient.calls", **storm) == scenario.STORM
    assert at(got, "resilient.retries", **storm) == retries == 2
    assert at(got, "resilient.outcomes", **storm, outcome="gave_up") == truth.storm_failures_seen
    assert at(got, "resilient.retry.budget_exhausted", **storm) == scenario.STORM
    assert at(got, "resilient.events", policy="retry", outcome="attempt", reason="ConnectionError") == retries

    payments = {"name": "payments", "policy": "breaker"}
    assert at(got, "resilient.breaker.state", **payments) == 2
    assert at(got, "resilient.breaker.transitions", **payments, outcome="opened") == 1
    assert at(got, "resilient.rejections", **payments, reason="open") == truth.breaker_open_errors == 2
    assert at(got, "resilient.outcomes", **payments, outcome="failure") == truth.breaker_invocations

    db = {"name": "db", "policy": "bulkhead"}
    assert at(truth.during_hold, "resilient.bulkhead.in_use", **db) == scenario.BULKHEAD
    assert at(got, "resilient.bulkhead.in_use", **db) == 0
    assert at(got, "resilient.rejections", **db, reason="full") == truth.bulkhead_full_errors == scenario.OVERFLOW


def test_an_origin_observer_counts_errors_by_type(otel: tuple[OpenTelemetry, InMemoryMetricReader]) -> None:
    """origin(name) records each attempt's duration by outcome and counts failures by exception type."""
    exporter, reader = otel
    observe = exporter.origin("api")
    observe(0.05, None)
    observe(1.5, TimeoutError("slow"))
    got = collect(reader)
    assert at(got, "resilient.origin.duration", name="api", policy="http", outcome="ok").count == 1
    assert at(got, "resilient.origin.duration", name="api", policy="http", outcome="error").sum == 1.5
    assert at(got, "resilient.origin.errors", name="api", policy="http", reason="TimeoutError") == 1
    with pytest.raises(TypeError, match="name"):
        exporter.origin("")
    assert exporter.watch(rs.Retry(), "r") is not None
