"""HTTP semantics the transports apply: which requests may be replayed, the keys
and names of a request, what may be cached, and which outcomes are retryable.

Nothing here does I/O or waits; every function looks at a request or a
response and returns a plain answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from httpx._multipart import MultipartStream

from ..core.outcome import Predicate, errors

__all__ = [
    "DEFAULT_KEYS",
    "IDEMPOTENT_METHODS",
    "RETRYABLE",
    "RETRYABLE_STATUSES",
    "SUCCESS_STATUSES",
    "RequestKeys",
    "SnapshotError",
    "cacheable",
    "cut_timeouts",
    "fingerprint",
    "from_snapshot",
    "host_of",
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


def host_of(request: httpx.Request) -> str:
    """The host a request goes to, with its port when the URL gives one (``"127.0.0.1:8080"``)."""
    ref = request.url._uri_reference  # the parsed parts, read without re-encoding
    return f"{ref.host}:{ref.port}" if ref.port else ref.host


def operation_of(request: httpx.Request, route: Callable[[httpx.Request], str | None] | None = None) -> str:
    """The ``Context.operation`` of a request: ``"METHOD host"`` (``"GET api.example.com"``).

    Bounded: it names the host (and a port other than the scheme's), never the
    path, the query or credentials, so a metric label made from it takes one
    value per host. With ``route`` (a callable naming the route template of a
    request, ``"/items/{id}"``), it is ``"METHOD host/items/{id}"``; a route
    of ``None`` falls back to the host alone.
    """
    host = host_of(request)
    if route is not None:
        template = route(request)
        if template is not None:
            return f"{request.method} {host}{template}"
    return f"{request.method} {host}"


_DEFAULT_CREDENTIAL_HEADERS = ("X-Api-Key", "X-Auth-Token")
_ALWAYS_CREDENTIALS = frozenset({b"authorization", b"proxy-authorization", b"cookie"})


def fingerprint(*secrets: bytes | None, key: bytes = b"") -> str:
    """A short keyed hash standing for credentials in keys; the values themselves never appear.

    Formula: the first 16 bytes of keyed BLAKE2b (``key``, personalised
    ``resilient-http``: a MAC) over the values, each followed by a separator
    (``None`` is its own mark), in hex. Without the key, a logged fingerprint
    cannot be checked against a guessed credential.
    """
    digest = hashlib.blake2b(digest_size=16, key=key, person=b"resilient-http")
    for secret in secrets:
        digest.update(b"\0" if secret is None else secret + b"\0\1")
    return digest.hexdigest()


def _url_hash(url: str) -> str:
    return hashlib.blake2b(url.encode("utf-8", "surrogateescape"), digest_size=8, person=b"resilient-url").hexdigest()


class RequestKeys:
    """How a request's key is made: which headers are credentials, and the fingerprints' secret.

    Args:
        credential_headers: headers besides ``Authorization``, ``Proxy-Authorization``
            and ``Cookie`` that identify a caller (default ``X-Api-Key``, ``X-Auth-Token``).
        fingerprint_key: the HMAC secret of credential fingerprints (``str`` or
            ``bytes``; a fleet secret). Left out, a random one per process: keys of
            credentialed requests then differ per process (anonymous ones never do).
    """

    __slots__ = ("_names", "_secret", "credential_headers")

    def __init__(
        self,
        credential_headers: Iterable[str] | None = None,
        fingerprint_key: str | bytes | None = None,
    ) -> None:
        names = _DEFAULT_CREDENTIAL_HEADERS if credential_headers is None else credential_headers
        if isinstance(names, (str, bytes)):
            raise TypeError(f"credential_headers must be a collection of header names, got {names!r}")
        checked = []
        for name in names:
            if not isinstance(name, str) or not name or not name.isascii() or any(c in name for c in " :\t\r\n"):
                raise ValueError(f"credential_headers must be header names, got {name!r}")
            checked.append(name)
        self.credential_headers = tuple(checked)
        self._names = _ALWAYS_CREDENTIALS | {n.lower().encode("ascii") for n in checked}
        if fingerprint_key is None:
            secret = os.urandom(32)
        elif isinstance(fingerprint_key, str):
            secret = fingerprint_key.encode("utf-8")
        elif isinstance(fingerprint_key, bytes):
            secret = fingerprint_key
        else:
            raise TypeError(f"fingerprint_key must be str, bytes or None, got {type(fingerprint_key).__name__}")
        if not secret:
            raise ValueError("fingerprint_key must not be empty")
        if len(secret) > 64:  # BLAKE2b's key limit: a longer secret is hashed down first
            secret = hashlib.blake2b(secret).digest()
        self._secret = secret

    def is_credential(self, name: str) -> bool:
        """Whether the header ``name`` (any case) carries a credential."""
        return name.lower().encode("latin-1", "replace") in self._names

    def fingerprint(self, *secrets: bytes | None) -> str:
        """The keyed fingerprint of ``secrets`` (see :func:`fingerprint`)."""
        return fingerprint(*secrets, key=self._secret)

    def key(self, request: httpx.Request) -> str:
        """The coalescing and caching key of a request: method, host and path, a hash of the
        whole URL, and a keyed fingerprint of its credentials.

        ``"GET api.example/items ~<url hash>"`` for an anonymous request (the
        same in every process); with an ``Authorization``, ``Proxy-Authorization``,
        ``Cookie`` or credential header, or credentials in the URL, a
        ``" #<fingerprint>"`` of them is appended, so two users never share a
        response. Neither the query string nor a credential appears in a key.
        """
        url = request.url
        ref = url._uri_reference  # the parsed parts, read without re-encoding
        found: list[bytes] | None = None
        names = self._names
        for _, name, value in request.headers._list:  # one pass; Headers.get() costs a scan per name
            if name in names:
                if found is None:
                    found = []
                found.append(name + b":" + value)
        userinfo = ref.userinfo
        if userinfo:
            url = url.copy_with(username=None, password=None)
            found = [*(found or ()), b"@" + userinfo.encode("utf-8", "surrogateescape")]
        base = f"{request.method} {ref.host}{ref.path} ~{_url_hash(str(url))}"
        if found is None:
            return base
        found.sort()
        return f"{base} #{self.fingerprint(*found)}"


#: The keys of transports given no ``credential_headers`` / ``fingerprint_key``.
DEFAULT_KEYS = RequestKeys()


def request_key(request: httpx.Request, keys: RequestKeys | None = None) -> str:
    """The coalescing and caching key of a request (see :meth:`RequestKeys.key`)."""
    return (keys or DEFAULT_KEYS).key(request)


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


class SnapshotError(ValueError):
    """A stored response record that does not decode to a valid snapshot."""


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


def from_snapshot(snap: Any, request: httpx.Request) -> httpx.Response:
    """A fresh, unread ``httpx.Response`` for ``request`` from a :func:`snapshot`.

    Raises :class:`SnapshotError` when ``snap`` is not one: not a mapping, a
    status outside 100-599, headers that are not ``[name, value]`` pairs of
    latin-1 strings, a body that is not valid base64.
    """
    try:
        status = snap["status"]
        pairs = snap["headers"]
        body = snap["body"]
        version = snap.get("http_version", "HTTP/1.1")
        reason = snap.get("reason", "")
        if type(status) is not int or not 100 <= status <= 599:
            raise SnapshotError(f"status {status!r}")
        if type(pairs) is not list or type(body) is not str or type(version) is not str or type(reason) is not str:
            raise SnapshotError("field types")
        headers = []
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str:
                raise SnapshotError("a header is not a [name, value] pair")
            headers.append((pair[0].encode("latin-1"), pair[1].encode("latin-1")))
        content = base64.b64decode(body, validate=True)
        extensions = {"http_version": version.encode("ascii"), "reason_phrase": reason.encode("latin-1")}
    except SnapshotError:
        raise
    except (TypeError, KeyError, AttributeError, ValueError, UnicodeError, binascii.Error) as exc:
        raise SnapshotError(f"{type(exc).__name__}") from exc
    try:
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), extensions=extensions, request=request
        )
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"{type(exc).__name__}") from exc
