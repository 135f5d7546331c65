"""Every example, run as a script with logging and structlog unconfigured, prints only its own output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")
# What a leaked event looks like: structlog's default console line, or an event name with fields.
LEAK = re.compile(r"\[(debug|info|warning|error)\s*\]|\b[a-z_]+\.[a-z_]+\b.*\b(operation|key)=")


@pytest.mark.redis
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_prints_only_what_it_prints(example: Path, redis_url: str) -> None:
    """stderr stays empty and no stdout line is a library event."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    env["PYTHONPATH"] = str(ROOT)
    args = [redis_url] if example.name == "fleet_cache.py" else []
    done = subprocess.run(
        [sys.executable, str(example), *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip(), "the example printed nothing at all"
    leaked = [line for line in done.stdout.splitlines() if LEAK.search(line)]
    assert leaked == []
