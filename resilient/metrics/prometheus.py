"""Prometheus metrics for watched policies, on prometheus_client (extra ``prometheus``)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..core.events import add_listener, remove_listener
from .collect import EVENTS, FAMILIES, ORIGIN_DURATION, ORIGIN_ERRORS, EventCounts, Family, Watched, caches, samples

__all__ = ["BUCKETS", "Prometheus"]

#: Origin-duration histogram buckets (seconds): 1 ms to 30 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

Observer = Callable[[float, BaseException | None], None]


def _require() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            'resilient.metrics.Prometheus needs prometheus_client: pip install "resilient[prometheus]"'
        ) from exc
    return prometheus_client


def check_name(name: object, watched: dict[str, Watched], target: object) -> str:
    """A watch name: a non-empty string, not already watching another object."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(getattr(target, "stats", None)):
        raise TypeError(f"policy must be a resilient policy (or anything with stats()), got {target!r}")
    known = watched.get(name)
    if known is not None and known.target is not target:
        raise ValueError(f"name {name!r} already watches {known.target!r}")
    return name


class Prometheus:
    """Export watched policies' counters, their origin calls' durations and event counts to Prometheus.

    Counters and gauges are read from each policy's ``stats()`` when the
    registry is scraped (a custom collector), so a call pays nothing extra;
    events are counted by a listener; origin calls (a cache's loads, an HTTP
    transport's attempts with ``observe=metrics.origin(name)``) feed the
    ``<namespace>_origin_duration_seconds`` histogram. Labels are bounded:
    ``name`` (as watched), ``policy`` (its place in the pipeline), ``outcome``,
    ``reason``. ``docs/events.md`` and the README ("Watch for the herd") list
    the metrics.

    Args:
        registry: a ``prometheus_client.CollectorRegistry`` (default: the global ``REGISTRY``).
        namespace: the prefix of every metric name (``resilient_retries_total``).

    Raises:
        ImportError: without prometheus_client (``pip install "resilient[prometheus]"``).

    .. versionadded:: 0.2
    """

    def __init__(self, registry: Any = None, *, namespace: str = "resilient") -> None:
        client = _require()
        if not isinstance(namespace, str) or not _NAME.match(namespace):
            raise ValueError(f"namespace must be a Prometheus metric name prefix, got {namespace!r}")
        self.namespace = namespace
        self.registry = client.REGISTRY if registry is None else registry
        from prometheus_client import core

        self._core = core
        self._lock = threading.Lock()
        self._watched: dict[str, Watched] = {}
        self._observed: set[tuple[int, str]] = set()  # (id(cache), name) already timed
        self._events = EventCounts()
        self._collector = _Collector(self)
        self.registry.register(self._collector)
        self._duration = client.Histogram(
            self._metric(ORIGIN_DURATION),
            ORIGIN_DURATION.help,
            ORIGIN_DURATION.labels,
            registry=self.registry,
            buckets=BUCKETS,
        )
        self._errors = client.Counter(
            self._metric(ORIGIN_ERRORS), ORIGIN_ERRORS.help, ORIGIN_ERRORS.labels, registry=self.registry
        )
        add_listener(self._events)

    def _metric(self, family: Family) -> str:
        return f"{self.namespace}_{family.name.replace('.', '_')}"

    def watch(self, policy: Any, name: str) -> Any:
        """Export ``policy``'s metrics labelled ``name=name``; returns ``policy``.

        Any ``rs.Cache`` inside it (pipelines and per-key partitions included)
        reports its origin calls' durations from now on.
        """
        with self._lock:
            check_name(name, self._watched, policy)
            watched = self._watched[name] = Watched(name, policy)
        self._time_caches(watched)
        return policy

    def _time_caches(self, watched: Watched) -> None:
        for place, cache in caches(watched):
            with self._lock:
                mark = (id(cache), watched.name)
                if mark in self._observed:
                    continue
                self._observed.add(mark)
            cache.observe_origin(self.origin(watched.name, policy=place))

    def origin(self, name: str, *, policy: str = "http") -> Observer:
        """An ``observe(seconds, error)`` callable feeding the origin histogram under ``name``.

        Give it to a transport: ``rs.http.client(p, observe=metrics.origin("api"))``.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        ok = self._duration.labels(name, policy, "ok").observe
        failed = self._duration.labels(name, policy, "error").observe
        errors = self._errors

        def observe(seconds: float, error: BaseException | None) -> None:
            if error is None:
                ok(seconds)
            else:
                failed(seconds)
                errors.labels(name, policy, type(error).__name__).inc()

        return observe

    def unwatch(self, name: str) -> None:
        """Stop exporting what ``name`` watches (a cache keeps timing into the histogram)."""
        with self._lock:
            self._watched.pop(name, None)

    def close(self) -> None:
        """Stop counting events and remove this exporter's metrics from the registry."""
        remove_listener(self._events)
        for collector in (self._collector, self._duration, self._errors):
            try:
                self.registry.unregister(collector)
            except KeyError:  # already removed
                pass

    def _families(self) -> Iterator[Any]:
        """The metric families of one scrape (called by the registry)."""
        core = self._core
        with self._lock:
            watched = list(self._watched.values())
        by_family: dict[str, list[tuple[dict[str, str], float]]] = {}
        for item in watched:
            for name, pairs, value in samples(item):
                by_family.setdefault(name, []).append((dict(pairs), value))
        for family in FAMILIES.values():
            points = by_family.get(family.name)
            if not points:
                continue
            kind = core.CounterMetricFamily if family.kind == "counter" else core.GaugeMetricFamily
            metric = kind(self._metric(family), family.help, labels=family.labels)
            for labels, value in points:
                metric.add_metric([labels[label] for label in family.labels], value)
            yield metric
        counts = self._events.snapshot()
        if counts:
            metric = core.CounterMetricFamily(self._metric(EVENTS), EVENTS.help, labels=EVENTS.labels)
            for labelvalues, value in sorted(counts.items()):
                metric.add_metric(labelvalues, value)
            yield metric

    def _describe(self) -> Iterator[Any]:
        core = self._core
        for family in (*FAMILIES.values(), EVENTS):
            kind = core.CounterMetricFamily if family.kind == "counter" else core.GaugeMetricFamily
            yield kind(self._metric(family), family.help, labels=family.labels)

    def __repr__(self) -> str:
        return f"Prometheus(namespace={self.namespace!r}, watching={sorted(self._watched)!r})"


class _Collector:
    """The registry's view of a :class:`Prometheus` (collect at scrape time)."""

    def __init__(self, owner: Prometheus) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Any]:
        return self._owner._families()

    def describe(self) -> Iterator[Any]:
        return self._owner._describe()
