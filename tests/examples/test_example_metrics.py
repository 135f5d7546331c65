"""The metrics example serves /metrics on loopback, and a scrape shows the traffic it drove."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_metrics_example_serves_what_its_traffic_did() -> None:
    """A scrape of the example's /metrics counts its 40 requests, the herd's one origin call and its hits."""
    example = runpy.run_path(str(EXAMPLES / "metrics.py"), run_name="example")
    with example["running"]() as run:
        assert run.metrics_url.startswith("http://127.0.0.1:")
        example["traffic"](run, requests=40, herd=20, hits=5)
        response = httpx.get(run.metrics_url)
    assert response.status_code == 200
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    api = (("name", "prices-api"), ("policy", "retry"))
    products = (("name", "products"), ("policy", "cache"))
    assert got[("resilient_calls_total", api)] == 41  # 40 requests + the herd's one origin call
    assert got[("resilient_retries_total", api)] >= 10  # every 4th response of the origin is a 503
    assert got[("resilient_cache_origin_calls_total", products)] == 1
    # a herd thread that starts after the first one's value landed hits instead of missing (a loaded machine)
    misses, hits = got[("resilient_cache_misses_total", products)], got[("resilient_cache_hits_total", products)]
    assert misses >= 1 and misses + hits == 20 + 5
    http_ok = (("name", "prices-api"), ("outcome", "ok"), ("policy", "http"))
    assert got[("resilient_origin_duration_seconds_count", http_ok)] == 41 + got[("resilient_retries_total", api)]


def test_metrics_example_runs_as_a_script(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as a script it prints where it serves and the herd's signals."""
    monkeypatch.setattr(sys, "argv", ["metrics.py"])
    runpy.run_path(str(EXAMPLES / "metrics.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "serving http://127.0.0.1:" in out
    assert 'resilient_cache_origin_calls_total{name="products",policy="cache"} 1.0' in out
