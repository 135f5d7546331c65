"""The batch-loader and cron-job examples run and print what they promise."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from resilient.testing import no_waiting

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _keep_structlog_config() -> Iterator[None]:
    """The examples quiet structlog; the tests after them must find it as it was."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_batch_loader_example(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/batch_loader.py loads 1,000 products in 10 queries; a missing id fails alone."""
    runpy.run_path(str(EXAMPLES / "batch_loader.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "loaded 1000 products in 10 queries of 100 ids" in out
    assert "50 loads of one id: 1 value, 1 more query" in out
    assert "a missing id fails alone: KeyError(5000)" in out


def test_cron_job_example(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/cron_job.py: 20 servers fire, the job runs once, 19 get None."""
    monkeypatch.setattr(sys, "argv", ["cron_job.py"])
    with no_waiting():  # Spread's start delays, skipped
        runpy.run_path(str(EXAMPLES / "cron_job.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "20 servers fired; the job ran 1 time(s)" in out
    assert "19 servers got None" in out
