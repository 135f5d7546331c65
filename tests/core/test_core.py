"""The policy core: pipelines, outcomes, events, the public surface and the test support."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import structlog

import resilient as rs
import resilient.testing
from resilient.core.events import emit
from resilient.testing import FakeClock, capture_events, no_waiting


class Tag(rs.Policy):
    """Records the order in which policies see a call."""

    kind = "tag"

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def bind(self, inner):
        def step(ctx: rs.Context) -> Any:
            self.log.append(self.name)
            return inner(ctx)

        return step

    def abind(self, inner):
        async def step(ctx: rs.Context) -> Any:
            self.log.append(self.name)
            return await inner(ctx)

        return step

    def stats(self) -> dict[str, Any]:
        return {"name": self.name}


def test_pipeline_runs_outermost_first_sync_and_async() -> None:
    """pipeline(a, b, c) runs a, then b, then c, then the function, in both worlds."""
    log: list[str] = []
    p = rs.pipeline(Tag("a", log), Tag("b", log), Tag("c", log))

    @p
    def f(x: int) -> int:
        log.append("f")
        return x * 2

    @p
    async def g(x: int) -> int:
        log.append("g")
        return x * 3

    assert f(2) == 4
    assert asyncio.run(g(2)) == 6
    assert log == ["a", "b", "c", "f", "a", "b", "c", "g"]


def test_pipeline_stats_nest_by_kind() -> None:
    """A pipeline's stats nest each policy's stats under its kind, numbering repeats."""
    p = rs.pipeline(Tag("a", []), rs.Retry(), Tag("b", []))
    stats = p.stats()
    assert list(stats) == ["tag", "retry", "tag_2"]
    assert stats["tag_2"] == {"name": "b"}
    assert stats["retry"]["calls"] == 0


def test_pipeline_rejects_non_policies() -> None:
    """pipeline() names the bad argument."""
    with pytest.raises(TypeError, match=r"policies\[1\]"):
        rs.pipeline(rs.Retry(), print)  # type: ignore[arg-type]


def test_pipelines_nest() -> None:
    """A Pipeline is itself a policy."""
    log: list[str] = []
    p = rs.pipeline(Tag("outer", log), rs.pipeline(Tag("i1", log), Tag("i2", log)))
    assert p.call(lambda: "v") == "v"
    assert log == ["outer", "i1", "i2"]


async def test_acall_accepts_sync_and_async_callables() -> None:
    """acall awaits a coroutine function and also runs a plain function."""
    p = rs.pipeline(rs.Retry())

    async def co(x: int) -> int:
        return x + 1

    assert await p.acall(co, 1) == 2
    assert await p.acall(lambda x: x + 2, 1) == 3


def test_call_passes_args_and_kwargs() -> None:
    """call(fn, *args, **kwargs) forwards both."""

    def minus(a: int, b: int = 0) -> int:
        return a - b

    assert rs.Retry().call(minus, 5, b=2) == 3


def test_operation_names() -> None:
    """The operation is the function's qualified name."""
    ops: list[str] = []

    class Spy(rs.Policy):
        def bind(self, inner):
            def step(ctx: rs.Context) -> Any:
                ops.append(ctx.operation)
                return inner(ctx)

            return step

    def named() -> None:
        pass

    Spy().call(named)
    Spy()(named)()
    assert ops == [named.__qualname__, named.__qualname__]


def test_decorator_rejects_non_callables() -> None:
    """Decorating something that is not callable is a TypeError."""
    with pytest.raises(TypeError, match="decorates callables"):
        rs.Retry()(42)  # type: ignore[call-overload]


def test_outcome() -> None:
    """Outcome holds a value or an error; unwrap re-raises the error."""
    ok = rs.Outcome(3)
    bad: rs.Outcome[int] = rs.Outcome(error=KeyError("k"))
    assert ok.ok and ok.unwrap() == 3
    assert not bad.ok
    with pytest.raises(KeyError):
        bad.unwrap()


