"""The machines stay pure: no module under resilient/_machines imports a way to wait or do I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import resilient._machines

FORBIDDEN = {"time", "threading", "asyncio", "httpx", "redis", "socket", "concurrent", "subprocess", "multiprocessing"}
MACHINES = sorted(Path(resilient._machines.__file__).parent.glob("*.py"))


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_machines_exist() -> None:
    """The purity check has machines to look at."""
    assert len(MACHINES) >= 4


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_machine_imports_nothing_that_waits(path: Path) -> None:
    """A machine imports no time, threading, asyncio, httpx or redis module."""
    assert imported_roots(path) & FORBIDDEN == set()


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The import scan really sees `import time` and `from asyncio import sleep`."""
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom asyncio import sleep\nimport os.path\n")
    assert imported_roots(bad) & FORBIDDEN == {"time", "asyncio"}
