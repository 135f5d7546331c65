"""Quiet by default: events go to structlog only when the application configured it, else to
stdlib logging (a NullHandler on "resilient"). Each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORK = """
import resilient as rs
from resilient.testing import no_waiting
calls = []
def flaky():
    calls.append(1)
    if len(calls) < 3:
        raise ConnectionError("down")
    return "ok"
with no_waiting():
    rs.Retry(attempts=3).call(flaky)
"""


def run(setup: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", setup + WORK], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


def test_an_unconfigured_program_prints_nothing() -> None:
    """Retries with neither logging nor structlog configured write nothing to stdout or stderr."""
    done = run("")
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_stdlib_logging_at_debug_shows_every_event() -> None:
    """logging.basicConfig(level=DEBUG) shows each retry as a record of the "resilient" logger."""
    done = run(
        "import logging; logging.basicConfig(level=logging.DEBUG, format='%(name)s %(levelname)s %(message)s')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.startswith("resilient ")]
    assert sum("retry.attempt" in line for line in lines) == 2
    assert all("DEBUG" in line for line in lines if "retry.attempt" in line)


def test_stdlib_records_carry_the_event_and_its_fields() -> None:
    """A handler sees the event name and its fields on the record (resilient_event, resilient_fields)."""
    setup = (
        "import logging\n"
        "class H(logging.Handler):\n"
        "    def emit(self, record):\n"
        "        print(record.resilient_event, sorted(record.resilient_fields))\n"
        "logging.getLogger('resilient').addHandler(H()); logging.getLogger('resilient').setLevel(logging.DEBUG)\n"
    )
    done = run(setup)
    assert done.returncode == 0, done.stderr
    assert "retry.attempt" in done.stdout and "'operation'" in done.stdout


def test_a_configured_structlog_receives_the_events() -> None:
    """Once the application calls structlog.configure, events go to structlog and not to stdlib logging."""
    setup = (
        "import logging, structlog\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "structlog.configure(processors=[structlog.processors.KeyValueRenderer(key_order=['event'])],"
        " logger_factory=structlog.PrintLoggerFactory())\n"
    )
    done = run(setup)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("event='retry.attempt'") == 2
    assert "retry.attempt" not in done.stderr