def test_predicates() -> None:
    """errors() and results() test their part of an outcome; | combines them."""
    p = rs.errors(KeyError) | rs.results(lambda v: v == 0)
    assert p(rs.Outcome(error=KeyError()))
    assert not p(rs.Outcome(error=ValueError()))
    assert p(rs.Outcome(0)) and not p(rs.Outcome(1))
    q = rs.errors(KeyError) | ValueError
    assert q(rs.Outcome(error=ValueError()))
    with pytest.raises(TypeError):
        rs.errors("KeyError")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rs.results(3)  # type: ignore[arg-type]


def test_errors_base_exception_still_ignores_cancellation() -> None:
    """errors(BaseException) as on= matches any Exception but never KeyboardInterrupt."""
    from resilient.core.outcome import compile_on

    pred = compile_on(rs.errors(BaseException))
    assert pred.matches_error(ValueError())
    assert not pred.matches_error(KeyboardInterrupt())
    assert not pred.matches_error(asyncio.CancelledError())


def test_events_reach_listeners_and_structlog() -> None:
    """An event goes to every listener and to structlog as `policy.event`."""
    got: list[dict[str, Any]] = []
    rs.add_listener(got.append)
    try:
        with structlog.testing.capture_logs() as logs:
            emit("retry.gave_up", operation="op", key=None, reason="attempts", attempts=3, error=ValueError("v"))
    finally:
        rs.remove_listener(got.append)
    emit("retry.gave_up", operation="after", key=None, reason="attempts", attempts=3, error=None)
    assert got == [
        {
            "event": "retry.gave_up",
            "policy": "retry",
            "operation": "op",
            "key": None,
            "error": "ValueError",
            "error_message": "v",
            "reason": "attempts",
            "attempts": 3,
        }
    ]
    assert logs[0]["event"] == "retry.gave_up" and logs[0]["log_level"] == "warning"


def test_a_broken_listener_does_not_break_the_call() -> None:
    """A listener that raises is logged and skipped; others still receive the event."""

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    rs.add_listener(broken)
    try:
        with capture_events() as events, structlog.testing.capture_logs():
            emit("coalesce.joined", operation="x", key="k")
    finally:
        rs.remove_listener(broken)
    assert events == [{"event": "coalesce.joined", "policy": "coalesce", "operation": "x", "key": "k"}]
    with pytest.raises(TypeError, match="callable"):
        rs.add_listener(3)  # type: ignore[arg-type]


def test_fake_clock() -> None:
    """FakeClock moves only when told, and sleeping advances it at once."""
    clock = FakeClock(start=5, wall=100)
    assert (clock.monotonic(), clock.time()) == (5, 100)
    clock.advance(2)
    t0 = time.monotonic()
    clock.sleep(3600)
    asyncio.run(clock.asleep(10))
    assert time.monotonic() - t0 < 5  # no real waiting happened
    assert (clock.monotonic(), clock.time()) == (3617, 3712)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1)


def test_no_waiting_skips_sleeps_on_the_system_clock() -> None:
    """Inside no_waiting() a retry with a 1 h backoff returns at once."""
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError
        return "ok"

    t0 = time.monotonic()
    with no_waiting():
        assert rs.Retry(backoff=rs.Constant(3600)).call(flaky) == "ok"
    assert time.monotonic() - t0 < 5


def test_error_hierarchy() -> None:
    """Every library error derives from ResilienceError; rejections from Rejected."""
    for cls in (rs.CircuitOpenError, rs.BulkheadFullError, rs.LoadShedError, rs.RateLimitedError, rs.BufferFullError):
        assert issubclass(cls, rs.Rejected)
    assert issubclass(rs.Rejected, rs.ResilienceError)
    assert issubclass(rs.TimeoutExceeded, TimeoutError)
    assert issubclass(rs.CacheLockTimeout, rs.ResilienceError)
    assert rs.CircuitOpenError(remaining=2.5).remaining == 2.5
