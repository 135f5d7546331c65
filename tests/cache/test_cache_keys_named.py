"""Keys a user can name: a decorated function tells its cache key and drops its own entries."""

from __future__ import annotations

import pytest

import resilient as rs
from resilient.testing import FakeClock


def test_a_decorated_function_names_and_invalidates_its_key() -> None:
    """f.cache_key(...) is the stored key; f.invalidate(...) makes the next call reach the origin again."""
    cache = rs.Cache(ttl=60, clock=FakeClock())
    calls: list[int] = []

    @cache
    def expensive(n: int) -> int:
        calls.append(n)
        return n * 2

    assert expensive(1) == 2 and expensive(1) == 2
    assert calls == [1]
    assert expensive.cache_key(1).endswith("expensive(1,)")
    expensive.invalidate(1)
    assert expensive(1) == 2
    assert calls == [1, 1]
    cache.invalidate("never-stored")  # quietly nothing


def test_a_template_key_is_filled_in() -> None:
    """With key="product:{id}", cache_key gives the filled template, for keyword calls too."""
    cache = rs.Cache(ttl=60, key="product:{id}", clock=FakeClock())

    @cache
    def product(id: int, lang: str = "en") -> str:
        return f"{id}/{lang}"

    assert product.cache_key(42) == "product:42"
    assert product.cache_key(id=42, lang="fr") == "product:42"


async def test_an_async_function_invalidates_with_ainvalidate() -> None:
    """await f.ainvalidate(...) drops the entry of an async decorated function."""
    cache = rs.Cache(ttl=60, key=lambda n: f"n:{n}", clock=FakeClock())
    calls: list[int] = []

    @cache
    async def load(n: int) -> int:
        calls.append(n)
        return n

    assert await load(3) == 3 and await load(3) == 3
    assert load.cache_key(3) == "n:3"
    await load.ainvalidate(3)
    assert await load(3) == 3
    assert calls == [3, 3]


def test_cache_key_refuses_what_a_call_would_refuse() -> None:
    """A default key over an argument that is not simple raises TypeError, as the call does."""
    cache = rs.Cache(ttl=60, clock=FakeClock())

    @cache
    def f(x: object) -> object:
        return x

    with pytest.raises(TypeError):
        f.cache_key(object())
