"""HTTP semantics, without I/O: replay rules, keys, predicates, timeouts, caching rules."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import resilient as rs
from resilient.http.semantics import (
    cacheable,
    cut_timeouts,
    fingerprint,
    from_snapshot,
    operation_of,
    replay_refusal,
    request_key,
    snapshot,
    timeout_phase,
)

URL = "https://api.example.com/v1/items?page=2"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
def test_idempotent_methods_may_be_replayed(method: str) -> None:
    """Idempotent methods with a bytes body may be sent again."""
    assert replay_refusal(httpx.Request(method, URL, content=b"x")) is None


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_methods_need_an_idempotency_key(method: str) -> None:
    """POST and PATCH may be replayed only with an Idempotency-Key header."""
    assert replay_refusal(httpx.Request(method, URL, json={"a": 1})) == f"{method} without Idempotency-Key"
    assert replay_refusal(httpx.Request(method, URL, json={"a": 1}, headers={"Idempotency-Key": "k1"})) is None


def test_streaming_bodies_are_never_replayed() -> None:
    """A body from a generator or an iterator is never replayed, even for PUT or with a key."""

    def chunks() -> Iterator[bytes]:
        yield b"a"

    assert replay_refusal(httpx.Request("PUT", URL, content=chunks())) == "streaming request body"
    keyed = httpx.Request("POST", URL, content=iter([b"a"]), headers={"Idempotency-Key": "k"})
    assert replay_refusal(keyed) == "streaming request body"


def test_multipart_bodies_replay_only_with_seekable_files() -> None:
    """A multipart form replays when its files are bytes or seekable, not when one cannot seek."""

    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    assert replay_refusal(httpx.Request("PUT", URL, files={"f": ("a.txt", b"data")})) is None
    assert replay_refusal(httpx.Request("PUT", URL, files={"f": ("a.txt", io.BytesIO(b"d"))})) is None
    pipe: Any = Pipe()
    assert replay_refusal(httpx.Request("PUT", URL, files={"f": ("a.txt", pipe)})) == "streaming request body"


def test_operation_is_method_and_host() -> None:
    """The operation names method and host (and port), never the path, query or credentials."""
    assert operation_of(httpx.Request("GET", "https://u:secret@api.example.com:8443/v1/items?q=1")) == (
        "GET api.example.com:8443"
    )
    assert operation_of(httpx.Request("GET", "https://api.example.com/v1/items")) == "GET api.example.com"


def test_operation_with_a_route_names_the_template() -> None:
    """With route=, the operation is method, host and the route template; a None route names the host."""
    request = httpx.Request("GET", "https://api.example.com/v1/items/42?q=1")
    assert operation_of(request, lambda r: "/v1/items/{id}") == "GET api.example.com/v1/items/{id}"
    assert operation_of(request, lambda r: None) == "GET api.example.com"


def test_request_key_without_credentials_is_method_and_url() -> None:
    """An anonymous request's key is its method and full URL."""
    assert request_key(httpx.Request("GET", URL)) == f"GET {URL}"


def test_request_key_fingerprints_credentials_and_never_shows_them() -> None:
    """Different Authorization or Cookie values give different keys that contain neither value."""
    alice = request_key(httpx.Request("GET", URL, headers={"Authorization": "Bearer alice-token"}))
    bob = request_key(httpx.Request("GET", URL, headers={"Authorization": "Bearer bob-token"}))
    alice_again = request_key(httpx.Request("GET", URL, headers={"authorization": "Bearer alice-token"}))
    cookie = request_key(httpx.Request("GET", URL, headers={"Cookie": "session=s3cr3t"}))
    assert alice != bob
    assert alice == alice_again
    assert len({alice, bob, cookie, f"GET {URL}"}) == 4
    for key in (alice, bob, cookie):
        assert key.startswith(f"GET {URL} #")
        assert "token" not in key
        assert "s3cr3t" not in key


def test_request_key_covers_every_credential_header() -> None:
    """A second Authorization or Cookie header changes the key."""
    one = request_key(httpx.Request("GET", URL, headers=[("Cookie", "a=1")]))
    two = request_key(httpx.Request("GET", URL, headers=[("Cookie", "a=1"), ("Cookie", "b=2")]))
    assert one != two


def test_request_key_strips_url_credentials_into_the_fingerprint() -> None:
    """Credentials in the URL leave the key's URL and change its fingerprint."""
    one = request_key(httpx.Request("GET", "https://u:pw1@h.example/p"))
    two = request_key(httpx.Request("GET", "https://u:pw2@h.example/p"))
    assert one.startswith("GET https://h.example/p #")
    assert one != two
    assert "pw1" not in one


def test_fingerprint_is_a_fixed_length_hash() -> None:
    """A fingerprint is 32 hex characters and tells None from an empty value."""
    assert len(fingerprint(b"a", None)) == 32
    assert fingerprint(None, b"") != fingerprint(b"", None)


