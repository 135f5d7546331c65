"""The public surface is flat and written down: ``__all__`` lists exactly what the package exposes."""

from __future__ import annotations

import types

import resilient
import resilient.http
import resilient.testing


def exposed(module: types.ModuleType) -> list[str]:
    """Public names bound in ``module`` that are not submodules (``rs.http`` is a namespace, not a name)."""
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    )


def test_rs_all_lists_every_public_name() -> None:
    """``rs.__all__`` is sorted and equals the public names of ``resilient``."""
    assert resilient.__all__ == sorted(resilient.__all__)
    assert resilient.__all__ == exposed(resilient)


def test_rs_http_all_lists_every_public_name() -> None:
    """``rs.http.__all__`` equals the public names of ``resilient.http``."""
    assert sorted(resilient.http.__all__) == exposed(resilient.http)


def test_rs_http_is_the_namespace_reached_from_rs() -> None:
    """``import resilient as rs`` gives ``rs.http``: the HTTP face, not a private module."""
    assert resilient.http.__name__ == "resilient.http"
    assert resilient.ResilientTransport is resilient.http.ResilientTransport


def test_testing_all_lists_the_test_support() -> None:
    """``resilient.testing.__all__`` is the public test support."""
    assert resilient.testing.__all__ == ["FakeClock", "capture_events", "no_waiting"]
    for name in resilient.testing.__all__:
        assert callable(getattr(resilient.testing, name))


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` exists (no stale entries)."""
    for module in (resilient, resilient.http, resilient.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
