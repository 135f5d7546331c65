"""The retry example runs and prints what it promises."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_retry_function_example(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/retry_function.py recovers both calls after two failures each."""
    runpy.run_path(str(EXAMPLES / "retry_function.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "sync price:  10.99" in out
    assert "async price: 20.99" in out
    assert "'retries': 4" in out
    assert "'recovered': 2" in out
