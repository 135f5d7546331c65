"""The collapse, cron and partition herds show what they are there to show; plot and table agree."""

from __future__ import annotations

import json
import math

import pytest

from resilient.lab import cli
from resilient.lab.metrics import Recorder
from resilient.lab.scenario_collapse import run_collapse
from resilient.lab.scenario_cron import run_cron
from resilient.lab.scenario_partition import CAPACITY, run_partition
from resilient.lab.vloop import quiet_logs


@pytest.fixture(autouse=True)
def _quiet() -> object:
    with quiet_logs():
        yield


@pytest.mark.parametrize("max_size", [100, 64])
def test_collapse_makes_ceil_batch_calls(max_size: int) -> None:
    """1,000 ids in 10 ms: naive makes 1,000 origin calls, rs.Batch ceil(1000 / max_size)."""
    result = run_collapse(max_size=max_size)
    assert result.strategy("naive").origin_calls == 1000
    assert result.strategy("batch").origin_calls == math.ceil(1000 / max_size)
    assert result.strategy("batch").errors == 0


def test_cron_naive_fires_together_once_fires_once_per_hour() -> None:
    """100 servers: naive makes 100 calls in one second, Spread a few per second, Spread+OncePer 1 per hour."""
    result = run_cron(hours=2)
    naive, spread, once = (result.strategy(n) for n in ("naive", "spread", "spread+once"))
    assert naive.peak_origin_rps == 100
    assert naive.extra["max calls/hour"] == 100
    assert spread.origin_calls == 200 and spread.peak_origin_rps <= 10
    assert once.extra["max calls/hour"] == 1 and once.origin_calls == 2
    assert once.errors == 0


def test_partition_reports_the_peak_at_heal_beside_the_capacity() -> None:
    """Releasing the queue at once overloads the service naive; a rate limit keeps it under its capacity."""
    result = run_partition(partition=(2.0, 12.0), after=5.0)
    rows = {r.name: r for r in result.strategies}
    assert set(rows) == {"naive", "rate-limit", "load-shed", "throttle+budget"}
    for row in rows.values():
        assert row.extra["capacity/s"] == CAPACITY
    assert rows["naive"].extra["heal peak/s"] > 4 * CAPACITY
    assert rows["rate-limit"].extra["heal peak/s"] <= CAPACITY
    assert rows["load-shed"].extra["heal peak/s"] <= CAPACITY
    assert any(line.startswith("peak load at heal") for line in result.summary)


def test_series_and_peak_are_the_same_measure() -> None:
    """The plot's series is calls in the trailing one-second window: its maximum is peak_origin_rps."""
    t = [0.0]
    recorder = Recorder(lambda: t[0], bucket=0.1)
    for when, calls in ((0.05, 400), (0.15, 300), (1.05, 200), (2.5, 50)):
        t[0] = when
        for _ in range(calls):
            recorder.origin_started()
            recorder.origin_finished()
    series = recorder.series(3.0)
    assert max(y for _, y in series) == recorder.peak_rps() == 700
    assert dict(series)[1.1] == 500  # (0.1, 1.1]: the 300 at 0.15 and the 200 at 1.05


def test_cli_lists_and_runs_the_new_herds(capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient herd --scenario collapse --json` prints the scenario with its rows."""
    assert {"collapse", "cron", "partition"} <= set(cli.SCENARIOS)
    assert cli.main(["herd", "--scenario", "collapse", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (scenario,) = data["scenarios"]
    assert scenario["name"] == "collapse"
    assert [r["origin_calls"] for r in scenario["strategies"]] == [1000, 10]
