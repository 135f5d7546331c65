"""Fallback: a value or a handler's answer in place of a failure."""

from __future__ import annotations

from typing import Any

import pytest

import resilient as rs


def boom() -> Any:
    raise ConnectionError("down")


async def aboom() -> Any:
    raise ConnectionError("down")


def test_value_replaces_an_error() -> None:
    """value= is returned in place of an exception."""
    assert rs.Fallback(value=42).call(boom) == 42


async def test_value_replaces_an_error_async() -> None:
    """value= is returned in place of an exception in the async path."""
    assert await rs.Fallback(value=42).acall(aboom) == 42


def test_handler_receives_the_outcome() -> None:
    """handler(outcome) receives the failed outcome."""
    seen: list[Any] = []

    def handler(outcome: rs.Outcome[Any]) -> str:
        seen.append(outcome.error)
        return "h"

    fallback = rs.Fallback(handler=handler)
    assert fallback.call(boom) == "h"
    assert isinstance(seen[0], ConnectionError)


async def test_async_handler_is_awaited() -> None:
    """An async handler is awaited in the async path."""

    async def handler(outcome: rs.Outcome[Any]) -> str:
        return f"handled {type(outcome.error).__name__}"

    assert await rs.Fallback(handler=handler).acall(aboom) == "handled ConnectionError"


def test_async_handler_in_a_sync_call_is_a_type_error() -> None:
    """An async handler cannot serve a sync call: TypeError (and no never-awaited warning)."""

    async def handler(outcome: rs.Outcome[Any]) -> str:
        return "never"

    with pytest.raises(TypeError, match="async"):
        rs.Fallback(handler=handler).call(boom)


def test_rejections_are_handled_by_default() -> None:
    """Left out, on= covers the library's rejections too (an open circuit falls back)."""

    def rejected() -> None:
        raise rs.CircuitOpenError(remaining=1)

    assert rs.Fallback(value="cached").call(rejected) == "cached"


def test_on_limits_what_falls_back() -> None:
    """An error outside on= passes through."""
    with pytest.raises(ConnectionError):
        rs.Fallback(value=1, on=KeyError).call(boom)


def test_failed_results_fall_back() -> None:
    """A result matched by rs.results(...) is replaced; others pass."""
    fallback = rs.Fallback(value="fallback", on=rs.results(lambda v: v is None))
    assert fallback.call(lambda: None) == "fallback"
    assert fallback.call(lambda: "fine") == "fine"
    assert fallback.stats() == {"used": 1}


def test_cancellation_is_never_handled() -> None:
    """A BaseException (KeyboardInterrupt) is never replaced."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rs.Fallback(value=1, on=BaseException).call(interrupt)


@pytest.mark.parametrize("kwargs", [{}, {"value": 1, "handler": print}])
def test_exactly_one_of_value_and_handler(kwargs: dict[str, Any]) -> None:
    """Neither or both of value= and handler= raise TypeError naming them."""
    with pytest.raises(TypeError, match=r"value=.*handler="):
        rs.Fallback(**kwargs)
