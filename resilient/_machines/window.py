"""A sliding time window of counts, kept as ``slots`` buckets (resilience4j's time-based window).

The window of ``window`` seconds is cut into ``slots`` buckets of
``window / slots`` seconds each; an outcome recorded at ``t`` lands in bucket
``floor(t / (window / slots))`` and is forgotten once that bucket falls out of
the newest ``slots`` buckets: between ``window - window/slots`` and ``window``
seconds after ``t``. Memory is constant whatever the call rate.
"""

from __future__ import annotations

from ._validate import number, whole

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Per-bucket sums of ``fields`` numbers over the last ``window`` seconds; not thread-safe.

    Args:
        window: seconds of history (> 0).
        fields: how many numbers each bucket sums (e.g. calls and failures).
        slots: buckets the window is cut into (resolution ``window / slots``).
    """

    __slots__ = ("_buckets", "_head", "_slot_len", "fields", "slots", "window")

    def __init__(self, window: float, *, fields: int, slots: int = 10) -> None:
        self.window = number("window", window, strict=True)
        self.fields = whole("fields", fields, minimum=1)
        self.slots = whole("slots", slots, minimum=1)
        self._slot_len = self.window / self.slots
        self._buckets: list[list[float]] = [[0.0] * self.fields for _ in range(self.slots)]
        self._head: int | None = None  # absolute index of the newest bucket

    def _advance(self, now: float) -> list[float]:
        index = int(now // self._slot_len)
        head = self._head
        if head is None:
            self._head = head = index
        elif index > head:
            buckets = self._buckets
            for i in range(head + 1, min(index, head + self.slots) + 1):
                bucket = buckets[i % self.slots]
                for f in range(self.fields):
                    bucket[f] = 0.0
            self._head = head = index
        # a reading from the past (index < head) is counted in the newest bucket
        return self._buckets[head % self.slots]

    def add(self, now: float, field: int, amount: float = 1.0) -> None:
        """Add ``amount`` to ``field`` of the bucket holding ``now``."""
        self._advance(now)[field] += amount

    def add2(self, now: float, first: float, second: float) -> None:
        """Add to fields 0 and 1 at once (one bucket lookup)."""
        index = int(now // self._slot_len)
        bucket = self._buckets[index % self.slots] if index == self._head else self._advance(now)
        bucket[0] += first
        bucket[1] += second

    def tick(self, now: float) -> None:
        """Add 1 to field 0 of the bucket holding ``now`` (the hot path: one call, no allocation)."""
        index = int(now // self._slot_len)
        bucket = self._buckets[index % self.slots] if index == self._head else self._advance(now)
        bucket[0] += 1.0

    def totals(self, now: float) -> list[float]:
        """The sums of each field over the window ending at ``now``."""
        self._advance(now)
        return [sum(b[f] for b in self._buckets) for f in range(self.fields)]

    def clear(self) -> None:
        """Forget everything."""
        for bucket in self._buckets:
            for f in range(self.fields):
                bucket[f] = 0.0
        self._head = None

    def __repr__(self) -> str:
        return f"SlidingWindow(window={self.window!r}, slots={self.slots})"
