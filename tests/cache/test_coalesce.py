"""Coalesce and its keys: templates, callables, context keys and the default key."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import resilient as rs
from resilient.core.context import Context
from resilient.core.keys import compile_key
from resilient.core.policy import operation_name
from resilient.testing import capture_events
from tests.conftest import gather_all, run_threads


async def acall(policy: rs.Policy, fn: Any, *args: Any) -> Any:
    """``policy.acall`` with its result typed as Any (mypy cannot solve its union parameter)."""
    result: Any = await policy.acall(fn, *args)
    return result


def ctx_for(fn: Any, *args: Any, **kwargs: Any) -> Context:
    return Context(operation_name(fn), fn, args, kwargs)


def product(id: int, *, lang: str = "en") -> str:
    return f"{id}-{lang}"


@pytest.mark.parametrize(
    ("template", "args", "kwargs", "expected"),
    [
        ("product:{id}", (7,), {}, "product:7"),
        ("product:{id}", (), {"id": 8}, "product:8"),
        ("p:{id}:{lang}", (7,), {}, "p:7:en"),
        ("p:{id}:{lang}", (7,), {"lang": "fr"}, "p:7:fr"),
        ("p:{id:04d}", (7,), {}, "p:0007"),
        ("p:{lang!r}", (7,), {}, "p:'en'"),
        ("{{literal}}:{id}", (7,), {}, "{literal}:7"),
    ],
)
def test_template_keys_bind_arguments_by_name(
    template: str, args: tuple[Any, ...], kwargs: dict[str, Any], expected: str
) -> None:
    """A template is formatted with the call's arguments bound to the function's parameters."""
    assert compile_key(template)(ctx_for(product, *args, **kwargs)) == expected


def test_template_fields_reach_attributes_and_items() -> None:
    """{user.id} and {ids[0]} format an attribute or an item of an argument."""

    class User:
        id = 3

    def fetch(user: User, ids: list[int]) -> None: ...

    assert compile_key("u:{user.id}:{ids[0]}")(ctx_for(fetch, User(), [9])) == "u:3:9"


def test_template_naming_a_missing_argument_is_a_type_error_at_decoration() -> None:
    """Decorating a function whose signature lacks a template field raises TypeError naming it."""
    with pytest.raises(TypeError, match=r"key template 'product:\{sku\}' names \{sku\}.*'sku'"):
        rs.Coalesce(key="product:{sku}")(product)
    with pytest.raises(TypeError, match="sku"):
        rs.Cache(ttl=1, key="product:{sku}")(product)


@pytest.mark.parametrize(("key", "error"), [("{0}", ValueError), ("{", ValueError), (42, TypeError)])
def test_bad_key_forms_name_the_parameter(key: object, error: type[Exception]) -> None:
    """A positional field, a malformed template, or a non-callable is refused naming key."""
    with pytest.raises(error, match="key"):
        rs.Coalesce(key=key)


def test_template_without_fields_is_a_constant_key() -> None:
    """A template with no field is one key for every call (a zero-argument function)."""
    assert compile_key("config")(ctx_for(product, 1)) == "config"


def test_callable_key_receives_the_function_arguments() -> None:
    """A key callable is called with the same arguments as the function."""
    key = compile_key(lambda id, lang="en": f"{lang}/{id}")
    assert key(ctx_for(product, 5, lang="de")) == "de/5"


def test_callable_key_must_return_a_str() -> None:
    """A key callable returning something else than a str is a TypeError."""
    with pytest.raises(TypeError, match="str"):
        compile_key(lambda id, **kw: id)(ctx_for(product, 5))


def test_context_key_receives_the_context() -> None:
    """rs.context_key(fn) hands fn the whole Context (operation, args, kwargs)."""
    key = compile_key(rs.context_key(lambda ctx: f"{ctx.operation}|{ctx.args[0]}"))
    assert key(ctx_for(product, 5)) == "product|5"


def test_default_key_is_the_qualified_name_and_simple_arguments() -> None:
    """Left out, the key is module:qualname plus the arguments' reprs; keyword arguments are sorted."""
    key = compile_key(None)
    assert key(ctx_for(product, 5)) == "tests.cache.test_coalesce:product(5,)"
    assert key(ctx_for(product, 5, "x")) == "tests.cache.test_coalesce:product(5, 'x')"
    assert key(ctx_for(product, 5, lang="x")) == "tests.cache.test_coalesce:product(5,)[('lang', 'x')]"
    assert key(ctx_for(product, (1, ("a", None)), lang=1.5)) == (
        "tests.cache.test_coalesce:product((1, ('a', None)),)[('lang', 1.5)]"
    )
    assert key(ctx_for(product, True)) != key(ctx_for(product, 1))


