"""Each scenario, at small scale, shows what it is there to show."""

from __future__ import annotations

import pytest

from resilient.lab.scenario_backoff import PUBLISHED, run_backoff
from resilient.lab.scenario_expiry import run_expiry
from resilient.lab.scenario_retry_storm import run_retry_storm
from resilient.lab.scenario_token import run_token
from resilient.lab.vloop import quiet_logs


@pytest.fixture(autouse=True)
def _quiet() -> object:
    with quiet_logs():
        yield


def test_backoff_ranks_no_jitter_worst_and_full_jitter_least_work() -> None:
    """With 40 racing clients, no jitter does the most writes and full jitter the fewest, as AWS found."""
    result = run_backoff(clients=(40,), runs=2, seed=3)
    work = {row.name.split()[0]: row.origin_calls for row in result.strategies}
    assert min(work, key=lambda name: work[name]) == "full-jitter"
    assert max(work, key=lambda name: work[name]) == "no-jitter"
    assert work["no-jitter"] > 1.3 * work["full-jitter"]
    assert any(line.endswith("-> matches") for line in result.summary)


def test_backoff_work_and_finish_times_match_the_published_simulator() -> None:
    """At N=10 (40 runs) work and the last client's finish time are within 15 % of AWS's published means."""
    result = run_backoff(clients=(10,), runs=40, seed=1)
    for row in result.strategies:
        work, finish_ms = PUBLISHED[10][row.name.split()[0]]
        assert row.origin_calls == pytest.approx(work, rel=0.15), row.name
        assert row.extra["finish_ms"] == pytest.approx(finish_ms, rel=0.15), row.name


def test_backoff_every_client_succeeds_once() -> None:
    """Each run ends with exactly N successful writes, so work is at least N."""
    result = run_backoff(clients=(5,), runs=1)
    for row in result.strategies:
        assert row.origin_calls >= 5
        assert row.extra["finish_ms"] > 0


def test_backoff_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same table; another seed gives another."""
    first = [r.as_dict() for r in run_backoff(clients=(10,), runs=1, seed=5).strategies]
    again = [r.as_dict() for r in run_backoff(clients=(10,), runs=1, seed=5).strategies]
    other = [r.as_dict() for r in run_backoff(clients=(10,), runs=1, seed=6).strategies]
    assert first == again
    assert first != other


def test_retry_storm_budget_cuts_the_load_and_the_recovery_peak() -> None:
    """A retry budget keeps the calls near the clients' own rate during the outage and at recovery."""
    result = run_retry_storm(
        clients=200, period=10, outage=(1.0, 11.0), after=4.0, strategies=("no-jitter", "full-jitter+budget")
    )
    storm, budgeted = result.strategy("no-jitter"), result.strategy("full-jitter+budget")
    assert storm.origin_calls > 2 * budgeted.origin_calls
    assert storm.extra["recovery_peak_rps"] > budgeted.extra["recovery_peak_rps"]
    assert any(line.startswith("peak load at recovery") and "x less" in line for line in result.summary)


def test_expiry_naive_stampedes_the_origin() -> None:
    """Naive cache-aside sends every request of the origin's 200 ms to the origin when the key expires."""
    result = run_expiry(rate=1000, ttl=1.0, instances=4, strategies=("naive",))
    naive = result.strategy("naive")
    assert 190 <= naive.origin_calls <= 220  # 1,000/s x 0.2 s
    assert naive.peak_origin_concurrency == naive.origin_calls
    assert naive.errors == 0


def test_expiry_combined_makes_one_origin_call_per_refresh() -> None:
    """The combined strategy refreshes the hot key with exactly one origin call, no errors, p99 of a hit."""
    result = run_expiry(rate=1000, ttl=1.0, instances=4, strategies=("naive", "combined"))
    combined = result.strategy("combined")
    assert combined.extra["refreshes"] >= 1
    assert combined.extra["calls_per_refresh"] == 1.0
    assert combined.peak_origin_concurrency == 1
    assert combined.errors == 0
    assert combined.p99_ms < 5
    assert any(line.startswith("origin calls naive/combined:") for line in result.summary)
    assert result.strategy("naive").extra["calls_per_refresh"] > 100


def test_expiry_coalescing_in_process_leaves_one_call_per_instance() -> None:
    """Coalesce merges each instance's misses, so a refresh costs one origin call per instance."""
    result = run_expiry(rate=1000, ttl=1.0, instances=4, strategies=("coalesce",))
    assert result.strategy("coalesce").extra["calls_per_refresh"] == 4.0


def test_expiry_lock_and_stale_serves_the_old_value_during_the_single_refresh() -> None:
    """With a lease and stale serving, one call refreshes while everyone else gets the stale value at once."""
    result = run_expiry(rate=1000, ttl=1.0, instances=4, strategies=("lock-stale",))
    row = result.strategy("lock-stale")
    assert row.extra["calls_per_refresh"] == 1.0
    assert row.stale_served > 100
    assert row.p99_ms == 0.0


def test_token_naive_fleet_floods_the_auth_server_at_expiry() -> None:
    """Without a provider, every request that finds the shared token expired fetches a new one."""
    result = run_token(services=10, rate=20, lifetime=2.0, strategies=("naive",))
    assert result.strategy("naive").origin_calls > 10


def test_token_provider_with_a_shared_store_refreshes_once_for_the_fleet() -> None:
    """TokenProvider sharing one store makes one auth call per expiry for all the services."""
    result = run_token(services=10, rate=20, lifetime=2.0, strategies=("naive", "provider+store"))
    assert result.strategy("provider+store").origin_calls == 1
    assert result.strategy("provider+store").errors == 0
