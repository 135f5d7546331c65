"""The per-process memo of decoded records, bounded in bytes.

A hit whose bytes equal the last record decoded for that key returns the same
decoded object without decoding again. The memo weighs each record at twice
its encoded size (the bytes kept for the comparison, and about as much for the
decoded value) and evicts the oldest records past ``max_bytes``; a record
heavier than an eighth of the budget is never kept, so one large value cannot
flush the memo.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

__all__ = ["Memo"]

T = TypeVar("T")


class Memo(Generic[T]):
    """key -> (record bytes, decoded value), at most ``max_bytes`` by weight; thread-safe."""

    __slots__ = ("_items", "_lock", "max_bytes", "weight")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.weight = 0
        self._items: dict[str, tuple[bytes, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, data: bytes) -> T | None:
        """The decoded value remembered for exactly these bytes, or None."""
        last = self._items.get(key)
        if last is not None and last[0] == data:
            return last[1]
        return None

    def put(self, key: str, data: bytes, value: T) -> None:
        """Remember ``value`` as the decoding of ``data`` (unless it is too heavy)."""
        weight = 2 * len(data)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.weight -= 2 * len(old[0])
            if weight * 8 > self.max_bytes:
                return
            items = self._items
            while items and self.weight + weight > self.max_bytes:
                oldest = next(iter(items))
                self.weight -= 2 * len(items.pop(oldest)[0])
            items[key] = (data, value)
            self.weight += weight

    def __len__(self) -> int:
        return len(self._items)
