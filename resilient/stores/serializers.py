"""Serializers for shared stores: JSON by default, pickle only when asked for, and then signed.

A serializer is anything with ``dumps(value) -> bytes`` and ``loads(bytes) -> value``
(msgpack, orjson, a caller's own; a ``dumps`` returning ``str`` is encoded as UTF-8).
A ``loads`` that raises makes the stored record a miss, never a crash.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import pickle
from typing import Any

from .base import Serializer

__all__ = ["JsonSerializer", "PickleSerializer", "SignatureError", "resolve_serializer"]


class SignatureError(ValueError):
    """Signed data whose signature does not match (tampered, or written with another key)."""


_TAG = "__rs__"
_SCALARS = (str, int, float, bool, type(None))


def _tagged(value: Any) -> Any:
    """``value`` with the types JSON lacks written as ``{"__rs__": kind, "v": ...}``."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [_tagged(v) for v in value]
    if kind is dict:
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: _tagged(v) for k, v in value.items()}
        return {_TAG: "dict", "v": [[_tagged(k), _tagged(v)] for k, v in value.items()]}
    if kind is tuple:
        return {_TAG: "tuple", "v": [_tagged(v) for v in value]}
    if kind is set or kind is frozenset:
        items = [_tagged(v) for v in value]
        try:
            items.sort(key=json.dumps)  # the same set, the same bytes
        except TypeError:
            pass
        return {_TAG: kind.__name__, "v": items}
    if kind is bytes:
        return {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    if kind is dt.datetime:
        return {_TAG: "datetime", "v": value.isoformat()}
    if kind is dt.date:
        return {_TAG: "date", "v": value.isoformat()}
    raise TypeError(f"{kind.__qualname__} is not JSON serializable")


def _untagged(obj: dict[str, Any]) -> Any:
    kind = obj.get(_TAG)
    if kind is None or len(obj) != 2 or "v" not in obj:
        return obj
    v = obj["v"]
    if kind == "tuple":
        return tuple(v)
    if kind == "set":
        return set(v)
    if kind == "frozenset":
        return frozenset(v)
    if kind == "bytes":
        return base64.b64decode(v)
    if kind == "datetime":
        return dt.datetime.fromisoformat(v)
    if kind == "date":
        return dt.date.fromisoformat(v)
    if kind == "dict":
        return {_hashable(k): val for k, val in v}
    return obj


def _hashable(key: Any) -> Any:
    return tuple(key) if type(key) is list else key


class JsonSerializer:
    """Compact UTF-8 JSON (the default), round-tripping what a cached call commonly returns.

    Plain JSON types as themselves; ``tuple``, ``set``, ``frozenset``, ``bytes``,
    ``datetime.datetime`` (with its zone, if any), ``datetime.date`` and dicts with
    non-``str`` keys come back as the same types, written as small tagged objects
    (``{"__rs__": "tuple", "v": [...]}``), so a value read from Redis equals the one
    an in-process store kept. Any other type raises ``TypeError`` naming it.
    """

    __slots__ = ()

    def dumps(self, value: Any) -> bytes:
        return json.dumps(_tagged(value), separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data, object_hook=_untagged)

    def __repr__(self) -> str:
        return "JsonSerializer()"


class PickleSerializer:
    """Pickle, signed with HMAC-SHA256, for callers who opt in explicitly.

    Stored bytes are ``b"rsp1" + HMAC-SHA256(key, payload) + payload``. ``loads``
    checks the signature (in constant time) before unpickling and raises
    :class:`SignatureError` when it does not match, so a store writable by someone
    without the key can never make this process unpickle their bytes.

    Args:
        key: the secret signing key (``bytes`` or ``str``, at least 16 bytes), shared
            by every process that reads the store.
        protocol: the pickle protocol (default: ``pickle.HIGHEST_PROTOCOL``).
    """

    __slots__ = ("_key", "_protocol")

    MAGIC = b"rsp1"
    _MAC_LEN = 32

    def __init__(self, *, key: bytes | str, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        if isinstance(key, str):
            key = key.encode()
        if not isinstance(key, bytes):
            raise TypeError(f"key must be bytes or str, got {type(key).__name__}")
        if len(key) < 16:
            raise ValueError(f"key must be at least 16 bytes, got {len(key)} bytes")
        if isinstance(protocol, bool) or not isinstance(protocol, int) or not 2 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(f"protocol must be an int in [2, {pickle.HIGHEST_PROTOCOL}], got {protocol!r}")
        self._key = key
        self._protocol = protocol

    def dumps(self, value: Any) -> bytes:
        payload = pickle.dumps(value, protocol=self._protocol)
        return self.MAGIC + hmac.digest(self._key, payload, hashlib.sha256) + payload

    def loads(self, data: bytes) -> Any:
        head = len(self.MAGIC)
        if data[:head] != self.MAGIC or len(data) < head + self._MAC_LEN:
            raise SignatureError("not signed pickle data")
        mac, payload = data[head : head + self._MAC_LEN], data[head + self._MAC_LEN :]
        if not hmac.compare_digest(mac, hmac.digest(self._key, payload, hashlib.sha256)):
            raise SignatureError("bad signature")
        return pickle.loads(payload)  # only after the HMAC check above

    def __repr__(self) -> str:
        return "PickleSerializer(key=<hidden>)"  # the key is a secret


def resolve_serializer(serializer: object) -> Serializer:
    """``serializer`` checked (anything with ``dumps``/``loads``), or the JSON default for None."""
    if serializer is None:
        return JsonSerializer()
    if not (callable(getattr(serializer, "dumps", None)) and callable(getattr(serializer, "loads", None))):
        raise TypeError(f"serializer must have dumps() and loads(), got {serializer!r}")
    return serializer  # type: ignore[return-value]
