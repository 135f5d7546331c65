"""The retry budget's sliding window, pure."""

from __future__ import annotations

import pytest

from resilient._machines.budget import BudgetWindow


def test_reserve_then_ratio() -> None:
    """With no calls only the reserve is spendable; each call adds `ratio` of a retry."""
    w = BudgetWindow(ratio=0.1, min_per_second=1, window=10)
    granted = sum(w.try_withdraw(0.0) for _ in range(100))
    assert granted == 10
    for _ in range(100):
        w.deposit(0.0)
    assert sum(w.try_withdraw(0.0) for _ in range(100)) == 10


def test_window_forgets_old_activity() -> None:
    """Withdrawals older than the window no longer count against the budget."""
    w = BudgetWindow(ratio=0.0, min_per_second=1, window=10)
    assert sum(w.try_withdraw(0.0) for _ in range(20)) == 10
    assert not w.try_withdraw(9.0)
    assert w.try_withdraw(10.5)


def test_zero_budget_never_retries() -> None:
    """ratio=0 and no reserve allows no retry at all."""
    w = BudgetWindow(ratio=0.0, min_per_second=0, window=1)
    for _ in range(10):
        w.deposit(0.0)
    assert not w.try_withdraw(0.0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ratio": -0.1, "min_per_second": 1, "window": 1}, "ratio"),
        ({"ratio": 1001, "min_per_second": 1, "window": 1}, "ratio"),
        ({"ratio": 0.1, "min_per_second": -1, "window": 1}, "min_per_second"),
        ({"ratio": 0.1, "min_per_second": 1, "window": 0}, "window"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], name: str) -> None:
    """Out-of-range budget settings raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=name):
        BudgetWindow(**kwargs)
