"""What the metrics adapters export, read from ``stats()`` at collection time.

Both adapters (Prometheus, OpenTelemetry) export the same families, made here
without either library: :func:`samples` walks a watched policy (a pipeline's
policies, a ``PerKey``'s partitions, summed) and turns its ``stats()`` into
``(family, labels, value)``. Nothing here runs on a call's path: a hit pays
only for the counters the policies keep anyway.

Labels are bounded: ``name`` (the name given to ``watch``), ``policy`` (the
policy's place in its pipeline: ``retry``, ``breaker_2``, ...), ``outcome`` and
``reason`` (values fixed by the code, or exception type names).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "BREAKER_STATES",
    "EVENTS",
    "FAMILIES",
    "ORIGIN_DURATION",
    "ORIGIN_ERRORS",
    "EventCounts",
    "Family",
    "Watched",
    "event_labels",
    "samples",
]


@dataclass(frozen=True)
class Family:
    """One exported metric: ``name`` is dotted (``retry.calls``); adapters spell it their way."""

    name: str
    kind: str  # "counter" | "gauge"
    help: str
    labels: tuple[str, ...] = ("name", "policy")


_F = Family
FAMILIES: Final[dict[str, Family]] = {
    f.name: f
    for f in (
        _F("calls", "counter", "Calls through the policy (policies that count calls: retry, coalesce)."),
        _F(
            "outcomes",
            "counter",
            "Calls by how they ended: recovered/gave_up (retry), used (fallback), exceeded (timeout), "
            "failure (breaker).",
            ("name", "policy", "outcome"),
        ),
        _F("retries", "counter", "Retries made (attempts after the first)."),
        _F("retry.budget_exhausted", "counter", "Retries the retry budget refused."),
        _F(
            "rejections",
            "counter",
            "Calls refused without running, by reason: full/queue_timeout (bulkhead), open (breaker), "
            "rate_limited, shed, throttled.",
            ("name", "policy", "reason"),
        ),
        _F("breaker.state", "gauge", "Circuit state: 0 closed, 1 half open, 2 open (per host: the worst)."),
        _F("breaker.open", "gauge", "Circuits open now (per host: how many hosts)."),
        _F(
            "breaker.transitions",
            "counter",
            "Circuit transitions by the state entered: opened, half_opened, closed.",
            ("name", "policy", "outcome"),
        ),
        _F("bulkhead.in_use", "gauge", "Bulkhead slots in use."),
        _F("bulkhead.capacity", "gauge", "Bulkhead slots (max_concurrent)."),
        _F("bulkhead.queued", "gauge", "Calls waiting for a bulkhead slot."),
        _F("shedder.in_flight", "gauge", "Calls in flight through the load shedder."),
        _F("cache.hits", "counter", "Cache hits (fresh)."),
        _F("cache.misses", "counter", "Cache misses (loads of a missing key)."),
        _F("cache.stale_served", "counter", "Stale values served."),
        _F("cache.early_refreshes", "counter", "Early (XFetch) refreshes."),
        _F("cache.coalesced", "counter", "Callers that shared another caller's load."),
        _F("cache.origin_calls", "counter", "Calls the cache made to the origin."),
        _F("cache.origin_errors", "counter", "Origin calls of the cache that failed."),
        _F("cache.store_errors", "counter", "Store failures the cache rode out."),
        _F("token.refreshes", "counter", "Tokens fetched."),
        _F("token.refresh_failures", "counter", "Token fetches that failed."),
        _F("token.shared", "counter", "Tokens read from the shared store (fetched by another process)."),
        _F("buffer.pending", "gauge", "Write-buffer items not yet written."),
        _F("buffer.lag_seconds", "gauge", "Age of the oldest pending write-buffer item."),
        _F("buffer.written", "counter", "Write-buffer items written."),
        _F("buffer.batches", "counter", "Write-buffer batches written."),
        _F("buffer.retried", "counter", "Write-buffer batches retried."),
        _F("buffer.dead_lettered", "counter", "Write-buffer items given up (dead-lettered)."),
        _F("buffer.rejected", "counter", "Write-buffer puts refused (full)."),
    )
}

#: The origin-call duration histogram (observed on origin calls, never on hits).
ORIGIN_DURATION: Final = Family(
    "origin.duration_seconds",
    "histogram",
    "Duration of calls to the origin (cache loads and refreshes, HTTP attempts), by outcome ok/error.",
    ("name", "policy", "outcome"),
)
#: Origin calls that failed, by exception type (``PoolTimeout``: the connection pool ran dry).
ORIGIN_ERRORS: Final = Family(
    "origin.errors", "counter", "Origin calls that failed, by exception type.", ("name", "policy", "reason")
)
#: Events counted by the listener.
EVENTS: Final = Family(
    "events",
    "counter",
    "Events (docs/events.md) by policy kind and action (retry.attempt -> policy=retry, outcome=attempt); "
    "reason: the event's reason, else its error type, else its HTTP status.",
    ("policy", "outcome", "reason"),
)

BREAKER_STATES: Final = {"closed": 0, "half_open": 1, "open": 2}

_BUFFER_COUNTERS: Final = ("written", "batches", "retried", "dead_lettered", "rejected")

Sample = tuple[str, tuple[tuple[str, str], ...], float]


@dataclass(frozen=True)
class Watched:
    """A policy (or any object with ``stats()``) watched under ``name``."""

    name: str
    target: Any


def _kind(target: Any) -> str:
    """A policy's ``kind``; for other objects the snake-case class name (``TokenProvider`` -> ``token_provider``)."""
    kind = getattr(target, "kind", None)
    if isinstance(kind, str):
        return kind
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(target).__name__.lstrip("_")).lower()


