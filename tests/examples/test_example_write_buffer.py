"""examples/write_buffer.py runs: the spike is written whole in process, and on Redis Streams when there is one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "write_buffer.py"


def run_example(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1])}
    return subprocess.run([sys.executable, str(EXAMPLE), url], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.redis
@pytest.mark.slow
def test_write_buffer_example_writes_every_item_in_process_and_on_redis(redis_url: str) -> None:
    """Both parts write all 5,000 items and lose none."""
    done = run_example(redis_url)
    assert done.returncode == 0, done.stderr
    assert "in process: written 5,000 in" in done.stdout and "lost 0," in done.stdout
    assert "redis: written 5,000, lost 0, left in the stream 0" in done.stdout


@pytest.mark.slow
def test_write_buffer_example_skips_redis_cleanly_without_it() -> None:
    """With no Redis at the URL the in-process part still runs and the Redis part says it skipped."""
    done = run_example(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert "in process: written 5,000 in" in done.stdout
    assert "redis: skipped, no Redis answers at" in done.stdout
