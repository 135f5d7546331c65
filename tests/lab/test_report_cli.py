"""The table, --json and --plot carry the same figures; the command runs end to end."""

from __future__ import annotations

import json
import sys

import pytest

from resilient.lab import cli
from resilient.lab.metrics import FIELDS, ScenarioResult, StrategyResult
from resilient.lab.report import PlotUnavailable, format_scenario, plot, to_json
from resilient.lab.scenario_retry_storm import run_retry_storm
from resilient.lab.scenario_token import run_token
from resilient.lab.vloop import quiet_logs


def _scenario() -> ScenarioResult:
    rows = [
        StrategyResult("naive", 1005, 1005, 1005.0, 0.0, 300.0, 0, 0, series=[(0.0, 0.0), (0.1, 5000.0)]),
        StrategyResult("combined", 1, 1, 1.0, 0.0, 0.0, 0, 42, extra={"finish_ms": 12.5}, series=[(0.0, 10.0)]),
    ]
    return ScenarioResult("expiry", "expiry: test", rows, summary=["ratio 1,005x"])


def test_json_has_the_design_shape() -> None:
    """--json is {"scenarios": [{"name", "strategies": [{"name", <the seven figures>}]}]}."""
    data = json.loads(to_json([_scenario()]))
    (scenario,) = data["scenarios"]
    assert scenario["name"] == "expiry"
    for row in scenario["strategies"]:
        assert set(FIELDS) <= set(row)
        assert isinstance(row["name"], str)


def test_table_shows_the_same_figures_as_the_json() -> None:
    """Every figure of every JSON row appears, formatted, on that strategy's table line."""
    result = _scenario()
    table = format_scenario(result).splitlines()
    for row in json.loads(to_json([result]))["scenarios"][0]["strategies"]:
        (line,) = [text for text in table if text.split()[0] == row["name"]]
        cells = line.split()[1:]
        figures = [row[k] for k in row if k != "name"]
        assert [float(c.replace(",", "")) for c in cells] == [float(f) for f in figures]
    assert table[-1].strip() == "ratio 1,005x"


def test_plot_writes_a_png(tmp_path: pytest.TempPathFactory) -> None:
    """--plot writes a PNG file."""
    path = tmp_path / "herd.png"  # type: ignore[operator]
    plot([_scenario()], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib, --plot fails with a message naming the plot extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailable, match=r"resilient\[plot\]"):
        plot([_scenario()], "unused.png")


def test_cli_json_matches_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient herd --scenario token --json` prints valid JSON with the figures the table shows."""
    assert cli.main(["herd", "--scenario", "token", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["scenarios"]] == ["token"]
    assert cli.main(["herd", "--scenario", "token"]) == 0
    table = capsys.readouterr().out
    for row in data["scenarios"][0]["strategies"]:
        assert any(line.split()[0] == row["name"] for line in table.splitlines() if line.strip())


def test_cli_plot_writes_a_png(tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient herd --scenario token --plot FILE.png` writes the PNG and says so."""
    path = tmp_path / "token.png"  # type: ignore[operator]
    assert cli.main(["herd", "--scenario", "token", "--plot", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert f"plot written to {path}" in capsys.readouterr().out


def test_same_seed_same_json_other_seed_other_figures() -> None:
    """The lab is deterministic per --seed: a rerun gives identical JSON; another seed changes the jitter."""

    def run(seed: int) -> str:
        with quiet_logs():
            return to_json(
                [
                    run_token(services=5, lifetime=2.0, seed=seed),
                    run_retry_storm(clients=100, outage=(1.0, 3.0), after=2.0, strategies=("full-jitter",), seed=seed),
                ]
            )

    first = run(4)
    assert run(4) == first
    assert run(5) != first


def test_cli_rejects_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --scenario is a usage error naming the choices."""
    with pytest.raises(SystemExit) as info:
        cli.main(["herd", "--scenario", "nope"])
    assert info.value.code == 2
    assert "expiry" in capsys.readouterr().err


def test_cli_real_mode_rejects_a_bad_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    """`--real --processes 0` is a usage error naming the option, not a traceback."""
    assert cli.main(["herd", "--real", "--processes", "0"]) == 2
    assert "processes must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_default_herd_runs_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient herd` with no options prints all four tables with their headline ratios."""
    assert cli.main(["herd"]) == 0
    out = capsys.readouterr().out
    for name in cli.SCENARIOS:
        assert f"== {name}:" in out
    assert "peak load at recovery" in out
    assert "AWS's finding" in out
    assert "-> matches" in out
    assert "done in" in out


@pytest.mark.slow
def test_cli_real_mode_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient herd --real` with one process runs both strategies over loopback HTTP and prints the table."""
    assert cli.main(["herd", "--real", "--processes", "1", "--duration", "1.5", "--rate", "100"]) == 0
    out = capsys.readouterr().out
    assert "== real:" in out
    assert "naive" in out
    assert "combined" in out
    assert "done in" in out