def _leaf(kind: str, stats: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], float, str]]:
    """(family, extra labels, value, how to merge across partitions) for one policy's stats."""

    def num(key: str) -> float:
        value = stats.get(key, 0)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    if kind == "retry":
        yield "calls", {}, num("calls"), "sum"
        yield "retries", {}, num("retries"), "sum"
        yield "outcomes", {"outcome": "recovered"}, num("recovered"), "sum"
        yield "outcomes", {"outcome": "gave_up"}, num("gave_up"), "sum"
        budget = stats.get("budget")
        if isinstance(budget, dict):
            yield "retry.budget_exhausted", {}, float(budget.get("exhausted", 0)), "sum"
    elif kind == "breaker":
        state = stats.get("state")
        yield "breaker.state", {}, float(BREAKER_STATES.get(str(state), 0)), "max"
        yield "breaker.open", {}, 1.0 if state == "open" else 0.0, "sum"
        yield "rejections", {"reason": "open"}, num("rejected"), "sum"
        yield "outcomes", {"outcome": "failure"}, num("failures"), "sum"
        for outcome in ("opened", "half_opened", "closed"):
            yield "breaker.transitions", {"outcome": outcome}, num(outcome), "sum"
    elif kind == "bulkhead":
        yield "bulkhead.in_use", {}, num("in_use"), "sum"
        yield "bulkhead.capacity", {}, num("max_concurrent"), "sum"
        yield "bulkhead.queued", {}, num("queued"), "sum"
        yield "rejections", {"reason": "full"}, num("rejected_full"), "sum"
        yield "rejections", {"reason": "queue_timeout"}, num("rejected_queue_timeout"), "sum"
    elif kind == "cache":
        for key in ("hits", "misses", "stale_served", "early_refreshes", "coalesced", "origin_calls", "store_errors"):
            yield f"cache.{key}", {}, num(key), "sum"
        yield "cache.origin_errors", {}, num("errors"), "sum"
    elif kind == "coalesce":
        yield "calls", {}, num("calls"), "sum"
    elif kind == "fallback":
        yield "outcomes", {"outcome": "used"}, num("used"), "sum"
    elif kind == "timeout":
        yield "outcomes", {"outcome": "exceeded"}, num("exceeded"), "sum"
    elif kind == "rate_limit":
        yield "rejections", {"reason": "rate_limited"}, num("limited"), "sum"
    elif kind == "shedder":
        yield "shedder.in_flight", {}, num("in_flight"), "sum"
        yield "rejections", {"reason": "shed"}, num("shed"), "sum"
    elif kind == "throttle":
        yield "rejections", {"reason": "throttled"}, num("rejected"), "sum"
    elif kind == "token_provider" or {"fetches", "refresh_failures"} <= stats.keys():
        yield "token.refreshes", {}, num("fetches"), "sum"
        yield "token.refresh_failures", {}, num("refresh_failures"), "sum"
        yield "token.shared", {}, num("shared"), "sum"
    if {"pending", "lag_seconds"} <= stats.keys():  # a write buffer, read by its stats keys alone
        yield "buffer.pending", {}, num("pending"), "sum"
        yield "buffer.lag_seconds", {}, num("lag_seconds"), "max"
        for key in _BUFFER_COUNTERS:
            yield f"buffer.{key}", {}, num(key), "sum"


