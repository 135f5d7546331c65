"""OpenTelemetry metrics for watched policies, on opentelemetry-api (extra ``otel``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from .. import __version__
from ..core.events import add_listener, remove_listener
from .collect import EVENTS, FAMILIES, ORIGIN_DURATION, ORIGIN_ERRORS, EventCounts, Family, Watched, caches, samples
from .prometheus import BUCKETS, check_name

__all__ = ["OpenTelemetry"]

Observer = Callable[[float, BaseException | None], None]


def _require() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError as exc:
        raise ImportError(
            'resilient.metrics.OpenTelemetry needs opentelemetry-api: pip install "resilient[otel]"'
        ) from exc
    return metrics


def instrument_name(family: Family) -> str:
    """The OpenTelemetry name of a family: ``resilient.retries``, ``resilient.cache.hits``;
    a family in seconds drops the suffix (its unit says it): ``resilient.origin.duration``."""
    return f"resilient.{family.name.removesuffix('_seconds')}"


def _unit(family: Family) -> str:
    return "s" if family.name.endswith("_seconds") else ""


class OpenTelemetry:
    """Export watched policies' counters, origin-call durations and event counts through OpenTelemetry.

    The same metrics as :class:`~resilient.metrics.Prometheus`, as
    instruments of the meter ``"resilient"``: counters and gauges are
    observable instruments whose callbacks read ``stats()`` at collection
    time (a call pays nothing extra); events are counted by a listener;
    origin calls feed the histogram ``resilient.origin.duration`` (unit
    ``s``). Attributes are bounded: ``name``, ``policy``, ``outcome``, ``reason``.

    Args:
        meter_provider: an OpenTelemetry ``MeterProvider`` (default: the global one).

    Raises:
        ImportError: without opentelemetry-api (``pip install "resilient[otel]"``).

    .. versionadded:: 0.2
    """

    def __init__(self, meter_provider: Any = None) -> None:
        api = _require()
        provider = api.get_meter_provider() if meter_provider is None else meter_provider
        self.meter = provider.get_meter("resilient", __version__)
        self._api = api
        self._lock = threading.Lock()
        self._watched: dict[str, Watched] = {}
        self._observed: set[tuple[int, str]] = set()
        for family in FAMILIES.values():
            create = (
                self.meter.create_observable_counter if family.kind == "counter" else self.meter.create_observable_gauge
            )
            create(
                instrument_name(family), callbacks=[self._callback(family)], unit=_unit(family), description=family.help
            )
        try:
            self._duration = self.meter.create_histogram(
                instrument_name(ORIGIN_DURATION),
                unit="s",
                description=ORIGIN_DURATION.help,
                explicit_bucket_boundaries_advisory=list(BUCKETS),
            )
        except TypeError:  # opentelemetry-api before 1.23 takes no advisory buckets
            self._duration = self.meter.create_histogram(
                instrument_name(ORIGIN_DURATION), unit="s", description=ORIGIN_DURATION.help
            )
        self._errors = self.meter.create_counter(instrument_name(ORIGIN_ERRORS), description=ORIGIN_ERRORS.help)
        events = self.meter.create_counter(instrument_name(EVENTS), description=EVENTS.help)

        def count(labels: tuple[str, str, str]) -> None:
            events.add(1, dict(zip(EVENTS.labels, labels, strict=True)))

        self._events = EventCounts(on_event=count)
        add_listener(self._events)

    def _callback(self, family: Family) -> Callable[[Any], Iterable[Any]]:
        observation = self._api.Observation

        def observe(options: Any) -> Iterable[Any]:
            with self._lock:
                watched = list(self._watched.values())
            out = []
            for item in watched:
                for name, labels, value in samples(item):
                    if name == family.name:
                        out.append(observation(value, dict(labels)))
            return out

        return observe

    def watch(self, policy: Any, name: str) -> Any:
        """Export ``policy``'s metrics with ``name=name``; returns ``policy`` (see ``Prometheus.watch``)."""
        with self._lock:
            check_name(name, self._watched, policy)
            watched = self._watched[name] = Watched(name, policy)
        for place, cache in caches(watched):
            with self._lock:
                mark = (id(cache), name)
                if mark in self._observed:
                    continue
                self._observed.add(mark)
            cache.observe_origin(self.origin(name, policy=place))
        return policy

    def origin(self, name: str, *, policy: str = "http") -> Observer:
        """An ``observe(seconds, error)`` callable feeding the origin histogram under ``name``."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        record, errors = self._duration.record, self._errors
        ok = {"name": name, "policy": policy, "outcome": "ok"}
        failed = {"name": name, "policy": policy, "outcome": "error"}

        def observe(seconds: float, error: BaseException | None) -> None:
            if error is None:
                record(seconds, ok)
            else:
                record(seconds, failed)
                errors.add(1, {"name": name, "policy": policy, "reason": type(error).__name__})

        return observe

    def unwatch(self, name: str) -> None:
        """Stop exporting what ``name`` watches."""
        with self._lock:
            self._watched.pop(name, None)

    def close(self) -> None:
        """Stop counting events and exporting watched policies (instruments stay, empty)."""
        remove_listener(self._events)
        with self._lock:
            self._watched.clear()

    def __repr__(self) -> str:
        return f"OpenTelemetry(watching={sorted(self._watched)!r})"
