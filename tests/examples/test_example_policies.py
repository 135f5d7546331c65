"""The policies example runs and shows the flaky host's breaker open, the healthy one closed."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breaker_per_host.py"


def test_breaker_per_host_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The example opens the flaky host's breaker, falls back, and leaves the healthy host's closed."""
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "fallback (CircuitOpenError)" in out
    assert "200 from healthy.internal/item/1" in out
    assert "flaky.internal     breaker: open" in out
    assert "healthy.internal   breaker: closed" in out
