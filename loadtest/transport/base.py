"""The transport interface and the transport-agnostic pieces (URL handling, error kinds)."""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from loadtest._accel import speedups
from loadtest.errors import ConfigError

TransportKind = Literal["fast", "httpx"]

# Transport-level failure kinds (HTTP status failures are classified in loadtest.measure.record).
CONNECT = "connect"          # refused, DNS failure, unreachable, TLS handshake
TIMEOUT = "timeout"          # the per-request --timeout elapsed
DISCONNECT = "disconnect"    # the server closed the connection before the response was complete
PROTOCOL = "protocol"        # the bytes were not valid HTTP/1.1
RUNAWAY = "runaway"          # the response outgrew its hard limit (see response_limits)
ABANDONED = "abandoned"      # the client let go on purpose (--cancel-rate): an outcome, not a failure
CLIENT_LIMIT = "client_limit"  # the client ran out of open files (EMFILE/ENFILE): its limit, not the server


def response_limits(max_tokens: int) -> tuple[int, int]:
    """(pieces, bytes) past which a response is cut off as ``runaway``: a stream that ignores
    max_tokens (or a multi-megabyte chunk) would otherwise run until --timeout and hold its body
    in memory. Generous: 4 body pieces per requested token + 64, and 8 KiB per allowed piece
    (logprobs and engine timings make events of a few KiB). Checked from the event loop every
    0.2 s, never per chunk, so a response may pass a limit by what arrives in 0.2 s."""
    pieces = 4 * max_tokens + 64
    return pieces, 8192 * pieces


RUNAWAY_CHECK_S = 0.2


def abandon_delay_s(after_s: float, t_start_ns: int) -> float:
    """Seconds from now until a request that started at ``t_start_ns`` is to be let go: ``after_s``
    counts from the request start (as start_s and every latency do), and 0 means at once. Called
    once the request bytes are written, so even a request let go "at once" reached the server."""
    return max(0.0, after_s - (perf_counter_ns() - t_start_ns) / 1e9)


def mark_abandoned(ex: Exchange, after_s: float) -> None:
    """Record on ``ex`` that the client let go of it now (its connection is being closed)."""
    ex.abandoned_ns = perf_counter_ns()
    ex.error_kind, ex.error = ABANDONED, f"abandoned by the client (--cancel-after {after_s:g} s)"


def runaway_message(pieces: int, size: int, limits: tuple[int, int]) -> str | None:
    """The one-line cause when a response is past ``limits`` (see response_limits), else None."""
    max_pieces, max_bytes = limits
    if pieces <= max_pieces and size <= max_bytes:
        return None
    return (f"response cut off after {pieces} body pieces, {size:,} bytes (limit {max_pieces} pieces, "
            f"{max_bytes:,} bytes for this max_tokens): the server does not stop")


class StampedPieces(Protocol):
    """A body's (t_ns, bytes) pieces: a list of tuples, or the C ``Pieces`` (loadtest/csrc/pieces.c)
    with the same interface and the bytes in one buffer."""

    def append(self, piece: tuple[int, bytes], /) -> None: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> tuple[int, bytes]: ...


PiecesType: type = speedups.Pieces if speedups is not None else list


def new_pieces() -> StampedPieces:
    return PiecesType()  # type: ignore[no-any-return]


@dataclass(slots=True)
class AttemptInfo:
    """How a request got its answer (filled by loadtest.client.sender): attempts made, 429s met, and the
    seconds waited for retries and for client-side budgets, all outside the latency measured."""

    attempts: int = 0
    rate_limited: int = 0
    retry_wait_s: float = 0.0
    limit_wait_s: float | None = None
    gave_up: str | None = None
    """Why a rate-limited request was not tried again (a wait past its budget, --max-retries)."""


@dataclass(slots=True)
class Exchange:
    """One request's raw outcome. Times are ``perf_counter_ns`` values (a monotonic clock)."""

    t_start_ns: int
    """Just before the request began: before a connection is opened when one is needed, else just
    before the request bytes are written."""
    status: int | None = None
    content_type: str = ""
    pieces: StampedPieces = field(default_factory=new_pieces)
    """Body bytes (after HTTP chunked framing is removed) with their arrival stamps."""
    t_end_ns: int | None = None
    """Arrival of the last byte of the response (None when it never completed)."""
    connect_s: float | None = None
    """Time spent opening a new connection for this request; None when a kept-alive one was reused."""
    error_kind: str | None = None
    error: str | None = None
    limit_headers: dict[str, str] | None = None
    """Rate-limit response headers (``retry-after*``, ``x-ratelimit-*``, lower-cased names), kept
    so that a 429 is retried when the provider says and a run can report the limits it met."""
    attempt_info: AttemptInfo | None = None
    abandoned_ns: int | None = None
    """When the client let go of the request on purpose (``post(..., abandon_after_s=...)``), its
    connection closed then; None when it was not abandoned."""

    def body(self) -> bytes:
        pieces = self.pieces
        return b"".join(p for _, p in pieces) if type(pieces) is list else pieces.body()  # type: ignore[attr-defined]


