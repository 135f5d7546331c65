"""Composition: policies applied outermost first."""

from __future__ import annotations

from typing import Any, ClassVar

from .policy import AsyncStep, Policy, SyncStep

__all__ = ["Pipeline", "pipeline"]


class Pipeline(Policy):
    """Policies applied in order, the first one outermost. Itself a policy."""

    kind: ClassVar[str] = "pipeline"

    def __init__(self, *policies: Policy) -> None:
        if not policies:
            raise TypeError("pipeline() needs at least one policy, got none: pipeline(rs.Retry(), rs.Timeout(5))")
        for i, p in enumerate(policies):
            if not isinstance(p, Policy):
                raise TypeError(f"policies[{i}] must be a resilient policy, got {p!r}")
        self.policies: tuple[Policy, ...] = policies

    def bind(self, inner: SyncStep) -> SyncStep:
        step = inner
        for policy in reversed(self.policies):
            step = policy.bind(step)
        return step

    def abind(self, inner: AsyncStep) -> AsyncStep:
        step = inner
        for policy in reversed(self.policies):
            step = policy.abind(step)
        return step

    def stats(self) -> dict[str, Any]:
        """Each policy's stats, keyed by its kind (``retry``, ``retry_2``, ...)."""
        out: dict[str, Any] = {}
        for policy in self.policies:
            key = policy.kind
            n = 2
            while key in out:
                key = f"{policy.kind}_{n}"
                n += 1
            out[key] = policy.stats()
        return out

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(type(p).__name__ for p in self.policies)})"


def pipeline(*policies: Policy) -> Pipeline:
    """Compose ``policies`` into one, the first outermost: ``pipeline(Fallback(...), Retry())``."""
    return Pipeline(*policies)
