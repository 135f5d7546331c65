"""Retry budget (Finagle's): retries may add at most ``ratio`` of recent calls.

Calls deposit, retries withdraw, both counted in a sliding window of
``window`` seconds kept as ``slots`` buckets. A retry is allowed while
``min_per_second * window + ratio * deposits - withdrawals >= 1``.
"""

from __future__ import annotations

from ._validate import number

__all__ = ["BudgetWindow"]

SLOTS = 10


class BudgetWindow:
    """Deposits and withdrawals over the last ``window`` seconds; not thread-safe."""

    __slots__ = ("_deposits", "_head", "_slot_len", "_withdrawals", "min_per_second", "ratio", "reserve", "window")

    def __init__(self, *, ratio: float, min_per_second: float, window: float) -> None:
        self.ratio = number("ratio", ratio)
        if self.ratio > 1000:
            raise ValueError(f"ratio must be in [0, 1000], got {ratio!r}")
        self.min_per_second = number("min_per_second", min_per_second)
        self.window = number("window", window, strict=True)
        self.reserve = self.min_per_second * self.window
        self._slot_len = self.window / SLOTS
        self._deposits = [0] * SLOTS
        self._withdrawals = [0] * SLOTS
        self._head: int | None = None  # absolute index of the newest slot

    def _advance(self, now: float) -> int:
        index = int(now // self._slot_len)
        head = self._head
        if head is None:
            self._head = index
        elif index > head:
            for i in range(head + 1, min(index, head + SLOTS) + 1):
                self._deposits[i % SLOTS] = 0
                self._withdrawals[i % SLOTS] = 0
            self._head = index
        return (self._head if self._head is not None else index) % SLOTS

    def deposit(self, now: float) -> None:
        """Count one original call at ``now``."""
        index = int(now // self._slot_len)
        if index == self._head:  # the newest slot still: nothing to advance
            self._deposits[index % SLOTS] += 1
        else:
            self._deposits[self._advance(now)] += 1

    def balance(self, now: float) -> float:
        """Retries still allowed in the window (may be fractional)."""
        self._advance(now)
        return self.reserve + self.ratio * sum(self._deposits) - sum(self._withdrawals)

    def try_withdraw(self, now: float) -> bool:
        """Take one retry if the budget allows it."""
        slot = self._advance(now)
        if self.reserve + self.ratio * sum(self._deposits) - sum(self._withdrawals) < 1:
            return False
        self._withdrawals[slot] += 1
        return True
