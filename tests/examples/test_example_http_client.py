"""examples/http_client.py runs and shows what it claims."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "http_client.py"


def test_the_example_retries_get_and_keyed_post_but_not_plain_post() -> None:
    """The example's GET and keyed POST recover from a 503, the plain POST returns it, the cache serves twice."""
    namespace = runpy.run_path(str(EXAMPLE), run_name="example")
    outcome = namespace["main"]()
    assert outcome["get"] == 200
    assert outcome["post"] == 503
    assert outcome["keyed"] == 200
    assert outcome["catalogue"] == [200, 200, 200]
    assert outcome["hits"] == {"GET /prices/42": 2, "POST /orders": 1, "POST /payments": 2, "GET /catalogue": 2}


def test_the_example_runs_as_a_script() -> None:
    """python examples/http_client.py exits 0 and prints its three requests."""
    root = EXAMPLE.parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    assert "GET  /prices/42 -> 200" in done.stdout
    assert "POST /orders    -> 503" in done.stdout
