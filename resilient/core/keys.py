"""Keys for coalescing and caching: a template, a callable, or the call itself.

Every ``key=`` form compiles to one ``Callable[[Context], str]``:

* a template such as ``"product:{id}"`` (or ``"user:{user.id}"``), formatted
  with the call's arguments bound to the function's parameters by name;
* a callable receiving the same arguments as the function, returning a ``str``;
* :func:`context_key` ``(fn)``: ``fn`` receives the :class:`~resilient.Context`
  itself (its ``operation``, ``fn``, ``args``, ``kwargs``) -- the form for
  integrations that derive keys from something other than plain arguments,
  such as the httpx transports deriving one from the request;
* left out: ``module:qualname(args)`` -- the function's module and qualified
  name plus the arguments' reprs (keyword arguments sorted, after them), which
  must then be of simple types (str, int, float, bool, None, tuples of them).
  The module keeps two functions of one name in different modules apart when
  they share a cache. A ``Context`` subclass carrying a ``key`` attribute
  (``str``) supplies the default key itself (the hook for integrations that
  build their own Context, such as the httpx transports).
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable
from types import FunctionType
from typing import Any

from .context import Context

__all__ = ["ArgsKey", "KeyFunction", "args_key", "check_key", "compile_key", "context_key"]

KeyFunction = Callable[[Context], str]
#: A key built from ``(args, kwargs)`` alone, for one known function (a decorator's fast path).
ArgsKey = Callable[[tuple[Any, ...], dict[str, Any]], str]

_SIMPLE = frozenset({str, int, float, bool, type(None)})
_MAX_PLANS = 1024  # per template: compiled argument positions per function


class context_key:
    """Mark ``fn(ctx) -> str`` as a key built from the whole :class:`~resilient.Context`.

    ``rs.Cache(ttl=60, key=context_key(lambda ctx: f"{ctx.operation}:{ctx.args[0]}"))``.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Context], str]) -> None:
        if not callable(fn):
            raise TypeError(f"key must be callable, got {fn!r}")
        self.fn = fn

    def __repr__(self) -> str:
        return f"context_key({self.fn!r})"


def compile_key(key: object, *, param: str = "key") -> KeyFunction:
    """Turn any ``key=`` form into ``Callable[[Context], str]``; a bad form raises naming ``param``."""
    if key is None:
        return default_key
    if isinstance(key, context_key):
        return key.fn
    if isinstance(key, str):
        return _Template(key, param)
    if callable(key):
        return _FromArguments(key, param)
    raise TypeError(f"{param} must be a template str, a callable or None, got {key!r}")


def check_key(key: KeyFunction, fn: Callable[..., Any]) -> None:
    """Fail now (``TypeError``) when a template names an argument ``fn`` lacks."""
    if isinstance(key, _Template):
        key.plan(fn)


def args_key(key: KeyFunction, fn: Callable[..., Any], operation: str) -> ArgsKey | None:
    """The same key as ``key`` for calls of ``fn`` (named ``operation``), built from
    ``(args, kwargs)`` without a Context; None for a :func:`context_key`."""
    if key is default_key:
        operation = _named(fn, operation)
        if type(fn) is not FunctionType and _bound_to_instance(fn):
            return None  # let the Context path raise its TypeError on call

        def by_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if len(args) == 1 and not kwargs and type(args[0]) in _SIMPLE:
                return f"{operation}({args[0]!r},)"  # == f"{operation}{args!r}", without tuple repr's recursion guard
            for value in args:
                if type(value) not in _SIMPLE and not _simple_tuple(value):
                    raise _not_simple(operation, value)
            if kwargs:
                return _with_kwargs(operation, args, kwargs)
            return f"{operation}{args!r}"

        return by_args
    if isinstance(key, _Template):
        return key.plan(fn)
    if isinstance(key, _FromArguments):
        return key.by_args
    return None


