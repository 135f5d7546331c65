"""The batch window: open with the first key, close when full or when due; pure and instant."""

from __future__ import annotations

import pytest

from resilient._machines.batch import BatchWindow


def test_first_key_opens_and_leads() -> None:
    """The first key opens a window whose caller leads it; the next joins it."""
    w = BatchWindow(window=0.01, max_size=10)
    first = w.add("a", now=5.0)
    second = w.add("b", now=5.004)
    assert first.opened and not first.joined and first.full is None
    assert not second.opened and second.generation == first.generation
    assert w.due(first.generation, 5.005) == pytest.approx(0.005)
    assert w.due(first.generation, 5.010) == 0.0
    assert w.take() == ("a", "b")
    assert w.due(first.generation, 5.02) == -1.0


def test_duplicate_key_joins() -> None:
    """A key already waiting joins it and does not count twice towards max_size."""
    w = BatchWindow(window=1, max_size=2)
    w.add("a", 0)
    assert w.add("a", 0).joined
    assert w.size == 1


def test_full_window_goes_at_once() -> None:
    """The max_size-th distinct key closes the window and hands over its keys in order."""
    w = BatchWindow(window=1, max_size=3)
    w.add(1, 0)
    w.add(2, 0)
    added = w.add(3, 0)
    assert added.full == (1, 2, 3)
    assert w.size == 0
    assert w.add(4, 0).opened


def test_removing_the_last_key_closes_the_window() -> None:
    """A window whose keys all left is gone: its leader finds it so (due < 0)."""
    w = BatchWindow(window=1, max_size=3)
    g = w.add("a", 0).generation
    w.add("b", 0)
    assert not w.remove("a")
    assert not w.remove("zzz")
    assert w.remove("b")
    assert w.due(g, 0.5) == -1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"window": -1, "max_size": 1}, "window"), ({"window": 0.1, "max_size": 0}, "max_size")],
)
def test_bad_options_name_the_parameter(kwargs: dict[str, float], name: str) -> None:
    """A bad window or max_size fails at construction, naming the parameter."""
    with pytest.raises(ValueError, match=name):
        BatchWindow(**kwargs)  # type: ignore[arg-type]
