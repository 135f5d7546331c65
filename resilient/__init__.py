"""resilient: small policies that keep outbound calls alive and the systems behind them standing."""

from ._clock import Clock
from ._context import Context
from ._errors import (
    BulkheadFullError,
    CacheLockTimeout,
    CircuitOpenError,
    LoadShedError,
    RateLimitedError,
    Rejected,
    ResilienceError,
    TimeoutExceeded,
)
from ._events import add_listener, remove_listener
from ._machines.backoff import Backoff, Constant, DecorrelatedJitter, EqualJitter, Exponential, FullJitter, jittered
from ._outcome import Outcome, Predicate, errors, results
from ._pipeline import Pipeline, pipeline
from ._policy import Policy
from .policies.retry import Retry, RetryBudget

__version__ = "0.1.0.dev0"

__all__ = [
    "Backoff",
    "BulkheadFullError",
    "CacheLockTimeout",
    "CircuitOpenError",
    "Clock",
    "Constant",
    "Context",
    "DecorrelatedJitter",
    "EqualJitter",
    "Exponential",
    "FullJitter",
    "LoadShedError",
    "Outcome",
    "Pipeline",
    "Policy",
    "Predicate",
    "RateLimitedError",
    "Rejected",
    "ResilienceError",
    "Retry",
    "RetryBudget",
    "TimeoutExceeded",
    "add_listener",
    "errors",
    "jittered",
    "pipeline",
    "remove_listener",
    "results",
]
