"""Prometheus: a scripted herd scraped from a real CollectorRegistry shows exactly what the run did."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import resilient as rs
from resilient.metrics import Prometheus
from resilient.testing import FakeClock

from . import scenario

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of one scrape (the text format, parsed back), keyed by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def at(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


@pytest.fixture
def exporter() -> Iterator[tuple[Prometheus, CollectorRegistry]]:
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    try:
        yield prom, registry
    finally:
        prom.close()


async def test_a_scripted_herd_is_scraped_exactly(exporter: tuple[Prometheus, CollectorRegistry]) -> None:
    """Herd, retry storm, breaker and bulkhead: every counter and gauge equals what the run did."""
    prom, registry = exporter
    truth = await scenario.run(prom, lambda: scrape(registry))
    got = scrape(registry)
    ns = "resilient"

    # the herd: 10 callers, one origin call of 0.2 s, then 5 hits
    products = {"name": "products", "policy": "cache"}
    assert truth.origin_calls == 1
    assert at(got, f"{ns}_cache_origin_calls_total", **products) == truth.origin_calls
    assert at(got, f"{ns}_cache_misses_total", **products) == scenario.HERD
    assert at(got, f"{ns}_cache_coalesced_total", **products) == scenario.HERD - 1
    assert at(got, f"{ns}_cache_hits_total", **products) == scenario.HITS
    assert at(got, f"{ns}_cache_stale_served_total", **products) == 0
    origin = {**products, "outcome": "ok"}
    assert at(got, f"{ns}_origin_duration_seconds_count", **origin) == 1
    assert at(got, f"{ns}_origin_duration_seconds_sum", **origin) == pytest.approx(scenario.ORIGIN_SECONDS)
    assert at(got, f"{ns}_origin_duration_seconds_bucket", **origin, le="0.1") == 0
    assert at(got, f"{ns}_origin_duration_seconds_bucket", **origin, le="0.25") == 1
    assert at(got, f"{ns}_events_total", policy="cache", outcome="joined", reason="") == scenario.HERD - 1
    assert at(got, f"{ns}_events_total", policy="cache", outcome="miss", reason="") == 1

    # the retry storm: 10 calls, each retry counted, the budget stopping the rest
    storm = {"name": "storm", "policy": "retry"}
    retries = truth.storm_invocations - scenario.STORM
    assert retries == 2  # the budget's reserve (0.1/s over 10 s) plus 10 % of 10 calls
    assert at(got, f"{ns}_calls_total", **storm) == scenario.STORM
    assert at(got, f"{ns}_retries_total", **storm) == retries
    assert at(got, f"{ns}_outcomes_total", **storm, outcome="gave_up") == truth.storm_failures_seen
    assert at(got, f"{ns}_outcomes_total", **storm, outcome="recovered") == 0
    assert at(got, f"{ns}_retry_budget_exhausted_total", **storm) == scenario.STORM
    assert at(got, f"{ns}_events_total", policy="retry", outcome="attempt", reason="ConnectionError") == retries
    assert at(got, f"{ns}_events_total", policy="retry", outcome="gave_up", reason="budget") == scenario.STORM

    # the breaker: 3 failures open it, 2 calls rejected without running
    payments = {"name": "payments", "policy": "breaker"}
    assert truth.breaker_invocations == scenario.THRESHOLD
    assert at(got, f"{ns}_breaker_state", **payments) == 2  # open
    assert at(got, f"{ns}_breaker_open", **payments) == 1
    assert at(got, f"{ns}_breaker_transitions_total", **payments, outcome="opened") == 1
    assert at(got, f"{ns}_breaker_transitions_total", **payments, outcome="closed") == 0
    assert at(got, f"{ns}_outcomes_total", **payments, outcome="failure") == truth.breaker_invocations
    assert at(got, f"{ns}_rejections_total", **payments, reason="open") == truth.breaker_open_errors == 2
    assert at(got, f"{ns}_events_total", policy="breaker", outcome="opened", reason="TimeoutError") == 1

    # the bulkhead: 2 slots in use while 3 more calls are turned away
    db = {"name": "db", "policy": "bulkhead"}
    held = truth.during_hold
    assert at(held, f"{ns}_bulkhead_in_use", **db) == scenario.BULKHEAD
    assert at(held, f"{ns}_bulkhead_capacity", **db) == scenario.BULKHEAD
    assert at(got, f"{ns}_bulkhead_in_use", **db) == 0
    assert at(got, f"{ns}_rejections_total", **db, reason="full") == truth.bulkhead_full_errors == scenario.OVERFLOW
    assert at(got, f"{ns}_rejections_total", **db, reason="queue_timeout") == 0
    assert at(got, f"{ns}_events_total", policy="bulkhead", outcome="rejected", reason="full") == scenario.OVERFLOW


def test_a_pipeline_is_labelled_by_place_and_per_host_partitions_are_summed() -> None:
    """A pipeline's policies are labelled by their stats() names; PerKey partitions add up under one label."""
    registry = CollectorRegistry()
    prom = Prometheus(registry, namespace="app")
    try:
        parts = rs.PerKey(lambda: rs.Bulkhead(3), key="{tenant}")
        policy = prom.watch(rs.pipeline(rs.Retry(attempts=1), parts, rs.Bulkhead(5)), "api")

        @policy
        def call(tenant: str) -> str:
            return tenant

        for tenant in ("a", "b", "c"):
            call(tenant)
        got = scrape(registry)
        assert at(got, "app_calls_total", name="api", policy="retry") == 3
        assert at(got, "app_bulkhead_capacity", name="api", policy="per_key.bulkhead") == 9  # 3 partitions x 3
        assert at(got, "app_bulkhead_capacity", name="api", policy="bulkhead") == 5
    finally:
        prom.close()


