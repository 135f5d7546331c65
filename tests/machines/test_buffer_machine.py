"""Write-buffer decisions: cutting batches, lingering, holding or dead-lettering a failed batch."""

from __future__ import annotations

import pytest

from resilient._machines.buffer import MAX_HOLD, BatchPlan, Cut, DeadLetter, Hold, Idle, Linger, after_failure


def test_nothing_held_is_idle() -> None:
    """With no items the worker waits for a put."""
    assert BatchPlan(batch_size=10, linger=0.05).next(0.0, 0, None) == Idle()


def test_a_full_batch_is_cut_at_once() -> None:
    """batch_size items (or more) cut a full batch without lingering."""
    plan = BatchPlan(batch_size=10, linger=0.05)
    assert plan.next(0.0, 10, 0.0) == Cut(10)
    assert plan.next(0.0, 25, 0.0) == Cut(10)


def test_a_partial_batch_lingers_until_its_oldest_item_waited_linger() -> None:
    """A partial batch waits what remains of linger, then is cut."""
    plan = BatchPlan(batch_size=10, linger=0.05)
    decision = plan.next(1.0, 3, 0.99)
    assert isinstance(decision, Linger) and decision.seconds == pytest.approx(0.04)
    assert plan.next(1.04, 3, 0.99) == Cut(3)


def test_urgent_cuts_what_is_there() -> None:
    """A flush or close cuts a partial batch at once."""
    assert BatchPlan(batch_size=10, linger=5).next(0.0, 3, 0.0, urgent=True) == Cut(3)


def test_zero_linger_never_waits() -> None:
    """linger=0 cuts every partial batch at once."""
    assert BatchPlan(batch_size=10, linger=0).next(0.0, 1, 0.0) == Cut(1)


def test_a_failure_is_dead_lettered_and_a_refusal_held() -> None:
    """A write that failed goes to the dead letter; one refused without being made is held for its hint."""
    assert after_failure(refused=False, retry_after=3.0, linger=0.05) == DeadLetter()
    assert after_failure(refused=True, retry_after=3.0, linger=0.05) == Hold(3.0)
    assert after_failure(refused=True, retry_after=0.0, linger=0.05) == Hold(0.05)
    assert after_failure(refused=True, retry_after=1e9, linger=0.05) == Hold(MAX_HOLD)


@pytest.mark.parametrize(
    ("kwargs", "param"), [({"batch_size": 0, "linger": 0}, "batch_size"), ({"batch_size": 1, "linger": -1}, "linger")]
)
def test_bad_options(kwargs: dict[str, float], param: str) -> None:
    """Bad options raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        BatchPlan(**kwargs)  # type: ignore[arg-type]
