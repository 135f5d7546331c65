"""policy.call / acall are typed with ParamSpec: mypy checks the arguments against the function."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = textwrap.dedent(
    """
    import resilient as rs

    def price(item_id: int) -> float:
        return 1.0

    async def aprice(item_id: int) -> float:
        return 1.0

    async def main() -> None:
        retry = rs.Retry()
        ok: float = retry.call(price, 1)
        aok: float = await retry.acall(aprice, 1)
        retry.call(price, "not an int")  # E1
        await retry.acall(aprice, "not an int")  # E2
        retry.call(price)  # E3
        cached = rs.Cache(ttl=1)(price)
        key: str = cached.cache_key(1)
        cached.invalidate("not an int")  # E4
    """
)


def test_mypy_checks_call_and_acall_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrong or missing arguments to call/acall, and to a cached function's invalidate, are mypy errors."""
    monkeypatch.chdir(ROOT)  # mypy reads this checkout's resilient (and its py.typed) from the working directory
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(source)]
    )
    lines = SNIPPET.splitlines()
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line}
    expected = {i + 1 for i, text in enumerate(lines) if "# E" in text}
    assert flagged == expected, out + err
    assert status == 1