def test_statuses_matches_responses_and_status_errors() -> None:
    """statuses() matches a returned response and a raised HTTPStatusError with those codes."""
    pred = rs.http.statuses(503)
    req = httpx.Request("GET", URL)
    assert pred(rs.Outcome(httpx.Response(503, request=req)))
    assert not pred(rs.Outcome(httpx.Response(500, request=req)))
    error = httpx.HTTPStatusError("x", request=req, response=httpx.Response(503, request=req))
    assert pred(rs.Outcome(error=error))
    assert not pred(rs.Outcome("503"))


@pytest.mark.parametrize(("codes", "kind"), [((), ValueError), ((99,), ValueError), (("503",), TypeError)])
def test_statuses_rejects_bad_codes(codes: tuple[object, ...], kind: type[Exception]) -> None:
    """statuses() names bad codes."""
    with pytest.raises(kind, match="status"):
        rs.http.statuses(*codes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (rs.Outcome(error=httpx.ConnectTimeout("t")), True),
        (rs.Outcome(error=httpx.ReadTimeout("t")), True),
        (rs.Outcome(error=httpx.PoolTimeout("t")), True),
        (rs.Outcome(error=httpx.ConnectError("t")), True),
        (rs.Outcome(error=httpx.ReadError("t")), True),
        (rs.Outcome(error=httpx.RemoteProtocolError("t")), True),
        (rs.Outcome(error=httpx.WriteTimeout("t")), False),
        (rs.Outcome(error=httpx.UnsupportedProtocol("t")), False),
        (rs.Outcome(error=ValueError("t")), False),
        (rs.Outcome(httpx.Response(429)), True),
        (rs.Outcome(httpx.Response(502)), True),
        (rs.Outcome(httpx.Response(503)), True),
        (rs.Outcome(httpx.Response(504)), True),
        (rs.Outcome(httpx.Response(500)), False),
        (rs.Outcome(httpx.Response(200)), False),
    ],
)
def test_retryable_matches_transient_failures_only(outcome: rs.Outcome[object], expected: bool) -> None:
    """RETRYABLE matches connect/read/pool timeouts, network and protocol errors, 429/502/503/504."""
    assert rs.http.RETRYABLE(outcome) is expected
    assert isinstance(rs.http.RETRYABLE, rs.Predicate)


def test_cut_timeouts_caps_every_phase_at_the_time_left() -> None:
    """Each phase's timeout becomes the time left when that is shorter, and those phases are reported."""
    timeouts, cut = cut_timeouts({"connect": 1.0, "read": 10.0, "write": None, "pool": 5.0}, 2.0)
    assert timeouts == {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 2.0}
    assert cut == {"read", "write", "pool"}


def test_timeout_phase_names_the_phase() -> None:
    """Each httpx timeout maps to its phase."""
    assert timeout_phase(httpx.ConnectTimeout("x")) == "connect"
    assert timeout_phase(httpx.ReadTimeout("x")) == "read"
    assert timeout_phase(httpx.WriteTimeout("x")) == "write"
    assert timeout_phase(httpx.PoolTimeout("x")) == "pool"


@pytest.mark.parametrize(
    ("method", "status", "response_cc", "request_cc", "expected"),
    [
        ("GET", 200, None, None, True),
        ("HEAD", 204, "max-age=60", None, True),
        ("GET", 503, None, None, False),
        ("GET", 206, None, None, False),
        ("POST", 200, None, None, False),
        ("GET", 200, "no-store", None, False),
        ("GET", 200, "max-age=60, Private", None, False),
        ("GET", 200, None, "no-store", False),
    ],
)
def test_cacheable_follows_method_status_and_cache_control(
    method: str, status: int, response_cc: str | None, request_cc: str | None, expected: bool
) -> None:
    """Only GET/HEAD responses with an allowed status and no no-store/private directive are stored."""
    req_headers = {"Cache-Control": request_cc} if request_cc else {}
    resp_headers = {"Cache-Control": response_cc} if response_cc else {}
    request = httpx.Request(method, URL, headers=req_headers)
    allowed = frozenset(range(200, 300)) - {206}
    assert cacheable(request, httpx.Response(status, headers=resp_headers), allowed) is expected


def test_snapshot_is_json_safe_and_rebuilds_the_response() -> None:
    """A snapshot survives JSON and rebuilds a response with the same status, headers and body."""
    request = httpx.Request("GET", URL)
    original = httpx.Response(201, headers=[("X-A", "1"), ("X-A", "2")], content=b"\x00\xffbody", request=request)
    snap = json.loads(json.dumps(snapshot(original, original.content, decoded=True)))
    copy = from_snapshot(snap, request)
    assert copy.status_code == 201
    assert copy.headers.get_list("x-a") == ["1", "2"]
    assert copy.read() == b"\x00\xffbody"
    assert copy.request is request
