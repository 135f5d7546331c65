"""The herd lab example runs and prints what it promises."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_herd_lab_example(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/herd_lab.py prints the expiry table and a virtual-time retry run."""
    runpy.run_path(str(EXAMPLES / "herd_lab.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "== expiry:" in out
    assert "naive/combined" in out
    assert "200 clients through rs.Retry:" in out
    assert "of virtual time" in out
