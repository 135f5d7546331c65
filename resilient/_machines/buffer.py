"""Write-buffer decisions: when to cut a batch, how long to wait, what to do with a failed one.

A drain worker asks :meth:`BatchPlan.next` what to do with the items it holds:
``Cut(n)`` (write ``n`` now), ``Linger(s)`` (wait up to ``s`` seconds for more,
or for the batch to fill) or ``Idle()`` (nothing to write: wait for a put). A
batch is cut when it is full, when its oldest item has waited ``linger``
seconds, or at once when the buffer is flushing or closing. The write rate
comes from a :class:`~resilient._machines.bucket.TokenBucket` holding one batch
(``burst = batch_size``), so by time t at most ``rate·t + batch_size`` items
were written. :func:`after_failure` decides the fate of a batch whose write
still failed after the retry policy: held and tried again when the write was
refused without being made (an open breaker, a rate limit: the items are not
at fault), else dead-lettered. Pure: time comes in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._validate import number, whole

__all__ = ["MAX_HOLD", "BatchPlan", "Cut", "DeadLetter", "Hold", "Idle", "Linger", "after_failure"]

#: The longest a refused batch is held before it is tried again (seconds).
MAX_HOLD = 30.0


@dataclass(frozen=True, slots=True)
class Cut:
    """Write the first ``n`` items now."""

    n: int


@dataclass(frozen=True, slots=True)
class Linger:
    """Wait up to ``seconds`` for more items (a full batch ends the wait early)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to write: wait for the next put (or for a flush or close)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Keep the batch and write it again after ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give the batch to ``dead_letter`` and drop it from the queue."""


_IDLE = Idle()
_DEAD = DeadLetter()


class BatchPlan:
    """Cuts batches of at most ``batch_size`` items, lingering at most ``linger`` seconds.

    Args:
        batch_size: the most items in one ``write`` (>= 1).
        linger: the longest the oldest item waits for its batch to fill (>= 0).
    """

    __slots__ = ("batch_size", "linger")

    def __init__(self, *, batch_size: int, linger: float) -> None:
        self.batch_size = whole("batch_size", batch_size, minimum=1)
        self.linger = number("linger", linger)

    def next(self, now: float, have: int, oldest_at: float | None, *, urgent: bool = False) -> Cut | Linger | Idle:
        """What to do holding ``have`` items, the oldest seen at ``oldest_at``.

        ``urgent`` (a flush or close is waiting) cuts whatever is there at once.
        """
        if have <= 0:
            return _IDLE
        if have >= self.batch_size:
            return Cut(self.batch_size)
        if urgent or oldest_at is None:
            return Cut(have)
        remaining = oldest_at + self.linger - now
        if remaining <= 0:
            return Cut(have)
        return Linger(remaining)


def after_failure(*, refused: bool, retry_after: float, linger: float) -> Hold | DeadLetter:
    """The fate of a batch whose write failed for good.

    Args:
        refused: the write was refused without being made (a ``rs.Rejected``,
            such as an open breaker inside ``retry=``): the batch is held.
        retry_after: the refusal's hint (seconds until it may pass), 0 if none.
        linger: the buffer's linger, the shortest hold.
    """
    if not refused:
        return _DEAD
    hint = retry_after if retry_after > 0 else 0.0
    return Hold(min(MAX_HOLD, max(hint, linger, 0.01)))