class Transport(Protocol):
    """A connection pool for one run. ``post`` never raises for network or HTTP failures: they are
    returned in the Exchange, because a failed request is data."""

    base_url: str
    limits: tuple[int, int] | None

    async def post(self, path: str, body: bytes, timeout_s: float, abandon_after_s: float | None = None,
                   headers: dict[str, str] | None = None, affinity: object | None = None) -> Exchange:
        """``headers``: this request's own, beside the run's (e.g. --session-header). ``abandon_after_s``: let go of the request that many seconds after its start, but never
        before its bytes were written, by closing its connection (never returned to a pool
        half-read), so the server sees the disconnect; the Exchange then has error_kind
        ABANDONED, abandoned_ns, and what arrived until then. ``affinity``: requests with the
        same key (a session) go over the same kept-alive connection while it stays open, as one
        user's browser or SDK would, until ``release(key)``; transports that pool on their own
        (httpx, the openai SDK) take it and ignore it."""
        ...

    def release(self, affinity: object) -> None:
        """The requests of ``affinity`` are over: its connection goes back to the shared pool."""
        ...

    async def get(self, path: str, timeout_s: float) -> Exchange: ...

    async def preconnect(self, n: int, timeout_s: float) -> bool:
        """Open ``n`` connections ahead of the run, waiting at most ``timeout_s``: True when all
        are open (httpx and the SDK open them on demand: False)."""
        ...

    async def aclose(self) -> None: ...


def normalize_base_url(endpoint: str) -> str:
    """Accept what the ``openai`` SDK accepts as base_url; a bare host gets ``/v1``.

    Only an empty path gets ``/v1`` appended, so bases such as ``.../openai/v1`` or ``.../api``
    of gateways are used exactly as given.
    """
    raw = endpoint.strip()
    if "://" not in raw:
        raw = "http://" + raw
    example = "(example: http://127.0.0.1:8080/v1)"
    netloc = raw.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    if netloc.count(":") > 1 and not netloc.startswith("["):  # ::1:8000 cannot say where the port starts
        raise ConfigError(f"--endpoint {endpoint!r}: an IPv6 address goes in brackets (http://[::1]:8000/v1)")
    try:
        parts = urlsplit(raw)
        host = parts.hostname
    except ValueError as exc:  # an unclosed [ or a bracketed host that is not an IPv6 address
        raise ConfigError(f"--endpoint {endpoint!r} is not a valid URL ({exc}); an IPv6 address goes in "
                          "brackets: http://[::1]:8000/v1") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"--endpoint {endpoint!r} is not an http(s) URL {example}")
    try:
        _ = parts.port  # urlsplit validates the port only when it is read
    except ValueError:
        raise ConfigError(f"--endpoint {endpoint!r} has an invalid port") from None
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def out_of_files(exc: BaseException | None) -> str | None:
    """The one-line cause when ``exc`` (or what it wraps) is the client running out of open files."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            which = "this process's" if exc.errno == errno.EMFILE else "the system's"
            limit = ""
            if exc.errno == errno.EMFILE:
                try:
                    import resource

                    limit = f" ({resource.getrlimit(resource.RLIMIT_NOFILE)[0]:,})"
                except (ImportError, OSError):
                    pass
            return (f"too many open files: {which} limit{limit} reached; raise it (ulimit -n) "
                    "or lower the concurrency")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def describe_os_error(exc: BaseException) -> tuple[str, str]:
    """Map a connection-time exception to (kind, one-line message)."""
    limit = out_of_files(exc)
    if limit is not None:
        return CLIENT_LIMIT, limit
    if isinstance(exc, socket.gaierror):
        return CONNECT, f"DNS lookup failed: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLError):
        return CONNECT, f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return CONNECT, "connection refused"
    if isinstance(exc, TimeoutError):
        return TIMEOUT, "timed out while connecting"
    if isinstance(exc, OSError):
        return CONNECT, exc.strerror or str(exc) or type(exc).__name__
    return CONNECT, f"{type(exc).__name__}: {exc}"


def is_limit_header(lname: bytes) -> bool:
    """A response header worth keeping in Exchange.limit_headers (lower-cased name)."""
    return lname.startswith(b"x-ratelimit-") or lname.startswith(b"retry-after")


def with_query(path: str, query: str) -> str:
    """``path`` with the transport's fixed query (Azure's ``api-version=...``) appended."""
    if not query:
        return path
    return path + ("&" if "?" in path else "?") + query
