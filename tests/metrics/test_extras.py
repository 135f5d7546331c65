"""Without the extras, resilient imports and the exporters say which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
sys.modules["prometheus_client"] = None  # as if not installed: importing it raises ImportError
sys.modules["opentelemetry"] = None
import resilient
import resilient.metrics
for make, extra in ((resilient.metrics.Prometheus, "prometheus"), (resilient.metrics.OpenTelemetry, "otel")):
    try:
        make()
    except ImportError as exc:
        print(exc)
    else:
        raise SystemExit(f"{make.__name__}() built without its library")
"""


def test_without_the_extras_import_works_and_the_exporters_name_the_extra() -> None:
    """Without prometheus_client/opentelemetry, resilient imports; each exporter's ImportError names its extra."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'resilient.metrics.Prometheus needs prometheus_client: pip install "resilient[prometheus]"',
        'resilient.metrics.OpenTelemetry needs opentelemetry-api: pip install "resilient[otel]"',
    ]


def test_import_resilient_does_not_import_the_metrics_package() -> None:
    """Importing resilient loads neither resilient.metrics nor prometheus_client (redis-py may load opentelemetry)."""
    program = (
        "import sys, resilient; "
        "print(sorted(m for m in sys.modules if m.startswith(('resilient.metrics', 'prometheus_client'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
