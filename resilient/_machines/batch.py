"""The batch window of ``rs.Batch``: which keys wait, since when, and when they go.

A window opens with its first key and closes ``window`` seconds later, or as
soon as ``max_size`` distinct keys wait, whichever comes first; its keys then go
to the origin as one batch. A key added twice joins the first. A key whose
callers all left before the window closed is taken out again; a window left
empty is gone. The shell holds the futures and does the waiting; this only
answers "a new window?", "full?" and "due?".
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from ._validate import number, whole

__all__ = ["Added", "BatchWindow"]


@dataclass(frozen=True, slots=True)
class Added:
    """What adding a key decided.

    Attributes:
        joined: the key already waits in this window (it is fetched once).
        opened: this key opened the window: its caller leads it, and waits
            ``window`` seconds (then asks :meth:`BatchWindow.due`).
        full: the window is full: these keys go now (the window is closed).
        generation: the window the key went into (compare with
            :attr:`BatchWindow.generation` to know whether it is still open).
    """

    joined: bool
    opened: bool
    full: tuple[Hashable, ...] | None
    generation: int


class BatchWindow:
    """One loader's open window (not thread-safe: the shell serialises calls).

    Args:
        window: seconds a window stays open after its first key (>= 0).
        max_size: distinct keys at most per batch (>= 1).
    """

    __slots__ = ("_keys", "generation", "max_size", "opened_at", "window")

    def __init__(self, *, window: float, max_size: int) -> None:
        self.window = number("window", window)
        self.max_size = whole("max_size", max_size, minimum=1)
        self._keys: dict[Hashable, None] = {}
        self.opened_at: float | None = None
        #: Bumped each time a window closes (dispatched, or emptied).
        self.generation = 0

    @property
    def size(self) -> int:
        """Distinct keys waiting in the open window."""
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable, now: float) -> Added:
        """Put ``key`` in the open window (opening one at ``now`` if none is)."""
        generation = self.generation
        if key in self._keys:
            return Added(joined=True, opened=False, full=None, generation=generation)
        opened = self.opened_at is None
        if opened:
            self.opened_at = now
        self._keys[key] = None
        full = self.take() if len(self._keys) >= self.max_size else None
        return Added(joined=False, opened=opened, full=full, generation=generation)

    def remove(self, key: Hashable) -> bool:
        """Take ``key`` out (its callers all left); True when that emptied the window (now closed)."""
        if key not in self._keys:
            return False
        del self._keys[key]
        if self._keys:
            return False
        self._close()
        return True

    def due(self, generation: int, now: float) -> float:
        """Seconds until window ``generation`` closes; 0.0 when it is due; -1.0 when it is gone already."""
        if generation != self.generation or self.opened_at is None:
            return -1.0
        return max(0.0, self.opened_at + self.window - now)

    def take(self) -> tuple[Hashable, ...]:
        """Close the window and return its keys, in the order they came."""
        keys = tuple(self._keys)
        self._close()
        return keys

    def _close(self) -> None:
        self._keys = {}
        self.opened_at = None
        self.generation += 1

    def __repr__(self) -> str:
        return f"BatchWindow(window={self.window!r}, max_size={self.max_size!r}, size={self.size})"
