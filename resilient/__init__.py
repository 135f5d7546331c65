"""resilient: small policies that keep outbound calls alive and the systems behind them standing."""

from . import http  # noqa: F401 (the rs.http namespace: rs.http.client, rs.http.RETRYABLE, ...)
from ._machines.backoff import Backoff, Constant, DecorrelatedJitter, EqualJitter, Exponential, FullJitter, jittered
from ._machines.cache import XFetch
from .buffer import RedisStreamQueue, WriteBuffer
from .cache.coalesce import Coalesce
from .cache.policy import Cache
from .cache.singleflight import SingleFlight
from .core.clock import Clock
from .core.context import Context
from .core.errors import (
    BufferFullError,
    BulkheadFullError,
    CacheLockTimeout,
    CircuitOpenError,
    LoadShedError,
    RateLimitedError,
    Rejected,
    ResilienceError,
    StoreUnavailable,
    TimeoutExceeded,
)
from .core.events import add_listener, remove_listener
from .core.keys import context_key
from .core.outcome import Outcome, Predicate, errors, results
from .core.pipeline import Pipeline, pipeline
from .core.policy import Policy
from .http import AsyncResilientTransport, ResilientTransport
from .policies.batch import Batch, BatchLoader
from .policies.breaker import CircuitBreaker
from .policies.bulkhead import Bulkhead
from .policies.fallback import Fallback
from .policies.once import OncePer
from .policies.perkey import PerKey
from .policies.ratelimit import RateLimiter
from .policies.retry import Retry, RetryBudget
from .policies.shedder import LoadShedder
from .policies.spread import Spread
from .policies.throttle import AdaptiveThrottle
from .policies.timeout import Timeout
from .stores.memory import MemoryStore
from .stores.near import NearCache
from .stores.redis import RedisStore
from .stores.serializers import JsonSerializer, PickleSerializer
from .tokens.auth import TokenAuth
from .tokens.provider import Token, TokenProvider

__version__ = "0.1.0.dev0"

__all__ = [
    "AdaptiveThrottle",
    "AsyncResilientTransport",
    "Backoff",
    "Batch",
    "BatchLoader",
    "BufferFullError",
    "Bulkhead",
    "BulkheadFullError",
    "Cache",
    "CacheLockTimeout",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Coalesce",
    "Constant",
    "Context",
    "DecorrelatedJitter",
    "EqualJitter",
    "Exponential",
    "Fallback",
    "FullJitter",
    "JsonSerializer",
    "LoadShedError",
    "LoadShedder",
    "MemoryStore",
    "NearCache",
    "OncePer",
    "Outcome",
    "PerKey",
    "PickleSerializer",
    "Pipeline",
    "Policy",
    "Predicate",
    "RateLimitedError",
    "RateLimiter",
    "RedisStore",
    "RedisStreamQueue",
    "Rejected",
    "ResilienceError",
    "ResilientTransport",
    "Retry",
    "RetryBudget",
    "SingleFlight",
    "Spread",
    "StoreUnavailable",
    "Timeout",
    "TimeoutExceeded",
    "Token",
    "TokenAuth",
    "TokenProvider",
    "WriteBuffer",
    "XFetch",
    "add_listener",
    "context_key",
    "errors",
    "jittered",
    "pipeline",
    "remove_listener",
    "results",
]
