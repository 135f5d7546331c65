"""HTTP semantics the transports apply: which requests may be replayed, the keys
and names of a request, what may be cached, and which outcomes are retryable.

Nothing here does I/O or waits; every function looks at a request or a
response and returns a plain answer.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
from httpx._multipart import MultipartStream

from ..core.outcome import Predicate, errors

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE",
    "RETRYABLE_STATUSES",
    "SUCCESS_STATUSES",
    "cacheable",
    "cut_timeouts",
    "fingerprint",
    "from_snapshot",
    "operation_of",
    "replay_refusal",
    "request_key",
    "snapshot",
    "statuses",
    "timeout_phase",
]

#: Methods RFC 9110 calls idempotent: a repeat has the effect of one request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Statuses worth another try: too many requests, bad gateway, unavailable, gateway timeout.
RETRYABLE_STATUSES = (429, 502, 503, 504)

#: Statuses cached by default: the successful ones (206, a partial body, is left out).
SUCCESS_STATUSES = frozenset(range(200, 300)) - {206}

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
_NO_STORE = frozenset({"no-store", "private"})


# -- replay -------------------------------------------------------------------


def _replayable_body(request: httpx.Request) -> bool:
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        return True
    if isinstance(stream, MultipartStream):
        # Files are re-read from the start on each send when they can seek.
        for field in stream.fields:
            file = getattr(field, "file", None)
            if file is None or isinstance(file, (bytes, str)):
                continue
            seekable = getattr(file, "seekable", None)
            if seekable is None or not seekable():
                return False
        return True
    return False


def replay_refusal(request: httpx.Request) -> str | None:
    """Why ``request`` must not be sent twice, or ``None`` when a retry is safe.

    A request may be repeated when its method is idempotent (GET, HEAD,
    OPTIONS, PUT, DELETE, TRACE) or it carries an ``Idempotency-Key`` header,
    and its body can be sent again (bytes, or a multipart form of seekable
    files); a body streamed from an iterator or generator never can.
    """
    if request.method not in IDEMPOTENT_METHODS and "idempotency-key" not in request.headers:
        return f"{request.method} without Idempotency-Key"
    if not _replayable_body(request):
        return "streaming request body"
    return None


# -- names and keys -----------------------------------------------------------


def operation_of(request: httpx.Request, route: Callable[[httpx.Request], str | None] | None = None) -> str:
    """The ``Context.operation`` of a request: ``"METHOD host"`` (``"GET api.example.com"``).

    Bounded: it names the host (and a port other than the scheme's), never the
    path, the query or credentials, so a metric label made from it takes one
    value per host. With ``route`` (a callable naming the route template of a
    request, ``"/items/{id}"``), it is ``"METHOD host/items/{id}"``; a route
    of ``None`` falls back to the host alone.
    """
    ref = request.url._uri_reference  # the parsed parts, read without re-encoding
    host = f"{ref.host}:{ref.port}" if ref.port else ref.host
    if route is not None:
        template = route(request)
        if template is not None:
            return f"{request.method} {host}{template}"
    return f"{request.method} {host}"


def fingerprint(*secrets: bytes | None) -> str:
    """A short hash standing for credentials in keys; the values themselves never appear.

    Formula: the first 16 bytes of BLAKE2b (personalised ``resilient-http``)
    over the values, each followed by a separator (``None`` is its own mark), in hex.
    """
    digest = hashlib.blake2b(digest_size=16, person=b"resilient-http")
    for secret in secrets:
        digest.update(b"\0" if secret is None else secret + b"\0\1")
    return digest.hexdigest()


def request_key(request: httpx.Request) -> str:
    """The coalescing and caching key of a request: method, URL and a credentials fingerprint.

    ``"GET https://host/path?q"`` for an anonymous request; with an
    ``Authorization`` or ``Cookie`` header, or credentials in the URL, a
    ``" #<fingerprint>"`` of them is appended, so two users never share a
    response and no credential appears in a key.
    """
    url = request.url
    auth = cookie = None
    for _, name, value in request.headers._list:  # one pass; Headers.get() costs a scan per name
        if name == b"authorization":
            auth = value if auth is None else auth + b"\0" + value
        elif name == b"cookie":
            cookie = value if cookie is None else cookie + b"\0" + value
    userinfo = url._uri_reference.userinfo
    if auth is None and cookie is None and not userinfo:
        return f"{request.method} {url}"
    if userinfo:
        url = url.copy_with(username=None, password=None)
    return f"{request.method} {url} #{fingerprint(auth, cookie, userinfo.encode('utf-8', 'surrogateescape'))}"


# -- deadlines ----------------------------------------------------------------

_PHASES = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}


def cut_timeouts(timeouts: dict[str, float | None], remaining: float) -> tuple[dict[str, float | None], frozenset[str]]:
    """Each phase's timeout cut to ``remaining`` seconds, and the phases that were cut.

    A phase with no timeout (``None``) or a longer one gets ``remaining``.
    """
    out: dict[str, float | None] = {}
    cut: set[str] = set()
    for phase in ("connect", "read", "write", "pool"):
        value = timeouts.get(phase)
        if value is None or value > remaining:
            out[phase] = remaining
            cut.add(phase)
        else:
            out[phase] = value
    return out, frozenset(cut)


def timeout_phase(exc: httpx.TimeoutException) -> str | None:
    """Which of ``connect``/``read``/``write``/``pool`` an httpx timeout happened in."""
    for kind, phase in _PHASES.items():
        if isinstance(exc, kind):
            return phase
    return None


# -- predicates -----------------------------------------------------------------


def statuses(*codes: int) -> Predicate:
    """Failures are responses with one of these statuses (``rs.http.statuses(502, 503)``).

    Matches a returned ``httpx.Response`` and a raised ``httpx.HTTPStatusError``
    (``raise_for_status()`` inside a decorated function); combine with ``|``.
    """
    if not codes:
        raise ValueError("statuses() needs at least one status code, got none")
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"statuses must be ints, got {code!r}")
        if not 100 <= code <= 599:
            raise ValueError(f"statuses must be HTTP status codes (100-599), got {code!r}")
    wanted = frozenset(codes)

    def status_result(value: Any) -> bool:
        return isinstance(value, httpx.Response) and value.status_code in wanted

    def status_error(exc: BaseException) -> bool:
        return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in wanted

    return Predicate(error_tests=(status_error,), result_tests=(status_result,))


#: Connect, read and pool timeouts, network and remote-protocol errors, and the
#: statuses 429, 502, 503 and 504: what is worth another try.
RETRYABLE: Predicate = errors(
    httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout, httpx.NetworkError, httpx.RemoteProtocolError
) | statuses(*RETRYABLE_STATUSES)


# -- caching --------------------------------------------------------------------


def _directives(value: str | None) -> set[str]:
    if not value:
        return set()
    return {part.split("=", 1)[0].strip().lower() for part in value.split(",")}


def cacheable(request: httpx.Request, response: httpx.Response, allowed: frozenset[int]) -> bool:
    """Whether a response may be stored: a GET or HEAD, an allowed status, and
    neither ``Cache-Control: no-store`` nor ``private`` on the response or
    ``no-store`` on the request."""
    if request.method not in _CACHEABLE_METHODS or response.status_code not in allowed:
        return False
    if _directives(response.headers.get("cache-control")) & _NO_STORE:
        return False
    return "no-store" not in _directives(request.headers.get("cache-control"))


def snapshot(response: httpx.Response, body: bytes, *, decoded: bool = False) -> dict[str, Any]:
    """A JSON-safe copy of a response: status, headers (in order), body (base64).

    ``body`` is the raw body as it came on the wire (still compressed when it
    was, so the copy decodes as the original did), or with ``decoded`` the
    decoded content (then ``Content-Encoding`` and ``Content-Length`` are dropped).
    """
    raw_headers = response.headers.raw
    if decoded:
        raw_headers = [(k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
    return {
        "status": response.status_code,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in raw_headers],
        "body": base64.b64encode(body).decode("ascii"),
        "http_version": response.extensions.get("http_version", b"HTTP/1.1").decode("ascii", "replace"),
        "reason": response.extensions.get("reason_phrase", b"").decode("latin-1"),
    }


def from_snapshot(snap: dict[str, Any], request: httpx.Request) -> httpx.Response:
    """A fresh, unread ``httpx.Response`` for ``request`` from a :func:`snapshot`."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in snap["headers"]]
    return httpx.Response(
        snap["status"],
        headers=headers,
        stream=httpx.ByteStream(base64.b64decode(snap["body"])),
        extensions={
            "http_version": snap.get("http_version", "HTTP/1.1").encode("ascii"),
            "reason_phrase": snap.get("reason", "").encode("latin-1"),
        },
        request=request,
    )