def test_decorator_fast_path_builds_the_same_default_key() -> None:
    """The decorator's Context-free key equals the Context path's key, so invalidate() finds it."""
    cache = rs.Cache(ttl=60)
    values = iter(["a", "b"])

    @cache
    def load(id: int, kind: str = "x") -> str:
        return next(values)

    assert load(1) == "a"
    assert cache.call(load.__wrapped__, 1) == "a"
    cache.invalidate(f"{__name__}:{load.__qualname__}(1,)")
    assert load(1) == "b"


@pytest.mark.parametrize("arg", [[1], {"a": 1}, object(), (1, [2])])
def test_default_key_refuses_other_types_asking_for_key(arg: object) -> None:
    """Non-simple arguments make the default key raise TypeError asking for key=."""
    with pytest.raises(TypeError, match="pass key="):
        compile_key(None)(ctx_for(product, arg))
    with pytest.raises(TypeError, match="pass key="):
        compile_key(None)(ctx_for(product, 1, lang=arg))


def test_default_key_refuses_bound_methods() -> None:
    """A bound method's instance is not in its arguments, so the default key asks for key=."""

    class Repo:
        def load(self, id: int) -> int:
            return id

    with pytest.raises(TypeError, match="bound method"):
        rs.Coalesce().call(Repo().load, 1)


def test_coalesce_threads_share_one_call_and_emit_joined() -> None:
    """Concurrent threads with one key make one call; each joiner emits coalesce.joined."""
    policy = rs.Coalesce(key="item:{id}")
    calls = 0
    joined = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "coalesce.joined" and policy.stats()["joined"] == 9:
            joined.set()

    @policy
    def load(id: int) -> str:
        nonlocal calls
        calls += 1
        assert joined.wait(10)
        return f"item {id}"

    rs.add_listener(on_event)
    try:
        with capture_events() as events:
            results = run_threads(10, lambda i: load(1))
    finally:
        rs.remove_listener(on_event)
    assert results == ["item 1"] * 10
    assert calls == 1
    assert [e["key"] for e in events if e["event"] == "coalesce.joined"] == ["item:1"] * 9
    assert policy.stats() == {"calls": 10, "executions": 1, "joined": 9}


async def test_coalesce_tasks_share_one_call_per_key() -> None:
    """Concurrent tasks share one call per key; different keys run separately."""
    policy = rs.Coalesce()
    calls: list[int] = []
    release = asyncio.Event()

    @policy
    async def load(id: int) -> int:
        calls.append(id)
        await release.wait()
        return id * 10

    async def opener() -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()

    results = await gather_all(*(load(i % 2) for i in range(20)), opener())
    assert results[:20] == [(i % 2) * 10 for i in range(20)]
    assert sorted(calls) == [0, 1]


async def test_coalesce_acall_and_call_share_the_policy() -> None:
    """call and acall run through the same policy and its counters."""
    policy = rs.Coalesce(key=lambda x: str(x))

    async def double(x: int) -> int:
        return 2 * x

    assert await acall(policy, double, 2) == 4
    assert policy.call(lambda x: 3 * x, 2) == 6
    assert policy.stats()["calls"] == 2


def test_a_context_subclass_with_a_key_supplies_the_default_key() -> None:
    """An integration's Context subclass carrying ``key`` sets the default key (no key= needed)."""

    class RequestContext(Context):
        __slots__ = ("key",)

        def __init__(self, key: str, *args: Any) -> None:
            super().__init__(*args)
            self.key = key

    cache = rs.Cache(ttl=60)
    request = object()  # not a simple type: the plain default key would refuse it
    first = RequestContext("GET example.org/a", "GET example.org/a", lambda r: "a", (request,))
    assert cache.run(first) == "a"
    again = RequestContext("GET example.org/a", "GET example.org/a", lambda r: "other", (request,))
    assert cache.run(again) == "a"
    cache.invalidate("GET example.org/a")
    assert cache.run(again) == "other"
