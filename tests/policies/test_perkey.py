"""PerKey: one inner policy per key, created lazily, LRU-bounded."""

from __future__ import annotations

import pytest

import resilient as rs
from resilient.testing import FakeClock


def breaker() -> rs.CircuitBreaker:
    return rs.CircuitBreaker(failure_threshold=1, clock=FakeClock())


def fetch(host: str, path: str = "/") -> str:
    if host == "down":
        raise ConnectionError(host)
    return f"{host}{path}"


def test_one_breaker_per_host_by_template() -> None:
    """A key template over the call's arguments gives each host its own breaker."""
    per_host = rs.PerKey(breaker, key="{host}")
    guarded = per_host(fetch)
    with pytest.raises(ConnectionError):
        guarded("down")
    with pytest.raises(rs.CircuitOpenError):
        guarded("down")
    assert guarded("up", path="/x") == "up/x"
    assert per_host.keys() == ["down", "up"]
    down = per_host.get("down")
    assert isinstance(down, rs.CircuitBreaker)
    assert down.state == "open"


def test_template_binds_positional_arguments_and_defaults() -> None:
    """The template sees positional arguments by parameter name, with defaults applied."""
    per_path = rs.PerKey(breaker, key="{host}{path}")
    per_path.call(fetch, "a")
    per_path.call(fetch, "a", "/b")
    assert per_path.keys() == ["a/", "a/b"]


def test_callable_key_receives_the_context() -> None:
    """A callable key receives the call's Context."""
    per_op = rs.PerKey(breaker, key=lambda ctx: ctx.operation)
    per_op.call(fetch, "a")
    assert per_op.keys() == ["fetch"]


async def test_async_calls_share_the_per_key_policies() -> None:
    """Async calls use the same per-key policies as sync ones."""
    per_host = rs.PerKey(breaker, key="{host}")

    async def afetch(host: str) -> str:
        raise ConnectionError(host)

    with pytest.raises(ConnectionError):
        per_host.call(fetch, "down")
    with pytest.raises(rs.CircuitOpenError):
        await per_host.acall(afetch, host="down")


def test_least_recently_used_keys_are_dropped_beyond_maxsize() -> None:
    """Beyond maxsize the least recently used key is dropped and later starts afresh."""
    made: list[rs.CircuitBreaker] = []

    def factory() -> rs.CircuitBreaker:
        made.append(breaker())
        return made[-1]

    per_host = rs.PerKey(factory, key="{host}", maxsize=2)
    for host in ["a", "b", "a", "c"]:
        per_host.call(fetch, host)
    assert per_host.keys() == ["a", "c"]
    assert per_host.stats()["evicted"] == 1
    per_host.call(fetch, "b")
    assert len(made) == 4


def test_a_template_naming_a_missing_argument_is_a_type_error() -> None:
    """A template field that is not a parameter raises TypeError naming it."""
    with pytest.raises(TypeError, match="tenant"):
        rs.PerKey(breaker, key="{tenant}").call(fetch, "a")


def test_the_factory_must_return_a_policy() -> None:
    """A factory returning something else raises TypeError."""
    with pytest.raises(TypeError, match="factory"):
        rs.PerKey(lambda: object(), key="{host}").call(fetch, "a")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "param"), [({"key": 3}, TypeError, "key"), ({"maxsize": 0}, ValueError, "maxsize")]
)
def test_bad_options(kwargs: dict[str, object], error: type[Exception], param: str) -> None:
    """Bad options raise at construction, naming the parameter."""
    options: dict[str, object] = {"key": "{host}", **kwargs}
    with pytest.raises(error, match=param):
        rs.PerKey(breaker, **options)  # type: ignore[arg-type]


def test_a_factory_taking_one_argument_receives_the_key() -> None:
    """A one-argument factory is called with the key, so each breaker can be named after it."""
    per_host = rs.PerKey(lambda host: rs.CircuitBreaker(name=host, clock=FakeClock()), key="{host}")
    per_host.call(fetch, "a")
    made = per_host.get("a")
    assert isinstance(made, rs.CircuitBreaker)
    assert made.name == "a"
