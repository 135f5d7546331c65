"""PerKey: one inner policy per key (a breaker per host), created lazily, LRU-bounded."""

from __future__ import annotations

import inspect
import itertools
import string
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from .._machines._validate import whole
from ..core.context import Context
from ..core.policy import AsyncStep, Policy, SyncStep
from ..core.stats import Counter

__all__ = ["PerKey"]

_bind_ids = itertools.count()


class _Slot:
    __slots__ = ("policy", "steps")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.steps: dict[int, Any] = {}  # bound step per (PerKey.bind/abind call)


def _template_key(template: str) -> Callable[[Context], str]:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    signatures: dict[Any, inspect.Signature | None] = {}

    def key(ctx: Context) -> str:
        fn = ctx.fn
        try:
            sig = signatures[fn]
        except KeyError:
            try:
                sig = inspect.signature(fn)
            except (TypeError, ValueError):
                sig = None
            if len(signatures) < 1024:
                signatures[fn] = sig
        if sig is None:
            arguments = dict(ctx.kwargs)
        else:
            bound = sig.bind(*ctx.args, **ctx.kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
        missing = fields - arguments.keys()
        if missing:
            raise TypeError(f"PerKey key template {template!r} names {sorted(missing)} not among the call's arguments")
        return template.format(**arguments)

    return key


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` requires one positional argument (a factory that wants the key)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) == 1


def _mark(policy: Policy, key: Any) -> None:
    """Tell ``policy`` (and a pipeline's policies) the partition it serves: its events carry ``key``.

    Set once, when the policy is made, so a call pays nothing for it; a policy
    the factory shares between keys keeps the first key.
    """
    if policy.partition is None:
        policy.partition = key
    for inner in getattr(policy, "policies", ()):
        _mark(inner, key)


class PerKey(Policy):
    """Run each call through the policy of its key, created by ``factory()`` on first use.

    A breaker and a bulkhead per host, a rate limiter per tenant: each key gets
    its own policy (and so its own state), made lazily; at most ``maxsize`` are
    kept, the least recently used dropped first (a dropped key starts afresh).

    Args:
        factory: ``() -> Policy``, or ``(key) -> Policy`` to use the key (say, as a
            breaker's ``name``, which events carry); called once per new key.
            A ``Pipeline`` is a policy.
        key: how a call's key is found, either
            * a callable receiving the call's :class:`~resilient.Context` and
              returning a string (``lambda ctx: ctx.operation`` keys by function,
              or by ``"GET host"`` through the httpx transports), or
            * a template formatted with the call's arguments bound to the
              function's parameter names, defaults applied:
              ``key="{host}"`` for ``def fetch(host, path="/")``.
        maxsize: keys kept at most (>= 1).

    .. versionadded:: 0.1
    """

    kind: ClassVar[str] = "per_key"

    def __init__(
        self,
        factory: Callable[[], Policy] | Callable[[Any], Policy],
        key: str | Callable[[Context], Any],
        *,
        maxsize: int = 1024,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be a callable returning a policy, got {factory!r}")
        self.factory = factory
        self._factory_takes_key = _takes_one_argument(factory)
        if isinstance(key, str):
            self._key = _template_key(key)
        elif callable(key):
            self._key = key
        else:
            raise TypeError(f"key must be a template string or a callable taking the Context, got {key!r}")
        self.maxsize = whole("maxsize", maxsize, minimum=1)
        self._slots: OrderedDict[Any, _Slot] = OrderedDict()
        self._lock = threading.Lock()
        self._created = Counter()
        self._evicted = Counter()

    def _slot(self, key: Any) -> _Slot:
        slots = self._slots
        slot = slots.get(key)  # a known key without the lock: OrderedDict's get and
        if slot is not None:  # move_to_end are each atomic under the GIL
            try:
                slots.move_to_end(key)
                return slot
            except KeyError:  # evicted meanwhile by another key's creation: made again below
                pass
        # outside the lock: a factory may be slow
        policy = self.factory(key) if self._factory_takes_key else self.factory()  # type: ignore[call-arg]
        if not isinstance(policy, Policy):
            raise TypeError(f"PerKey factory must return a resilient policy, got {policy!r}")
        _mark(policy, key)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:  # another caller may have made it meanwhile: keep theirs
                slot = self._slots[key] = _Slot(policy)
                self._created.incr()
                while len(self._slots) > self.maxsize:
                    self._slots.popitem(last=False)
                    self._evicted.incr()
            else:
                self._slots.move_to_end(key)
            return slot

    def get(self, key: Any) -> Policy | None:
        """The policy of ``key`` if it exists (not created, not marked as used)."""
        with self._lock:
            slot = self._slots.get(key)
        return None if slot is None else slot.policy

    def keys(self) -> list[Any]:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._slots)

    def bind(self, inner: SyncStep) -> SyncStep:
        bind_id = next(_bind_ids)
        key_of, slot_of = self._key, self._slot

        def per_key_step(ctx: Context) -> Any:
            slot = slot_of(key_of(ctx))
            step = slot.steps.get(bind_id)
            if step is None:
                step = slot.steps[bind_id] = slot.policy.bind(inner)
            return step(ctx)

        return per_key_step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        bind_id = next(_bind_ids)
        key_of, slot_of = self._key, self._slot

        def per_key_step(ctx: Context) -> Awaitable[Any]:
            # Not a coroutine of its own: it hands back the key's step's awaitable (one
            # coroutine frame less on every resumption of the call).
            slot = slot_of(key_of(ctx))
            step = slot.steps.get(bind_id)
            if step is None:
                step = slot.steps[bind_id] = slot.policy.abind(inner)
            return step(ctx)

        return per_key_step

    def stats(self) -> dict[str, Any]:
        with self._lock:
            items = list(self._slots.items())
        return {
            "keys": len(items),
            "created": self._created.value,
            "evicted": self._evicted.value,
            "per_key": {str(k): slot.policy.stats() for k, slot in items},
        }

    def __repr__(self) -> str:
        return f"PerKey({self.factory!r}, maxsize={self.maxsize})"
