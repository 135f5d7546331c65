"""examples/token_refresh.py runs as a script and shows one fetch per cold start and per rotation."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_token_refresh_example_runs_and_fetches_twice() -> None:
    """The example's 40 cold requests and 40 refused requests cost two token fetches, and it never prints a token."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "token_refresh.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "cold start: 40 requests -> 40 ok, token fetches so far: 1" in out
    assert "after rotation: 40 requests -> 40 ok, 40 refused once and retried, token fetches in total: 2" in out
    assert "secret-" not in out + done.stderr
