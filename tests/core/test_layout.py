"""The layout shows the architecture: rooms at the root, no import circles, no reaching into privates."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "resilient"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the package that ``name`` imports, anywhere in the file (TYPE_CHECKING and
    function-level imports included); ``from pkg import mod`` counts as importing ``pkg.mod``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a list of modules, the first repeated last), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt, black) == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if colour.get(nxt) == white:
                circle = visit(nxt)
                if circle:
                    return circle
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white:
            circle = visit(node)
            if circle:
                return circle
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_the_root_holds_only_the_face_test_support_and_packages() -> None:
    """resilient/ holds __init__.py, py.typed, testing.py and packages, nothing else."""
    loose = sorted(
        p.name
        for p in ROOT.iterdir()
        if p.is_file() and p.name not in {"__init__.py", "py.typed", "testing.py"} and not p.name.endswith(".pyc")
    )
    assert loose == []
    for folder in ROOT.iterdir():
        if folder.is_dir() and folder.name != "__pycache__":
            assert (folder / "__init__.py").exists(), f"{folder.name}/ is not a package"


def test_resilient_has_no_import_circle() -> None:
    """No module of resilient/ imports, directly or through others, a module that imports it."""
    assert find_circle(import_graph(ROOT)) is None


def test_the_circle_finder_sees_a_circle_through_a_type_checking_import(tmp_path: Path) -> None:
    """A deliberately added circle (one side behind TYPE_CHECKING) is found."""
    pkg = tmp_path / "resilient"
    (pkg / "room").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "room" / "__init__.py").write_text("")
    (pkg / "room" / "a.py").write_text("from .b import thing\n")
    (pkg / "room" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..room.a import other\nthing = 1\n"
    )
    assert find_circle(import_graph(pkg)) == ["resilient.room.a", "resilient.room.b", "resilient.room.a"]


# Privates of asyncio's Handle that the lab's virtual event loop drives (not resilient's own names).
THIRD_PARTY = {"resilient.lab.vloop": {"_run", "_cancelled"}}


def _private_names_defined(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, attributes it assigns, slots, arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_uses(root: Path) -> list[str]:
    """Uses of another resilient module's ``_private`` names: ``from x import _name`` of a module of the
    package, or ``anything._name`` where ``_name`` is defined by another module of the package and not
    by this one (third-party privates are not this test's business)."""
    mods = modules(root)
    trees = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in mods.items()}
    defined = {name: _private_names_defined(tree) for name, tree in trees.items()}
    everywhere = set().union(*defined.values())
    found = []
    for name, tree in trees.items():
        path = mods[name]
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and target in mods and f"{target}.{alias.name}" not in mods:
                        found.append(f"{name}:{node.lineno}: from {target} import {alias.name}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in everywhere
                and node.attr not in defined[name] | THIRD_PARTY.get(name, set())
            ):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    """Drivers are handed what they need; nobody imports or reaches into another module's ``_private`` names."""
    assert private_uses(ROOT) == []


def test_the_private_use_finder_sees_a_driver_reaching_into_its_policy(tmp_path: Path) -> None:
    """A driver reading ``cache._guard`` of the policy that calls it is found."""
    pkg = tmp_path / "resilient"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "policy.py").write_text("class Cache:\n    def __init__(self):\n        self._guard = 1\n")
    (pkg / "driver.py").write_text("def load(cache):\n    return cache._guard\n")
    assert private_uses(pkg) == ["resilient.driver:2: cache._guard"]


@pytest.mark.parametrize("module", ["resilient._machines._validate"])
def test_a_private_module_of_the_pure_floor_may_be_imported(module: str) -> None:
    """``_machines/_validate.py`` is a private module, not a private name: importing from it is allowed."""
    assert module in modules(ROOT)


def test_the_declared_license_is_shipped() -> None:
    """pyproject declares MIT and names the LICENSE file, which exists (hatchling puts it in wheel and sdist)."""
    top = ROOT.parent
    pyproject = (top / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject
    assert 'license-files = ["LICENSE"]' in pyproject
    assert (top / "LICENSE").read_text().startswith("MIT License")
