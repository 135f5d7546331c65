"""The `resilient` command a newcomer meets: --version, defaults in help, usage errors, a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import resilient
from resilient.lab import cli

from ..conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient --version` prints the package version."""
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"resilient {resilient.__version__}"


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """`resilient herd --help` states the default of seed, processes, duration and rate."""
    with pytest.raises(SystemExit):
        cli.main(["herd", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("default: 1)", "default: 6.0", "default: 400.0", "default: all"):
        assert text in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["herd", "--redis", "redis://127.0.0.1:6379/0"], "--redis needs --real"),
        (["herd", "--processes", "2"], "--processes needs --real"),
        (["herd", "--real", "--scenario", "token"], "--scenario token is simulated"),
    ],
)
def test_options_that_do_not_combine_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Options that would be silently ignored exit 2 with the usage line and what is wrong."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


def test_real_mode_with_a_dead_redis_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """`--real --redis URL` where nothing answers says so before starting any worker."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert cli.main(["herd", "--real", "--redis", url, "--duration", "1"]) == 2
    captured = capsys.readouterr()
    assert f"no Redis answers at {url}" in captured.err
    assert captured.out == ""


def test_real_mode_without_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis-py, `--real --redis` says to install resilient[redis]."""
    monkeypatch.setitem(sys.modules, "redis", None)
    assert "pip install 'resilient[redis]'" in (cli._check_real("redis://127.0.0.1:6379/0") or "")


def test_done_line_says_it_is_wall_time_of_a_simulated_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The closing line reads as wall time spent on a simulated run."""
    assert cli.main(["herd", "--scenario", "expiry"]) == 0
    assert "s of wall time (a simulated run, --seed 1)" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly() -> None:
    """`resilient herd | head -1`: the command exits without a BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "resilient.lab.cli", "herd", "--scenario", "expiry", "--scenario", "expiry"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as head does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    assert "BrokenPipeError" not in err and "Traceback" not in err
