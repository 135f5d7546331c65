"""docs/events.md read as data: the one schema every emitted event must follow.

The table in docs/events.md is the single source. :func:`violations` says what
is wrong with one emitted event; :func:`emit_sites` walks the library's
``emit(...)`` calls statically. ``tests/conftest.py`` checks every event any
test makes, ``tests/core/test_events_schema.py`` checks the emit sites.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "events.md"
PACKAGE = ROOT / "resilient"

COMMON = frozenset({"event", "policy", "operation", "key"})
FAILURE = frozenset({"error", "error_message", "status"})
LEVELS = frozenset({"debug", "info", "warning"})
MESSAGE_LIMIT = 200

_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL_QUERY = re.compile(r"://[^\s'\"]*[?#]")
_URL_USERINFO = re.compile(r"://[^/\s'\"]*@")
_TICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Row:
    event: str
    level: str
    failure: bool
    fields: frozenset[str]

    @property
    def allowed(self) -> frozenset[str]:
        return COMMON | (FAILURE if self.failure else frozenset()) | self.fields


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse(text: str) -> tuple[dict[str, Row], frozenset[str]]:
    """The rows of the "Every event" table by name, and the policy kinds the page lists."""
    rows: dict[str, Row] = {}
    policies: frozenset[str] = frozenset()
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = _cells(line)
        if cells[0] == "`policy`" and len(cells) == 2:
            policies = frozenset(_TICKED.findall(cells[1]))
            continue
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        event, level, failure, fields, _when = cells
        name = event.strip("`")
        if name in rows:
            raise ValueError(f"docs/events.md lists {name!r} twice")
        if level not in LEVELS or failure not in ("yes", "no"):
            raise ValueError(f"docs/events.md row {name!r}: level {level!r}, failure {failure!r}")
        rows[name] = Row(name, level, failure == "yes", frozenset(_TICKED.findall(fields)))
    if not rows or not policies:
        raise ValueError("docs/events.md: no event table or no policy list found")
    return rows, policies


TABLE, POLICIES = parse(DOC.read_text(encoding="utf-8"))


def violations(event: dict[str, Any], table: dict[str, Row] | None = None) -> list[str]:
    """What is wrong with one emitted event, by the schema (empty when nothing is)."""
    table = TABLE if table is None else table
    name = event.get("event")
    row = table.get(name) if isinstance(name, str) else None
    if row is None:
        return [f"event {name!r} is not listed in docs/events.md"]
    found: list[str] = []
    for field in sorted(COMMON - event.keys()):
        found.append(f"{name}: lacks the common field {field!r}")
    for field in sorted(event.keys() - row.allowed):
        found.append(f"{name}: field {field!r} is not listed in docs/events.md")
    if row.failure:
        for field in ("error", "error_message"):
            if field not in event:
                found.append(f"{name}: a failure event lacks {field!r}")
        error = event.get("error")
        if error is not None and not (isinstance(error, str) and _TYPE_NAME.match(error)):
            found.append(f"{name}: error {error!r} is not an exception type name")
        message = event.get("error_message")
        if message is not None and not (isinstance(message, str) and len(message) <= MESSAGE_LIMIT):
            found.append(f"{name}: error_message is not a string of at most {MESSAGE_LIMIT} characters")
    if event.get("policy") not in POLICIES:
        found.append(f"{name}: policy {event.get('policy')!r} is not a listed policy kind")
    for field, value in event.items():
        if isinstance(value, str) and (_URL_QUERY.search(value) or _URL_USERINFO.search(value)):
            found.append(f"{name}: {field} shows a URL's query or credentials: {value!r}")
        if field == "operation" and isinstance(value, str) and "?" in value:
            found.append(f"{name}: operation holds a query string: {value!r}")
    return found


# -- the emit sites, statically ------------------------------------------------------


@dataclass(frozen=True)
class Site:
    where: str
    events: tuple[str, ...]  # the names it may emit; empty when not found statically
    fields: frozenset[str]  # the keyword fields written literally


def _names(node: ast.expr) -> tuple[str, ...]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, ast.IfExp):
        return _names(node.body) + _names(node.orelse)
    return ()


def emit_sites(source: str, filename: str) -> list[Site]:
    """Every ``emit(...)`` call in ``source``: the event names and the literal keyword fields."""
    sites = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called != "emit":
            continue
        fields = frozenset(k.arg for k in node.keywords if k.arg is not None and k.arg != "policy")
        sites.append(Site(f"{filename}:{node.lineno}", _names(node.args[0]), fields))
    return sites


def site_violations(site: Site, table: dict[str, Row] | None = None) -> list[str]:
    """What an emit site writes that docs/events.md does not list."""
    table = TABLE if table is None else table
    found = []
    for name in site.events:
        row = table.get(name)
        if row is None:
            found.append(f"{site.where}: emits {name!r}, not listed in docs/events.md")
            continue
        for field in sorted(site.fields - row.allowed):
            found.append(f"{site.where}: {name} writes {field!r}, not listed in docs/events.md")
    return found


def library_sites() -> list[Site]:
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        sites.extend(emit_sites(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))))
    return sites
