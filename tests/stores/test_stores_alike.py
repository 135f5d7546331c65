"""Stores behave alike: the default serializer round-trips the same types through MemoryStore and RedisStore."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis

import resilient as rs
from resilient.stores.redis import RedisStore
from resilient.testing import FakeClock

VALUES = [
    (1, "a"),
    {1, 2},
    frozenset({"x"}),
    b"\x00\xffbytes",
    dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
    dt.date(2024, 5, 6),
    {"nested": [(1, 2), {3}], "n": None},
    {(1, 2): "tuple key"},
    {"__rs__": "a user's own key"},
]


@pytest.fixture(params=["memory", "memory+json", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[rs.Cache]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(url)
        yield rs.Cache(ttl=60, store=RedisStore(client, prefix="alike:"), key="v:{i}", clock=FakeClock())
        client.close()
    elif request.param == "memory+json":
        yield rs.Cache(ttl=60, serializer=rs.JsonSerializer(), key="v:{i}", clock=FakeClock())
    else:
        yield rs.Cache(ttl=60, key="v:{i}", clock=FakeClock())


@pytest.mark.redis
def test_every_store_gives_back_the_same_types(cache: rs.Cache) -> None:
    """Tuples, sets, frozensets, bytes, datetimes, dates and non-str dict keys come back as they went in, twice."""
    calls = 0

    @cache
    def value(i: int) -> object:
        nonlocal calls
        calls += 1
        return VALUES[i]

    for i, expected in enumerate(VALUES):
        first, second = value(i), value(i)
        assert (first, type(first)) == (expected, type(expected))
        assert (second, type(second)) == (expected, type(expected))
    assert calls == len(VALUES)  # every one cached: the second read was a hit


def test_a_value_json_cannot_hold_is_a_type_error_naming_the_type() -> None:
    """The default serializer refuses other types by name (RedisStore turns it into an error naming the key)."""
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        rs.JsonSerializer().dumps({"a": object()})


def test_the_in_process_store_keeps_values_by_reference_unless_given_a_serializer() -> None:
    """The per-store rule, pinned: MemoryStore() holds the object itself (any type, no copy);
    Cache(serializer=rs.JsonSerializer()) makes it encode exactly as RedisStore does."""

    class Opaque:
        pass

    held = Opaque()
    by_reference = rs.Cache(ttl=60, clock=FakeClock())
    assert by_reference.call(lambda: held) is held
    encoded = rs.Cache(ttl=60, serializer=rs.JsonSerializer(), key=lambda: "k", clock=FakeClock())

    @encoded
    def opaque() -> object:
        return held

    with pytest.raises(TypeError):
        opaque()
