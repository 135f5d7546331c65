"""examples/cache_stampede.py runs and shows the stampede absorbed."""

from __future__ import annotations

import asyncio
import runpy
from pathlib import Path

import structlog

from resilient.testing import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cache_stampede.py"


def test_cache_stampede_example_absorbs_the_herd() -> None:
    """The example's 1,000 cold callers cost one origin call through the cache (1,000 without)."""
    saved = structlog.get_config()
    try:
        namespace = runpy.run_path(str(EXAMPLE), run_name="example")
        result = asyncio.run(namespace["main"](FakeClock()))
    finally:
        structlog.configure(**saved)
    assert result["naive_calls"] == 1000
    assert result["cached_calls"] == 2  # the cold load and one refresh
    assert result["coalesced"] == 999
    assert result["stale_served"] == 1000
    assert result["hits"] == 1000  # the third round: the refreshed value
