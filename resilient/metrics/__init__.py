"""Metrics for watched policies: Prometheus (extra ``prometheus``) and OpenTelemetry (extra ``otel``).

``resilient.metrics.Prometheus(registry=None, namespace="resilient")`` and
``resilient.metrics.OpenTelemetry(meter_provider=None)``, each with
``.watch(policy, name)``. Importing this package needs neither library;
constructing an exporter without its library raises ``ImportError`` naming
the extra to install.
"""

from .otel import OpenTelemetry
from .prometheus import Prometheus

__all__ = ["OpenTelemetry", "Prometheus"]
