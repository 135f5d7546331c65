"""Events: every decision a policy takes is told to structlog and to listeners.

Events are named ``policy.event`` (``retry.attempt``, ``breaker.opened``, ...)
and logged on the structlog logger ``"resilient"``. Listeners receive the same
event as a plain ``dict`` whose ``"event"`` key holds the name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["add_listener", "emit", "remove_listener"]

Listener = Callable[[dict[str, Any]], None]

_logger = structlog.get_logger("resilient")
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
        "cache.decode_error",
        "cache.encode_error",
        "token.refresh_failed",
    }
)
_INFO = frozenset({"breaker.half_open", "breaker.closed", "cache.refreshed", "token.refreshed"})


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


def emit(event: str, /, **fields: Any) -> None:
    """Tell structlog and every listener that ``event`` happened."""
    if event in _WARNING:
        _logger.warning(event, **fields)
    elif event in _INFO:
        _logger.info(event, **fields)
    else:
        _logger.debug(event, **fields)
    listeners = _listeners
    if listeners:
        record = {"event": event, **fields}
        for listener in listeners:
            try:
                listener(dict(record))
            except Exception:  # a broken listener must not break the call it observes
                _logger.exception("listener.failed", listener=repr(listener))
