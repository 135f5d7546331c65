"""Outcomes of a call and the ``on=`` forms that say which of them are failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import Rejected

__all__ = ["Matcher", "Outcome", "Predicate", "compile_on", "errors", "results"]

T = TypeVar("T")


class Outcome(Generic[T]):
    """The result of one attempt: a value, or the exception it raised."""

    __slots__ = ("error", "value")

    def __init__(self, value: T | None = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    @property
    def ok(self) -> bool:
        """True when the attempt returned instead of raising."""
        return self.error is None

    def unwrap(self) -> T:
        """The value, or raise the error as it was."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Outcome(error={self.error!r})"
        return f"Outcome(value={type(self.value).__name__})"


class Predicate:
    """A failure test over outcomes; combine with ``|``.

    Predicates built by :func:`errors` and :func:`results` keep their parts
    apart so a policy never builds an :class:`Outcome` on the happy path.
    """

    __slots__ = ("_error_tests", "_error_types", "_result_tests")

    def __init__(
        self,
        *,
        error_types: tuple[type[BaseException], ...] = (),
        error_tests: tuple[Callable[[BaseException], bool], ...] = (),
        result_tests: tuple[Callable[[Any], bool], ...] = (),
    ) -> None:
        self._error_types = error_types
        self._error_tests = error_tests
        self._result_tests = result_tests

    def __or__(self, other: object) -> Predicate:
        if isinstance(other, type) and issubclass(other, BaseException):
            other = errors(other)
        elif not isinstance(other, Predicate):
            if callable(other):
                other = _outcome_predicate(other)
            else:
                return NotImplemented
        return Predicate(
            error_types=self._error_types + other._error_types,
            error_tests=self._error_tests + other._error_tests,
            result_tests=self._result_tests + other._result_tests,
        )

    __ror__ = __or__

    def __call__(self, outcome: Outcome[Any]) -> bool:
        if outcome.error is not None:
            return self.matches_error(outcome.error)
        return self.matches_result(outcome.value)

    def matches_error(self, exc: BaseException) -> bool:
        if self._error_types and isinstance(exc, self._error_types):
            return True
        return any(test(exc) for test in self._error_tests)

    def matches_result(self, value: Any) -> bool:
        return any(test(value) for test in self._result_tests)

    @property
    def result_matcher(self) -> Callable[[Any], bool] | None:
        """The cheapest callable answering :meth:`matches_result`, or ``None`` when
        no returned value can count as a failure (policies bind it once)."""
        tests = self._result_tests
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        return self.matches_result

    @property
    def checks_results(self) -> bool:
        """Whether any successful result can count as a failure."""
        return bool(self._result_tests)

    def __repr__(self) -> str:
        names = [t.__name__ for t in self._error_types]
        return f"Predicate(errors={names}, tests={len(self._error_tests) + len(self._result_tests)})"


def errors(*types: type[BaseException]) -> Predicate:
    """Failures are exceptions of these types (``rs.errors(ConnectionError, TimeoutError)``)."""
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"errors() takes exception classes, got {t!r}")
    return Predicate(error_types=tuple(types))


def results(predicate: Callable[[Any], bool]) -> Predicate:
    """Failures are returned values for which ``predicate(value)`` is true."""
    if not callable(predicate):
        raise TypeError(f"results() takes a callable, got {predicate!r}")
    return Predicate(result_tests=(predicate,))


def _outcome_predicate(fn: Callable[[Outcome[Any]], bool]) -> Predicate:
    return Predicate(
        error_tests=(lambda exc: bool(fn(Outcome(error=exc))),),
        result_tests=(lambda value: bool(fn(Outcome(value))),),
    )


def _not_rejected(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, Rejected)


#: The default ``on=``: any ``Exception`` except the library's own rejections.
DEFAULT_ON = Predicate(error_tests=(_not_rejected,))

Matcher = Predicate
OnSpec = type[BaseException] | tuple[type[BaseException], ...] | Predicate | Callable[[Outcome[Any]], bool] | None


def compile_on(on: object, *, param: str = "on") -> Predicate:
    """Turn any accepted ``on=`` form into a :class:`Predicate`.

    Exceptions that are not ``Exception`` (cancellation, ``KeyboardInterrupt``)
    never count, whatever the form.
    """
    if on is None:
        return DEFAULT_ON
    if isinstance(on, Predicate):
        pred = on
    elif isinstance(on, type) and issubclass(on, BaseException):
        pred = errors(on)
    elif isinstance(on, tuple) and on and all(isinstance(t, type) and issubclass(t, BaseException) for t in on):
        pred = errors(*on)
    elif callable(on):
        pred = _outcome_predicate(on)
    else:
        raise TypeError(
            f"{param} must be an exception class, a tuple of them, or a predicate on rs.Outcome; got {on!r}"
        )
    return _only_exceptions(pred)


def _only_exceptions(pred: Predicate) -> Predicate:
    types = tuple(t for t in pred._error_types if issubclass(t, Exception))
    base = tuple(t for t in pred._error_types if not issubclass(t, Exception))
    tests = pred._error_tests
    if base:
        # errors(BaseException) still must not catch cancellation: narrow it.
        tests = (*tests, lambda exc: isinstance(exc, Exception) and isinstance(exc, base))
    if tests:
        tests = tuple(_guard(t) for t in tests)
    return Predicate(error_types=types, error_tests=tests, result_tests=pred._result_tests)


def _guard(test: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    def guarded(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and test(exc)

    return guarded
