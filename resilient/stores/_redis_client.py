"""RedisStore's clients: accepted by duck typing (redis-py, valkey-py, plain or Cluster), checked, sorted.

Also the settings of a sync client that could block one call longer than the
store's timeout (reported at construction), and the ``ImportError`` naming the
extra when redis-py is missing.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

__all__ = [
    "EXTRA",
    "check_bytes_client",
    "client_error",
    "client_kinds",
    "redis_missing",
    "sorted_clients",
    "unblocked_settings",
    "warn_unbounded",
]

EXTRA = 'pip install "resilient[redis]"'


def redis_missing() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return True
    return False


def client_error(name: str, client: object, want: str) -> Exception:
    if redis_missing():
        return ImportError(f"RedisStore needs redis-py (or a valkey-py client): {EXTRA}")
    return TypeError(f"{name} must be {want} (redis-py or valkey-py), got {client!r}")


def client_kinds() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type[BaseException], ...]]:
    """(redis-py sync client types, asyncio client types, errors meaning unreachable); imports redis lazily.

    For stores that check by type (the write buffer's stream queue); RedisStore itself duck-types.
    """
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

    sync = (redis.Redis, redis.cluster.RedisCluster)
    asyn = (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)
    failures = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
    return sync, asyn, failures


def client_kind(client: Any) -> str | None:
    """``"async"``, ``"sync"``, or None for something that is not a Redis client.

    Duck-typed (``execute_command`` and ``register_script``), so redis-py and
    valkey-py clients, plain or Cluster, are all accepted.
    """
    execute = getattr(client, "execute_command", None)
    if not callable(execute) or not callable(getattr(client, "register_script", None)):
        return None
    return "async" if inspect.iscoroutinefunction(execute) else "sync"


def check_bytes_client(name: str, client: Any) -> None:
    """Refuse a client that decodes replies to str: records are bytes."""
    encoder = getattr(client, "get_encoder", None)
    if callable(encoder) and getattr(encoder(), "decode_responses", False):
        raise ValueError(f"{name} must be created with decode_responses=False (records are bytes), got {client!r}")


def _connection_kwargs(client: Any) -> dict[str, Any]:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if kwargs is None:  # a Cluster client keeps them on its nodes manager
        kwargs = getattr(getattr(client, "nodes_manager", None), "connection_kwargs", None)
    return kwargs if isinstance(kwargs, dict) else {}


def _retries(client: Any, kwargs: dict[str, Any]) -> int:
    retry = kwargs.get("retry") or getattr(client, "retry", None)
    if retry is None:
        get_retry = getattr(client, "get_retry", None)
        retry = get_retry() if callable(get_retry) else None
    count = getattr(retry, "_retries", 0)
    return count if isinstance(count, int) else 0


def unblocked_settings(client: Any, timeout: float) -> list[str]:
    """The settings of a sync ``client`` that could block one call longer than ``timeout`` seconds."""
    kwargs = _connection_kwargs(client)
    found = []
    for setting in ("socket_timeout", "socket_connect_timeout") if kwargs else ():
        value = kwargs.get(setting)
        if value is None or value > timeout:
            found.append(f"{setting}={value!r}")
    retries = _retries(client, kwargs)
    if retries > 0:
        found.append(f"retry={retries} retries")
    return found


def sorted_clients(client: Any, aclient: Any) -> tuple[Any, Any]:
    """(sync client, asyncio client), checked; an asyncio ``client`` is taken as ``aclient``."""
    kind = None if client is None else client_kind(client)
    if kind == "async":
        if aclient is not None:
            raise TypeError(f"client is an asyncio client and aclient is given too: pass a sync client, got {client!r}")
        client, aclient = None, client
    elif client is not None and kind is None:
        raise client_error("client", client, "a Redis client (sync or asyncio)")
    if aclient is not None and client_kind(aclient) != "async":
        raise client_error("aclient", aclient, "an asyncio Redis client")
    if client is None and aclient is None:
        if redis_missing():
            raise ImportError(f"RedisStore needs redis-py (or a valkey-py client): {EXTRA}")
        raise TypeError("RedisStore needs a client: a redis.Redis, a redis.asyncio.Redis, or both (aclient=)")
    for name, c in (("client", client), ("aclient", aclient)):
        if c is not None:
            check_bytes_client(name, c)
    return client, aclient


def warn_unbounded(client: Any, timeout: float) -> None:
    """Warn if the sync client's own settings could hold a caller past ``timeout``."""
    settings = unblocked_settings(client, timeout)
    if settings:
        warnings.warn(
            f"RedisStore(timeout={timeout!r}): the sync client's {', '.join(settings)} could block a caller "
            f"longer than the store's timeout; create it with socket_timeout and socket_connect_timeout "
            f"<= {timeout!r} and retry=Retry(NoBackoff(), 0), or use RedisStore.from_url()",
            RuntimeWarning,
            stacklevel=3,
        )
