"""Events: every decision a policy takes is told to the log and to listeners.

Events are named ``policy.event`` (``retry.attempt``, ``breaker.opened``, ...).
Quiet by default: when the application configured structlog
(``structlog.is_configured()``) they go to the structlog logger
``"resilient"``; otherwise to the stdlib logger ``logging.getLogger("resilient")``,
which carries a ``NullHandler``, so an unconfigured program prints nothing and
``logging.basicConfig(level=logging.DEBUG)`` shows every event. A stdlib record's
message reads ``event key=value ...``; the record also carries the name as
``resilient_event`` and the fields as ``resilient_fields`` (for a formatter or
filter). Listeners receive each event as a plain ``dict`` whose ``"event"`` key
holds the name, whatever the route.

One schema (``docs/events.md`` lists every event and field): every event
carries ``event``, ``policy`` (the policy kind), ``operation`` and ``key`` (the
partition or cache key, else None; a policy made by ``PerKey`` passes its
partition's key);
failures carry ``error`` (the exception's type name) and ``error_message``
(its text, cut to 200 characters, URLs without query or credentials), and a
failure that is an HTTP result carries ``status``. :func:`emit` is the one
place that builds this shape from what an emit site hands it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import structlog

__all__ = ["add_listener", "emit", "failure", "level_of", "quiet_logs", "remove_listener"]

Listener = Callable[[dict[str, Any]], None]

_listeners: tuple[Listener, ...] = ()
_lock = threading.Lock()
_muted = 0

#: The stdlib route (used while structlog is not configured): silent unless the
#: application configures logging.
stdlib_logger = logging.getLogger("resilient")
stdlib_logger.addHandler(logging.NullHandler())

# Routine events go out at debug level; state changes at info; the ones that
# mean a caller is about to see a failure at warning.
_WARNING = frozenset(
    {
        "retry.gave_up",
        "retry.budget_exhausted",
        "breaker.opened",
        "cache.store_error",
        "redis.error",
        "cache.refresh_failed",
        "cache.decode_error",
        "cache.encode_error",
        "token.refresh_failed",
        "token.store_error",
        "ratelimit.store_error",
        "redis.release_failed",
        "buffer.dead_lettered",
        "buffer.dead_letter_failed",
        "buffer.decode_error",
        "buffer.store_error",
        "buffer.worker_error",
    }
)
_INFO = frozenset(
    {
        "redis.recovered",
        "redis.near_down",
        "redis.near_up",
        "breaker.half_open",
        "breaker.closed",
        "cache.refreshed",
        "token.refreshed",
        "buffer.local",
        "buffer.forwarded",
        "buffer.claimed",
    }
)
_LEVELS: dict[str, int] = {**dict.fromkeys(_INFO, logging.INFO), **dict.fromkeys(_WARNING, logging.WARNING)}
_METHODS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


def level_of(event: str) -> int:
    """The stdlib level ``event`` is logged at (``logging.DEBUG``, ``INFO`` or ``WARNING``)."""
    return _LEVELS.get(event, logging.DEBUG)


#: The policy kind of an event whose name does not begin with it.
_POLICY_OF_PREFIX: Final = {"ratelimit": "rate_limit", "shed": "shedder", "redis": "redis_store"}

#: ``error_message`` is cut to this many characters.
MESSAGE_LIMIT: Final = 200

# A URL's userinfo (``user:pass@``) and its query/fragment never reach an event.
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s@'\"]*@)?(?P<rest>[^\s?#'\"]*)(?:[?#][^\s'\"]*)?")

_ABSENT: Final[Any] = object()


def _message(exc: BaseException) -> str:
    text = str(exc)
    if "://" in text:
        text = _URL.sub(r"\g<scheme>\g<rest>", text)
    return text[:MESSAGE_LIMIT]


def failure(error: BaseException | None = None, value: object = None) -> dict[str, Any]:
    """The failure fields of an outcome: its exception, or the HTTP status of a failed result.

    ``emit("retry.gave_up", ..., **failure(outcome.error, outcome.value))``: an
    exception becomes ``error`` + ``error_message``; a result that is an HTTP
    response (it has an integer ``status_code``) adds its ``status``.
    """
    fields: dict[str, Any] = {"error": error}
    if error is None:
        status = getattr(value, "status_code", None)
        if isinstance(status, int):
            fields["status"] = status
    return fields


def add_listener(callback: Listener) -> None:
    """Call ``callback(event_dict)`` for every event from now on."""
    global _listeners
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    with _lock:
        _listeners = (*_listeners, callback)


def remove_listener(callback: Listener) -> None:
    """Stop calling ``callback``; a callback that was never added is ignored."""
    global _listeners
    with _lock:
        items = list(_listeners)
        if callback in items:
            items.remove(callback)
        _listeners = tuple(items)


_bound: tuple[tuple[object, ...], Any] | None = None


def _logger() -> Any:
    """The structlog logger ``"resilient"``, bound once per structlog configuration.

    structlog's lazy proxy re-binds on every call (about 10 us); this keeps one
    bound logger and binds again only when ``structlog.configure`` changed.
    """
    global _bound
    config = structlog.get_config()
    signature = (
        id(config["processors"]),
        config["wrapper_class"],
        config["logger_factory"],
        config["context_class"],
    )
    cached = _bound
    if cached is not None and cached[0] == signature:
        return cached[1]
    logger = structlog.get_logger("resilient").bind()
    _bound = (signature, logger)
    return logger


def _schema(
    event: str, policy: str | None, operation: str | None, key: Any, error: Any, fields: dict[str, Any]
) -> dict[str, Any]:
    """The event's fields in the one schema (module docstring)."""
    if policy is None:
        prefix = event.partition(".")[0]
        policy = _POLICY_OF_PREFIX.get(prefix, prefix)
    out: dict[str, Any] = {"policy": policy, "operation": operation, "key": key}
    if error is not _ABSENT:
        if isinstance(error, BaseException):
            out["error"], out["error_message"] = type(error).__name__, _message(error)
        else:  # None (a result failure) or a type name already
            out["error"], out["error_message"] = error, fields.pop("error_message", None)
    out.update(fields)
    return out


