"""Printing the lab's results: a table per scenario, ``--json``, and ``--plot FILE.png``.

The table and the JSON are both built from :meth:`StrategyResult.as_dict`, so
they carry the same figures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .metrics import FIELDS, ScenarioResult

__all__ = ["PlotUnavailable", "format_scenario", "plot", "to_json"]

_HEADERS = {
    "origin_calls": "origin calls",
    "peak_origin_concurrency": "peak conc.",
    "peak_origin_rps": "peak calls/s",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "errors": "errors",
    "stale_served": "stale",
    "finish_ms": "finish ms",
    "recovery_peak_rps": "recovery peak/s",
    "refreshes": "refreshes",
    "calls_per_refresh": "calls/refresh",
    "clients": "N",
    "redis_cmds": "redis cmds",
    "redis_peak_rps": "redis peak/s",
    "drain_s": "drain s",
    "dead_lettered": "dead-lettered",
}


class PlotUnavailable(RuntimeError):
    """``--plot`` needs matplotlib (the ``plot`` extra)."""


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    return str(value)


def format_scenario(result: ScenarioResult) -> str:
    """The scenario's title, one aligned row per strategy, then its summary lines."""
    rows = [s.as_dict() for s in result.strategies]
    extras: list[str] = []
    for row in rows:
        extras.extend(k for k in row if k not in FIELDS and k != "name" and k not in extras)
    columns = ["name", *FIELDS, *extras]
    header = ["strategy", *(_HEADERS.get(c, c) for c in columns[1:])]
    table = [header, *([_cell(row.get(c, "")) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    out = [f"== {result.title}", line(header), line(["-" * w for w in widths])]
    out.extend(line(cells) for cells in table[1:])
    out.extend(f"   {text}" for text in result.summary)
    return "\n".join(out)


def to_json(results: Sequence[ScenarioResult]) -> str:
    """``{"scenarios": [{"name": ..., "strategies": [{"name": ..., "origin_calls": ...}]}]}``."""
    return json.dumps({"scenarios": [r.as_dict() for r in results]}, indent=2, allow_nan=False)


def plot(results: Sequence[ScenarioResult], path: str) -> None:
    """Draw each scenario's lines (origin load over time, one line per strategy) into a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable('--plot needs matplotlib: pip install "resilient[plot]"') from exc
    drawn = [r for r in results if r.lines()]
    if not drawn:
        raise ValueError("nothing to plot: no scenario produced a series")
    fig, axes = plt.subplots(len(drawn), 1, figsize=(10, 3.6 * len(drawn)), squeeze=False)
    for ax, result in zip(axes[:, 0], drawn, strict=True):
        for name, series in result.lines().items():
            xs = [x for x, _ in series]
            ys = [y for _, y in series]
            ax.plot(xs, ys, label=name, linewidth=1.2, marker="o" if len(xs) < 30 else None)
        ax.set_title(result.title, fontsize=9)
        ax.set_xlabel(result.plot_x)
        ax.set_ylabel(result.plot_y)
        if result.plot_log:
            ax.set_yscale("symlog")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
