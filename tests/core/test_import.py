"""`import resilient` stays light: no redis, matplotlib or lab until they are used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_resilient_does_not_import_redis_matplotlib_pybreaker_or_the_lab() -> None:
    """A fresh interpreter importing resilient (and making a memory-backed cache) loads none of them."""
    code = (
        "import sys, resilient as rs\n"
        "rs.Cache(ttl=1); rs.Retry(); rs.Timeout(1)\n"
        "print(sorted(m for m in ('redis', 'matplotlib', 'pybreaker', 'resilient.lab') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
