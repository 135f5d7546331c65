"""The write-spike scenario: naive direct writes lose most of a spike; the write buffer loses none at the DB's rate."""

from __future__ import annotations

from resilient.lab.scenario_write_spike import run_write_spike
from resilient.lab.vloop import quiet_logs


def test_the_buffer_feeds_the_database_its_rate_and_loses_nothing_where_naive_loses_most() -> None:
    """A scaled spike (5,000 writes in 1 s, a database of 50/s): the buffer holds the rate, naive drowns it."""
    with quiet_logs():
        result = run_write_spike(writes=5_000, capacity=50.0, batch_size=10)
    naive, buffered = result.strategy("naive"), result.strategy("write-buffer")
    assert buffered.extra["lost"] == 0 and buffered.errors == 0 and buffered.extra["duplicates"] == 0
    assert buffered.peak_origin_rps <= 50 + 10  # rate*1 s + one batch
    assert 95 <= buffered.extra["drain_s"] <= 105  # 5,000 rows at 50/s
    assert naive.peak_origin_rps >= 5_000
    assert naive.extra["lost"] > 2_500 and naive.errors > 2_500
    assert {s.name for s in result.strategies if s.series} == {"naive", "write-buffer"}  # both lines plotted
    assert any("busiest one-second window" in line for line in result.summary)
