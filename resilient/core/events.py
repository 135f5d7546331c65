"""Events: every decision a policy takes is told to structlog and to listeners.

Events are named ``policy.event`` (``retry.attempt``, ``breaker.opened``, ...)
and logged on the structlog logger ``"resilient"``. Listeners receive the same
event as a plain ``dict`` whose ``"event"`` key holds the name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = ["add_listener", "emit", "quiet_logs", "remove_listener"]

Listener = Callable[[dict[str, Any]], None]

_listeners: tuple[Listener, ...] = ()
_lock = threading.Lock()

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
    }
)
_INFO = frozenset({"redis.recovered", "breaker.half_open", "breaker.closed", "cache.refreshed", "token.refreshed"})


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


def emit(event: str, /, **fields: Any) -> None:
    """Tell structlog and every listener that ``event`` happened."""
    logger = _logger()
    if event in _WARNING:
        logger.warning(event, **fields)
    elif event in _INFO:
        logger.info(event, **fields)
    else:
        logger.debug(event, **fields)
    listeners = _listeners
    if listeners:
        record = {"event": event, **fields}
        for listener in listeners:
            try:
                listener(dict(record))
            except Exception:  # a broken listener must not break the call it observes
                logger.exception("listener.failed", listener=repr(listener))


class _Silent:
    """A logger that drops everything (stands in for structlog inside :func:`quiet_logs`)."""

    def _drop(self, *args: Any, **kwargs: Any) -> None:
        return None

    debug = info = warning = error = exception = _drop


_SILENT = _Silent()


def _silent_logger() -> Any:
    return _SILENT


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Within the block the library's events are not logged (a simulated herd emits
    hundreds of thousands); listeners still receive them."""
    global _logger
    saved = _logger
    _logger = _silent_logger
    try:
        yield
    finally:
        _logger = saved
