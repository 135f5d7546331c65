"""Serializers: JSON by default, signed pickle on request, and the checks on a caller's own."""

from __future__ import annotations

import json
import pickle

import pytest

import resilient as rs
from resilient.stores.serializers import SignatureError, resolve_serializer


def test_json_is_compact_utf8() -> None:
    """The default serializer writes compact UTF-8 JSON and reads it back."""
    s = rs.JsonSerializer()
    assert s.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    assert s.loads(s.dumps({"a": [1, "é"]})) == {"a": [1, "é"]}


def test_resolve_defaults_to_json_and_refuses_non_serializers() -> None:
    """None means JSON; an object without dumps/loads is a TypeError naming serializer."""
    assert isinstance(resolve_serializer(None), rs.JsonSerializer)
    chosen: object = resolve_serializer(json)  # a module with dumps/loads serializes too
    assert chosen is json
    with pytest.raises(TypeError, match="serializer"):
        resolve_serializer(object())


def test_signed_pickle_round_trips_python_objects() -> None:
    """Signed pickle carries what JSON cannot (sets, tuples) with the same key."""
    s = rs.PickleSerializer(key="0123456789abcdef")
    assert s.loads(s.dumps({1, (2, 3)})) == {1, (2, 3)}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # payload changed
        lambda b: b[:4] + bytes(32) + b[36:],  # signature replaced
        lambda b: pickle.dumps("plain pickle"),  # never signed
        lambda b: b"",
    ],
)
def test_signed_pickle_refuses_tampered_or_unsigned_bytes(tamper: object) -> None:
    """Bytes that do not carry a valid HMAC are refused before any unpickling."""
    s = rs.PickleSerializer(key=b"k" * 16)
    with pytest.raises(SignatureError):
        s.loads(tamper(s.dumps(["x"])))  # type: ignore[operator]


def test_signed_pickle_refuses_another_key() -> None:
    """Data signed with one key does not load with another."""
    with pytest.raises(SignatureError):
        rs.PickleSerializer(key=b"b" * 16).loads(rs.PickleSerializer(key=b"a" * 16).dumps(1))


@pytest.mark.parametrize(("key", "error"), [(b"short", ValueError), (123, TypeError)])
def test_pickle_key_is_checked_and_never_shown(key: object, error: type) -> None:
    """A missing or short key is refused naming it; repr hides a good key."""
    with pytest.raises(error, match="key"):
        rs.PickleSerializer(key=key)  # type: ignore[arg-type]
    assert "secret" not in repr(rs.PickleSerializer(key="secret-secret-secret"))
