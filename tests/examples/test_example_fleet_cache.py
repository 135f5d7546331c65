"""examples/fleet_cache.py runs: one origin call for the fleet, or a clean skip without Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet_cache.py"


def run_example(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1])}
    return subprocess.run([sys.executable, str(EXAMPLE), url], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.redis
def test_fleet_example_makes_one_origin_call(redis_url: str) -> None:
    """Against a real Redis the example's fleet makes one origin call and every caller shares it."""
    done = run_example(redis_url)
    assert done.returncode == 0, done.stderr
    assert "origin calls: 1\n" in done.stdout
    assert "every caller got the report built by process" in done.stdout


def test_fleet_example_skips_cleanly_without_redis() -> None:
    """With no Redis at the URL the example says it skipped and exits 0."""
    done = run_example(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("skipped: no Redis answers at")