def _with_kwargs(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    for value in kwargs.values():
        if type(value) not in _SIMPLE and not _simple_tuple(value):
            raise _not_simple(operation, value)
    return f"{operation}{args!r}{sorted(kwargs.items())!r}"


def default_key(ctx: Context) -> str:
    """``module:operation(args)``, then ``[(name, value), ...]`` for keyword arguments; simple types only.

    A :class:`~resilient.Context` subclass with a ``key`` attribute (a ``str``,
    not None) supplies its own default key: the httpx transports key a request
    this way (method, URL, credential fingerprint).
    """
    if type(ctx) is not Context:
        own = getattr(ctx, "key", None)
        if own is not None:
            return _checked(own, "Context.key")
    args = ctx.args
    kwargs = ctx.kwargs
    fn = ctx.fn
    if type(fn) is not FunctionType and _bound_to_instance(fn):
        raise TypeError(
            f"{ctx.operation} is a bound method: its instance is not part of a default key; pass key= "
            "(a template such as 'item:{id}', or a callable)"
        )
    operation = _named(fn, ctx.operation)
    if len(args) == 1 and not kwargs and type(args[0]) in _SIMPLE:
        return f"{operation}({args[0]!r},)"
    for value in args:
        if type(value) not in _SIMPLE and not _simple_tuple(value):
            raise _not_simple(operation, value)
    if kwargs:
        return _with_kwargs(operation, args, kwargs)
    return f"{operation}{args!r}"


def _named(fn: Callable[..., Any], operation: str) -> str:
    module = getattr(fn, "__module__", None)
    return f"{module}:{operation}" if module else operation


def _bound_to_instance(fn: object) -> bool:
    owner = getattr(fn, "__self__", None)
    return owner is not None and not inspect.ismodule(owner) and not inspect.isclass(owner)


def _simple_tuple(value: object) -> bool:
    return type(value) is tuple and all(type(v) in _SIMPLE or _simple_tuple(v) for v in value)


def _not_simple(operation: str, value: object) -> TypeError:
    return TypeError(
        f"cannot build a default key for {operation}: argument {value!r} is a {type(value).__name__}, "
        "not str/int/float/bool/None or a tuple of them; pass key= (a template such as 'item:{id}', or a callable)"
    )


def _checked(value: object, param: str) -> str:
    if type(value) is not str:
        raise TypeError(f"{param} callable must return a str, got {value!r}")
    return value


class _FromArguments:
    """A user callable taking the function's own arguments and returning the key."""

    __slots__ = ("fn", "param")

    def __init__(self, fn: Callable[..., Any], param: str) -> None:
        self.fn = fn
        self.param = param

    def __call__(self, ctx: Context) -> str:
        return _checked(self.fn(*ctx.args, **ctx.kwargs), self.param)

    def by_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return _checked(self.fn(*args, **kwargs), self.param)

    def __repr__(self) -> str:
        return f"key={self.fn!r}"


class _Template:
    """``"product:{id}"`` formatted with the call's arguments bound by parameter name.

    Per function, the template's fields are resolved once to (position, name,
    default); a call then costs one ``str.format`` of the picked arguments.
    """

    __slots__ = ("_fields", "_format", "_param", "_plans", "template")

    def __init__(self, template: str, param: str) -> None:
        self.template = template
        self._param = param
        fields: list[str] = []
        parts: list[str] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"{param} template {template!r} is malformed: {exc}") from None
        for literal, field, spec, conversion in parsed:
            parts.append(literal.replace("{", "{{").replace("}", "}}"))
            if field is None:
                continue
            head, rest = _split_field(field)
            if not head.isidentifier():
                raise ValueError(f"{param} template {template!r}: field {field!r} must name an argument")
            if head not in fields:
                fields.append(head)
            parts.append("{" + str(fields.index(head)) + rest)
            if conversion:
                parts.append("!" + conversion)
            if spec:
                parts.append(":" + spec)
            parts.append("}")
        self._fields = tuple(fields)
        self._format = "".join(parts).format
        self._plans: dict[Any, Callable[[tuple[Any, ...], dict[str, Any]], str]] = {}

    def __call__(self, ctx: Context) -> str:
        fn = ctx.fn
        plan = self._plans.get(fn)
        if plan is None:
            plan = self.plan(fn)
        return plan(ctx.args, ctx.kwargs)

    def plan(self, fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
        """Resolve the fields against ``fn``'s parameters (``TypeError`` naming a missing one)."""
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # a builtin without a signature: keyword arguments only
            params = {}  # type: ignore[assignment]
        names = list(params)
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        picks: list[tuple[int, str, Any]] = []
        for name in self._fields:
            p = params.get(name)
            if p is None or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                if not var_kw and params:
                    raise TypeError(
                        f"{self._param} template {self.template!r} names {{{name}}}, but "
                        f"{getattr(fn, '__qualname__', fn)!r} has no argument {name!r} "
                        f"(its arguments: {', '.join(names) or 'none'})"
                    )
                picks.append((-1, name, inspect.Parameter.empty))
            elif p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                picks.append((names.index(name), name, p.default))
            else:
                picks.append((-1, name, p.default))
        fmt = self._format
        template, param = self.template, self._param
        frozen = tuple(picks)

        def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            values = []
            for index, name, default in frozen:
                if 0 <= index < len(args):
                    values.append(args[index])
                elif name in kwargs:
                    values.append(kwargs[name])
                elif default is not inspect.Parameter.empty:
                    values.append(default)
                else:
                    raise TypeError(f"{param} template {template!r}: the call passed no argument {name!r}")
            return fmt(*values)

        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[fn] = build
        return build

    def __repr__(self) -> str:
        return f"_Template({self.template!r})"


def _split_field(field: str) -> tuple[str, str]:
    """``"user.id"`` -> ``("user", ".id")``; ``"ids[0]"`` -> ``("ids", "[0]")``."""
    for i, ch in enumerate(field):
        if ch in ".[":
            return field[:i], field[i:]
    return field, ""
