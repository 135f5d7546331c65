"""Bugs found by porting peers' test suites to our API: each case is one of them, fixed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

import resilient as rs
from resilient.testing import FakeClock, no_waiting


def every_policy() -> list[rs.Policy]:
    return [
        rs.Retry(clock=FakeClock()),
        rs.CircuitBreaker(),
        rs.Timeout(5),
        rs.Bulkhead(3),
        rs.Fallback(value=0),
        rs.Cache(ttl=5, clock=FakeClock()),
        rs.Coalesce(),
        rs.pipeline(rs.Retry(clock=FakeClock()), rs.Timeout(5)),
    ]


@pytest.mark.parametrize("policy", every_policy(), ids=repr)
@pytest.mark.parametrize("make", [mock.Mock, mock.MagicMock, lambda **kw: functools.partial(mock.Mock(**kw))])
def test_any_policy_runs_a_mock_through_call_and_decoration(policy: rs.Policy, make: Callable[..., Any]) -> None:
    """A Mock, MagicMock or partial of one runs through call() and a decorated wrapper, named after its type."""
    from resilient.core.policy import operation_name

    fn: Callable[[], int] = make(return_value=1)
    try:
        operation_name(fn)
    except RecursionError:  # fail short: a mock recursing to the limit makes an enormous traceback
        pytest.fail("operation_name recursed on a mock", pytrace=False)
    assert policy.call(fn) == 1
    assert policy(fn)() == 1
    assert rs.Retry().call(functools.partial(functools.partial(mock.Mock(return_value=2)))) == 2


@pytest.mark.parametrize("policy", every_policy(), ids=repr)
async def test_any_policy_awaits_an_async_mock(policy: rs.Policy) -> None:
    """An AsyncMock runs through acall() and through a decorated wrapper."""
    fn = mock.AsyncMock(return_value=2)
    assert await policy.acall(fn) == 2
    assert await policy(fn)() == 2


def test_retry_retries_a_mock_with_a_side_effect() -> None:
    """Retry sees a Mock's side effects as attempts, as pybreaker's and tenacity's suites use them."""
    fn = mock.Mock(side_effect=[ConnectionError("down"), ConnectionError("down"), "ok"])
    with no_waiting():
        assert rs.Retry(attempts=3).call(fn) == "ok"
    assert fn.call_count == 3


def test_operation_name_of_mocks_and_partials() -> None:
    """A partial is named after the function inside; a mock after its type."""
    from resilient.core.policy import operation_name

    def price(x: int) -> int:
        return x

    assert operation_name(functools.partial(price, 1)) == price.__qualname__
    assert operation_name(mock.Mock()) == "Mock"
    assert operation_name(functools.partial(mock.MagicMock())) == "MagicMock"
    assert asyncio.iscoroutinefunction(mock.AsyncMock())


def test_a_timeout_that_fails_to_start_leaves_no_deadline_behind() -> None:
    """Entering asyncio.timeout() without a running loop raises, and a later unrelated Timeout(5) still runs."""
    from resilient.core.context import current_deadline

    clock = FakeClock()

    async def work() -> int:
        return 1

    coro = rs.Timeout(1, clock=clock).acall(work)
    with pytest.raises(RuntimeError):
        coro.send(None)  # driven by hand: no running loop
    coro.close()
    assert current_deadline.get() is None
    clock.advance(10)
    assert rs.Timeout(5, clock=clock).call(lambda: 2) == 2


def test_bad_arguments_name_the_argument() -> None:
    """Fallback() without value/handler, SingleFlight().do of a non-callable, an empty pipeline: clear errors."""
    with pytest.raises(TypeError, match=r"value=.*handler=") as caught:
        rs.Fallback()
    assert "object at 0x" not in str(caught.value)
    with pytest.raises(TypeError, match="not both"):
        rs.Fallback(value=1, handler=lambda outcome: 2)
    with pytest.raises(TypeError, match=r"fn must be a zero-argument callable.*42"):
        rs.SingleFlight().do("k", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_join"):
        rs.SingleFlight().do("k", lambda: 1, on_join=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one policy"):
        rs.pipeline()


async def test_async_single_flight_names_a_bad_argument() -> None:
    """SingleFlight().ado with a non-callable names afn."""
    with pytest.raises(TypeError, match="afn must be"):
        await rs.SingleFlight().ado("k", 42)  # type: ignore[arg-type]