def _join(place: str, key: str) -> str:
    return key if not place else f"{place}.{key}"


def _walk(target: Any, place: str, partition: bool = False) -> Iterator[tuple[str, Any]]:
    """(place, policy) for every policy inside ``target``: pipelines unfolded, partitions each.

    A place is the policy's name in its pipeline's ``stats()`` (``breaker``,
    ``retry_2``), dotted under an enclosing pipeline; a ``PerKey``'s partitions
    share one place (their samples are summed), so a label never names a key.
    """
    inner = getattr(target, "policies", None)
    if isinstance(inner, tuple | list):  # a Pipeline: places as its stats() names them
        seen: set[str] = set()
        for policy in inner:
            kind = _kind(policy)
            key, n = kind, 2
            while key in seen:
                key, n = f"{kind}_{n}", n + 1
            seen.add(key)
            yield from _walk(policy, _join(place, key))
        return
    keys, get = getattr(target, "keys", None), getattr(target, "get", None)
    if _kind(target) == "per_key" and callable(keys) and callable(get):
        for key in keys():
            policy = get(key)
            if policy is not None:
                yield from _walk(policy, place, partition=True)
        return
    yield (_join(place, _kind(target)) if partition else place or _kind(target)), target


def samples(watched: Watched) -> list[Sample]:
    """Every sample of one watched policy, read from its ``stats()`` now."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for place, policy in _walk(watched.target, ""):
        stats = policy.stats()
        if not isinstance(stats, dict):
            continue
        for family, extra, value, how in _leaf(_kind(policy), stats):
            labels = (("name", watched.name), ("policy", place), *sorted(extra.items()))
            key = (family, labels)
            if key in merged:
                merged[key] = max(merged[key], value) if how == "max" else merged[key] + value
            else:
                merged[key] = value
    return [(family, labels, value) for (family, labels), value in merged.items()]


def caches(watched: Watched) -> Iterator[tuple[str, Any]]:
    """(place, cache) for every ``rs.Cache`` inside the watched policy (it times its origin calls)."""
    for place, policy in _walk(watched.target, ""):
        if callable(getattr(policy, "observe_origin", None)):
            yield place, policy


def event_labels(event: dict[str, Any]) -> tuple[str, str, str]:
    """``(policy, outcome, reason)`` of one event (bounded: see :data:`EVENTS`)."""
    name = str(event.get("event", ""))
    prefix, _, action = name.partition(".")
    policy = event.get("policy") or prefix
    reason = event.get("reason")
    if reason is None:
        reason = event.get("error")
    if reason is None and event.get("status") is not None:
        reason = str(event["status"])
    return str(policy), action, "" if reason is None else str(reason)


class EventCounts:
    """Counts events by :func:`event_labels` (a listener; read by the Prometheus collector)."""

    def __init__(self, on_event: Callable[[tuple[str, str, str]], None] | None = None) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._on_event = on_event

    def __call__(self, event: dict[str, Any]) -> None:
        labels = event_labels(event)
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + 1
        if self._on_event is not None:
            self._on_event(labels)

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)
