"""RedisStore's health rules, without a server: what is an outage, and what is one slow call."""

from __future__ import annotations

import pytest

from resilient._machines.store_breaker import StoreBreaker
from resilient.stores._redis_health import Health, is_failure, is_stale_connection
from resilient.testing import FakeClock


def health() -> Health:
    return Health(StoreBreaker(failure_threshold=1), FakeClock(), None, None)


def test_a_timeout_while_the_store_answers_others_fails_alone() -> None:
    """A call that timed out while other calls were answered does not rest the store."""
    h = health()
    before = h.answers
    h.ok()  # another call answered meanwhile
    error = h.failed(TimeoutError(), "get", "k", started=0.0, answers=before)
    assert not error.refused
    assert h.available


def test_a_timeout_with_no_answer_meanwhile_rests_the_store() -> None:
    """With no answer since it began, the timeout is an outage: the store rests (no probe without a client)."""
    h = health()
    h.failed(TimeoutError(), "get", "k", started=0.0, answers=h.answers)
    assert not h.available
    assert h.refusal().refused


class ConnectionError(Exception):
    pass


class AuthenticationError(ConnectionError):
    pass


class ResponseError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "failure", "stale"),
    [
        (ConnectionError("Connection closed by server."), True, True),
        (ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), True, False),
        (AuthenticationError("invalid password"), True, False),
        (TimeoutError(), True, False),
        (ResponseError("OOM command not allowed"), False, False),
        (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), False, False),
    ],
)
def test_errors_are_told_apart_by_kind(exc: Exception, failure: bool, stale: bool) -> None:
    """Connection and timeout errors are failures (closed connections worth a retry); answers are not."""
    assert is_failure(exc) is failure
    assert is_stale_connection(exc) is stale
