"""The machines stay pure: none imports time, threading, asyncio, httpx or redis."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MACHINES = Path(__file__).resolve().parents[2] / "resilient" / "_machines"
FORBIDDEN = {"time", "threading", "asyncio", "httpx", "redis", "pybreaker"}


@pytest.mark.parametrize("path", sorted(MACHINES.glob("*.py")), ids=lambda p: p.name)
def test_machine_imports_nothing_that_waits_or_does_io(path: Path) -> None:
    """A machine module imports no clock, thread, loop or I/O library."""
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