def test_watch_refuses_bad_names_and_objects() -> None:
    """watch() needs a non-empty name, not already taken by another policy, and something with stats()."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    try:
        retry = rs.Retry()
        assert prom.watch(retry, "r") is retry
        assert prom.watch(retry, "r") is retry  # the same object again is fine
        with pytest.raises(ValueError, match="'r' already watches"):
            prom.watch(rs.Retry(), "r")
        with pytest.raises(TypeError, match="name"):
            prom.watch(rs.Retry(), "")
        with pytest.raises(TypeError, match="stats"):
            prom.watch(object(), "x")
        with pytest.raises(ValueError, match="namespace"):
            Prometheus(CollectorRegistry(), namespace="bad-name")
    finally:
        prom.close()


def test_close_removes_the_metrics_and_the_listener() -> None:
    """After close() the registry shows none of the exporter's metrics and events are no longer counted."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    prom.watch(rs.Retry(), "r")
    prom.close()
    assert not [key for key in scrape(registry) if key[0].startswith("resilient_")]


def test_watching_changes_nothing_a_call_runs() -> None:
    """watch() leaves every policy's state as it was; a cache only gains an observer of its origin calls."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    try:
        retry, breaker, bulkhead, cache = rs.Retry(), rs.CircuitBreaker(), rs.Bulkhead(2), rs.Cache(ttl=60)
        before = [dict(vars(p)) for p in (retry, breaker, bulkhead)]
        prom.watch(rs.pipeline(retry, breaker, bulkhead), "p")
        prom.watch(cache, "c")
        assert [dict(vars(p)) for p in (retry, breaker, bulkhead)] == before
        assert len(cache._origin_observers) == 1
        prom.watch(cache, "c")  # watched again: not timed twice
        assert len(cache._origin_observers) == 1
    finally:
        prom.close()


class _WriteBuffer:
    """Stands in for rs.WriteBuffer: the exporter reads a write buffer by its stats() keys alone."""

    def stats(self) -> dict[str, float]:
        return {"pending": 120, "written": 880, "batches": 9, "retried": 1, "dead_lettered": 0, "rejected": 2,
                "lag_seconds": 3.5}  # fmt: skip


def test_token_refreshes_and_write_buffer_backlog_are_exported() -> None:
    """A token provider's fetches and a write buffer's pending items and lag appear under their names."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)
    try:
        clock = FakeClock()
        tokens = prom.watch(rs.TokenProvider(lambda: rs.Token("t", clock.time() + 3600), clock=clock), "auth")
        assert tokens.get() == "t"
        prom.watch(_WriteBuffer(), "orders")
        got = scrape(registry)
        assert at(got, "resilient_token_refreshes_total", name="auth", policy="token_provider") == 1
        assert at(got, "resilient_buffer_pending", name="orders", policy="write_buffer") == 120
        assert at(got, "resilient_buffer_lag_seconds", name="orders", policy="write_buffer") == 3.5
        assert at(got, "resilient_buffer_written_total", name="orders", policy="write_buffer") == 880
        assert at(got, "resilient_buffer_rejected_total", name="orders", policy="write_buffer") == 2
    finally:
        prom.close()


def test_pool_timeouts_are_counted_by_the_transport_observer() -> None:
    """An httpx PoolTimeout on an attempt counts as origin_errors{reason="PoolTimeout"} (pool exhaustion)."""
    registry = CollectorRegistry()
    prom = Prometheus(registry)

    def exhausted(request: httpx.Request) -> httpx.Response:
        raise httpx.PoolTimeout("no connection free in the pool", request=request)

    try:
        retry = prom.watch(rs.Retry(attempts=2, backoff=rs.Constant(0), on=httpx.TransportError), "api")
        transport = httpx.MockTransport(exhausted)
        with (
            rs.http.client(retry, transport=transport, observe=prom.origin("api")) as client,
            pytest.raises(httpx.PoolTimeout),
        ):
            client.get("http://api.test/items/1")
        got = scrape(registry)
        assert at(got, "resilient_origin_errors_total", name="api", policy="http", reason="PoolTimeout") == 2
        assert at(got, "resilient_origin_duration_seconds_count", name="api", policy="http", outcome="error") == 2
        assert at(got, "resilient_events_total", policy="retry", outcome="attempt", reason="PoolTimeout") == 1
    finally:
        prom.close()
