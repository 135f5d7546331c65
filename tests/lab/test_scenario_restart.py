"""The ``restart`` herd: 50 instances restart with empty caches (simulated time; asyncio sleeps run in virtual time)."""

from __future__ import annotations

from resilient.lab.metrics import ScenarioResult
from resilient.lab.scenario_restart import run_restart
from resilient.lab.vloop import quiet_logs


def small(**options: object) -> ScenarioResult:
    with quiet_logs():
        return run_restart(instances=20, rate=1000, keys=50, duration=1.5, **options)  # type: ignore[arg-type]


def test_restart_leases_load_each_key_once_for_the_fleet_and_naive_once_per_instance_or_more() -> None:
    """With leases the fleet makes one origin call per key; naive instances each load every key they see."""
    result = small()
    naive, leases, near = (result.strategy(n) for n in ("naive", "redis+leases", "redis+near"))
    assert leases.origin_calls <= 50
    assert near.origin_calls == leases.origin_calls
    assert naive.origin_calls > 5 * leases.origin_calls
    assert leases.errors == near.errors == 0


def test_restart_near_cache_cuts_the_redis_commands_and_keeps_the_latency() -> None:
    """A near cache serves repeat reads in process: far fewer Redis commands, no slower."""
    result = small()
    leases, near = result.strategy("redis+leases"), result.strategy("redis+near")
    assert near.extra["redis_cmds"] < leases.extra["redis_cmds"] / 2
    assert near.p99_ms <= leases.p99_ms
    assert near.p50_ms == 0.0  # most requests are near hits


def test_restart_is_deterministic_for_a_seed() -> None:
    """Same seed, same figures."""
    first = [s.as_dict() for s in small(seed=3).strategies]
    second = [s.as_dict() for s in small(seed=3).strategies]
    assert first == second


def test_restart_spread_warm_up_lowers_redis_busiest_second_without_more_origin_calls() -> None:
    """rs.Spread on the warm-up spreads the fleet's Redis commands; the origin still sees one call per key."""
    result = small()
    near, spread = result.strategy("redis+near"), result.strategy("redis+near+spread")
    assert spread.origin_calls == near.origin_calls
    assert spread.extra["redis_peak_rps"] < near.extra["redis_peak_rps"]
    assert spread.errors == 0
