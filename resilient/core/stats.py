"""Counters that stay exact under threads without a lock on the hot path."""

from __future__ import annotations

import itertools

__all__ = ["Counter"]


class Counter:
    """A monotonically increasing count; ``incr()`` is atomic under the GIL."""

    __slots__ = ("_count", "incr")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.incr = self._count.__next__

    @property
    def value(self) -> int:
        # itertools.count shows its next value in its repr: "count(5)"
        return int(repr(self._count)[6:-1])

    def __repr__(self) -> str:
        return f"Counter({self.value})"