def emit(
    event: str,
    /,
    *,
    operation: str | None = None,
    key: Any = None,
    error: BaseException | str | None = _ABSENT,
    policy: str | None = None,
    **fields: Any,
) -> None:
    """Tell the log (structlog if configured, else stdlib ``logging``) and every listener that ``event`` happened.

    Args:
        event: ``policy.event``.
        operation: the call's operation (``Context.operation``).
        key: the partition or cache key (a policy's ``partition`` inside ``PerKey``).
        error: for failures: the exception (or its type name; ``None`` for a
            failed result, with ``status=`` for an HTTP one).
        policy: the policy kind, when the event's prefix is not it.
        fields: the event's own fields (``docs/events.md``).
    """
    fields = _schema(event, policy, operation, key, error, fields)
    if not _muted:
        level = _LEVELS.get(event, logging.DEBUG)
        if _is_configured():
            getattr(_logger(), _METHODS[level])(event, **fields)
        elif _enabled(level):
            _log(level, event, fields)
    listeners = _listeners
    if listeners:
        record = {"event": event, **fields}
        for listener in listeners:
            try:
                listener(dict(record))
            except Exception:  # a broken listener must not break the call it observes
                if not _muted:
                    _log(logging.ERROR, "listener.failed", {"listener": repr(listener)}, exc_info=True)


class _Line:
    """A stdlib record's message, rendered only if a handler formats it."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: dict[str, Any]) -> None:
        self.event = event
        self.fields = fields

    def __str__(self) -> str:
        if not self.fields:
            return self.event
        return self.event + " " + " ".join(f"{k}={v!r}" for k, v in self.fields.items())


def _log(level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
    if structlog.is_configured():
        getattr(_logger(), "exception" if exc_info else _METHODS[level])(event, **fields)
    elif stdlib_logger.isEnabledFor(level):
        extra = {"resilient_event": event, "resilient_fields": fields}
        stdlib_logger.log(level, _Line(event, fields), exc_info=exc_info, extra=extra)


_is_configured = structlog.is_configured
_enabled = stdlib_logger.isEnabledFor


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Within the block the library's events are not logged (either route); listeners
    still receive them. For a simulated herd emitting hundreds of thousands of events
    (the lab). Process-wide while any block is open.
    """
    global _muted
    with _lock:
        _muted += 1
    try:
        yield
    finally:
        with _lock:
            _muted -= 1
