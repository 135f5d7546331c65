"""The sliding window of counts."""

from __future__ import annotations

import pytest

from resilient._machines.window import SlidingWindow


def test_counts_within_window_and_forgets_older_buckets() -> None:
    """Sums cover the last window; a bucket is dropped once it is a full window old."""
    w = SlidingWindow(10, fields=2)
    w.add2(0.0, 1, 1)
    w.add2(5.0, 1, 0)
    assert w.totals(9.9) == [2.0, 1.0]
    assert w.totals(10.0) == [1.0, 0.0]  # the bucket [0, 1) fell out
    assert w.totals(15.0) == [0.0, 0.0]


def test_a_long_gap_clears_everything() -> None:
    """After more than a window of silence nothing is counted."""
    w = SlidingWindow(1, fields=1)
    w.add(0.0, 0, 5)
    assert w.totals(1000.0) == [0.0]


def test_a_reading_from_the_past_counts_in_the_newest_bucket() -> None:
    """A clock reading older than the newest bucket is counted, not lost."""
    w = SlidingWindow(10, fields=1)
    w.add(5.0, 0)
    w.add(4.0, 0)
    assert w.totals(5.0) == [2.0]


def test_clear() -> None:
    """clear() forgets all counts."""
    w = SlidingWindow(10, fields=1)
    w.add(1.0, 0)
    w.clear()
    assert w.totals(1.0) == [0.0]


def test_bad_window() -> None:
    """A non-positive window raises ValueError naming it."""
    with pytest.raises(ValueError, match="window"):
        SlidingWindow(0, fields=1)
