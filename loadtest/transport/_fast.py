"""The default transport: asyncio protocol + httptools, built for the per-chunk hot path.

Per received TCP segment the work is one ``perf_counter_ns()`` and one append per body piece,
with no per-chunk coroutine wake-ups: that is what lets one core follow ~50,000 tokens/s without
the stamps drifting. Status line and headers go through httptools. The body of a chunked response
(every streamed one) is de-chunked by the small C base class in loadtest/csrc/chunked.c, so a
read costs one C call instead of two interpreted callbacks; on the pure-Python path (see
loadtest/_accel.py) httptools parses the body too, with the same results.
"""

from __future__ import annotations

import asyncio
import ssl
from time import perf_counter_ns
from urllib.parse import urlsplit

import httptools

from loadtest import __version__
from loadtest._accel import speedups
from loadtest.transport.base import (DISCONNECT, PROTOCOL, RUNAWAY, RUNAWAY_CHECK_S, TIMEOUT, Exchange, StampedPieces,
                                     abandon_delay_s, describe_os_error, is_limit_header, mark_abandoned,
                                     runaway_message, with_query)

_MAX_HEAD = 65536  # headers larger than this are left to httptools alone


class _Protocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, carrying one exchange at a time.

    Each read is stamped into ``_t`` before anything parses it (``data_received``, which the two
    concrete classes below provide); then either the C base decodes chunked body bytes into
    ``_pieces`` or ``_feed`` takes them.
    """

    _accelerated = False

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.bytes_seen = False
        self._ex: Exchange | None = None
        self._fut: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._t = 0
        self._framed = False
        self._chunked = False
        self._keep_alive = False
        self._head: bytes | None = None
        self._pieces: StampedPieces | None = None
        self._body_mode = 0
        self._timer: asyncio.TimerHandle | None = None
        self._giveup: asyncio.TimerHandle | None = None  # --cancel-after: when this exchange is let go
        self._seen_n = self._seen_bytes = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _feed(self, data: bytes) -> None:
        if self._ex is None:  # bytes nobody asked for: this connection is not trustworthy any more
            self.closed = True
            self.transport.close()  # type: ignore[union-attr]
            return
        self.bytes_seen = True
        try:
            if self._head is not None:
                data = self._feed_head(data)
            if data:
                self._parser.feed_data(data)  # type: ignore[union-attr]
        except httptools.HttpParserError as exc:
            self._fail(PROTOCOL, f"invalid HTTP response: {exc}")
            self.transport.abort()  # type: ignore[union-attr]

    def _feed_head(self, data: bytes) -> bytes:
        """Feed httptools up to the end of the headers; hand a chunked body to the C decoder.
        Returns the bytes still for httptools."""
        head = self._head + data  # type: ignore[operator]
        end = head.find(b"\r\n\r\n", max(0, len(head) - len(data) - 3))
        if end < 0:
            self._head = head if len(head) <= _MAX_HEAD else None
            return data
        self._head = None
        cut = end + 4 - (len(head) - len(data))
        self._parser.feed_data(data[:cut])  # type: ignore[union-attr]  # on_headers_complete runs here
        ex = self._ex
        if self._chunked and ex is not None and ex.status is not None and ex.status >= 200:
            self._keep_alive = self._parser.should_keep_alive()  # type: ignore[union-attr]
            self._start_body(data[cut:])
            return b""
        return data[cut:]

    def _body_done(self, extra: bool) -> None:
        """Called by the C decoder after the last chunk; ``extra``: bytes nobody asked for followed."""
        self._ex.t_end_ns = self._t  # type: ignore[union-attr]
        self.reusable = self._keep_alive and not extra
        self._resolve()

    def _body_error(self, message: str) -> None:
        self._fail(PROTOCOL, f"invalid HTTP response: {message}")
        self.transport.abort()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self._ex
        if ex is None:
            return
        if ex.status is not None and not self._framed and self._parser is not None:
            # A body delimited by connection close (no Content-Length, not chunked) ends here.
            ex.t_end_ns = ex.pieces[-1][0] if ex.pieces else perf_counter_ns()
            self._resolve()
        elif ex.status is None:
            self._fail(DISCONNECT, "server closed the connection before responding")
        else:
            self._fail(DISCONNECT, "server closed the connection mid-response")

    # -- httptools callbacks --------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"content-type":
            self._ex.content_type = value.decode("latin-1")  # type: ignore[union-attr]
        elif lname == b"content-length":
            self._framed = True
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            self._framed = self._chunked = True
        elif is_limit_header(lname):  # once per response header, never per chunk
            ex = self._ex
            if ex.limit_headers is None:  # type: ignore[union-attr]
                ex.limit_headers = {}  # type: ignore[union-attr]
            ex.limit_headers[lname.decode("latin-1")] = value.decode("latin-1")  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        self._ex.status = self._parser.get_status_code()  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self._pieces.append((self._t, body))  # type: ignore[union-attr]  # _feed admits no bytes outside an exchange

    def on_message_complete(self) -> None:
        self._ex.t_end_ns = self._t  # type: ignore[union-attr]
        self.reusable = self._parser.should_keep_alive()  # type: ignore[union-attr]
        self._resolve()

    # -- exchange lifecycle -----------------------------------------------------------------
    def begin(self, ex: Exchange, fut: asyncio.Future[None], request: bytes, timeout_s: float,
              abandon_after_s: float | None = None) -> None:
        self._ex, self._fut = ex, fut
        self._pieces = ex.pieces
        self._parser = httptools.HttpResponseParser(self)
        self._framed = self._chunked = False
        self._head = b"" if self._accelerated else None
        self._body_mode = 0
        self._seen_n = self._seen_bytes = 0
        self.reusable = False
        self.bytes_seen = False
        loop = fut.get_loop()
        self._timer = loop.call_later(timeout_s, self._on_timeout, timeout_s)
        self.transport.write(request)  # type: ignore[union-attr]
        if abandon_after_s is not None:  # armed after the write: the server always got the request
            self._giveup = loop.call_later(abandon_delay_s(abandon_after_s, ex.t_start_ns), self._on_abandon,
                                           abandon_after_s)

    def _on_timeout(self, timeout_s: float) -> None:
        self._fail(TIMEOUT, f"no complete response within {timeout_s:g} s")
        self.abort()

    def _on_abandon(self, after_s: float) -> None:
        """The user let go: the socket is closed now (abort), so the server sees the disconnect at
        once and this half-read connection can never go back to the pool."""
        self._giveup = None
        ex = self._ex
        if ex is not None and (early := abandon_delay_s(after_s, ex.t_start_ns)) > 0.0:
            # uvloop's timers have 1 ms resolution and may fire a little early: never let go before S.
            self._giveup = asyncio.get_running_loop().call_later(early, self._on_abandon, after_s)
            return
        if ex is not None and ex.error_kind is None:
            mark_abandoned(ex, after_s)
        self.reusable = False
        self._resolve()
        self.abort()

    def check_size(self, max_pieces: int, max_bytes: int) -> None:
        """Cut a response that outgrew its limits (called from FastTransport's watchdog)."""
        pieces = self._pieces
        if pieces is None:
            return
        n = len(pieces)
        if type(pieces) is list:  # pure-Python path: add up only the pieces since the last check
            self._seen_bytes += sum(len(b) for _, b in pieces[self._seen_n:])
            self._seen_n = n
            size = self._seen_bytes
        else:
            size = pieces.nbytes()  # type: ignore[attr-defined]
        message = runaway_message(n, size, (max_pieces, max_bytes))
        if message is not None:
            self._fail(RUNAWAY, message)
            self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, kind: str, message: str) -> None:
        if self._ex is not None and self._ex.error_kind is None:
            self._ex.error_kind, self._ex.error = kind, message
        self.reusable = False
        self._resolve()

    def _resolve(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._giveup is not None:
            self._giveup.cancel()
            self._giveup = None
        fut, self._ex, self._fut = self._fut, None, None
        self._pieces = None
        self._body_mode = 0
        if fut is not None and not fut.done():
            fut.set_result(None)


class PyConn(_Protocol):
    """The pure-Python path: httptools parses the body too."""

    def data_received(self, data: bytes) -> None:
        self._t = perf_counter_ns()  # stamp first: nothing below may delay it
        self._feed(data)


_Conn: type[_Protocol] = PyConn
if speedups is not None:

    class CConn(speedups.ConnBase, _Protocol):  # type: ignore[misc, name-defined]
        """``data_received`` and chunked-body decoding in C (loadtest/csrc/chunked.c)."""

        _accelerated = True

    _Conn = CConn


class FastTransport:
    """A pool of at most ``max_connections`` keep-alive connections; the scheduler never has more
    requests in flight than that, so nothing ever waits for a connection."""

    def __init__(self, base_url: str, *, max_connections: int, headers: dict[str, str], query: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self._host = parts.hostname or "127.0.0.1"
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        self._query = query
        self._ssl: ssl.SSLContext | None = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._max = max_connections
        self._idle: list[_Protocol] = []
        self._open: set[_Protocol] = set()
        self._kept: dict[object, _Protocol] = {}
        """Connections held for an affinity key (a session) between its requests; see post()."""
        self.limits: tuple[int, int] | None = None
        """(max pieces, max bytes) per response; see base.response_limits."""
        self._watchdog: asyncio.TimerHandle | None = None
        host_header = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"Host: {host_header}", f"User-Agent: loadtest/{__version__}",
                 "Accept: text/event-stream, application/json", "Accept-Encoding: identity"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")

    async def _connect(self, timeout_s: float) -> _Protocol:
        loop = asyncio.get_running_loop()
        # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for returns the connection
        # and swallows a cancellation that arrives as the connect completes, so a stopped run's
        # request went on to wait its full --timeout (tests/slow/test_faults_slow.py reproduces it).
        async with asyncio.timeout(timeout_s):
            _, conn = await loop.create_connection(_Conn, self._host, self._port, ssl=self._ssl,
                                                   server_hostname=self._host if self._tls else None)
        self._open.add(conn)
        return conn

    async def preconnect(self, n: int, timeout_s: float) -> bool:
        """Open keep-alive connections ahead of the measured window, as a warm pool would be; True
        when all ``n`` are open (a server whose backlog is full opens none within ``timeout_s``)."""
        need = min(n, self._max) - len(self._idle)
        if need <= 0:
            return True
        results = await asyncio.gather(*(self._connect(timeout_s) for _ in range(need)),
                                       return_exceptions=True)
        opened = [c for c in results if isinstance(c, _Protocol)]
        self._idle.extend(opened)
        return len(opened) == need

    def _request_bytes(self, method: bytes, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        start = method + b" " + with_query(self._prefix + path, self._query).encode() + b" HTTP/1.1\r\n" + self._head
        if headers:
            start += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
        if method == b"POST":  # JSON, unless the request says what it is (a multipart upload)
            kind = b"" if headers and "Content-Type" in headers else b"Content-Type: application/json\r\n"
            return start + kind + b"Content-Length: %d\r\n\r\n" % len(body) + body
        return start + b"\r\n"

    def _watch(self) -> None:
        """Every RUNAWAY_CHECK_S: cut responses past their limits (no per-chunk check)."""
        assert self.limits is not None
        max_pieces, max_bytes = self.limits
        for conn in list(self._open):
            conn.check_size(max_pieces, max_bytes)
        self._watchdog = asyncio.get_running_loop().call_later(RUNAWAY_CHECK_S, self._watch)

    async def _exchange(self, method: bytes, path: str, body: bytes, timeout_s: float,
                        abandon_after_s: float | None = None, headers: dict[str, str] | None = None,
                        affinity: object | None = None) -> Exchange:
        request = self._request_bytes(method, path, body, headers)
        loop = asyncio.get_running_loop()
        if self._watchdog is None and self.limits is not None:
            self._watchdog = loop.call_later(RUNAWAY_CHECK_S, self._watch)
        ex = Exchange(t_start_ns=perf_counter_ns())
        for attempt in (0, 1):
            conn = None
            if affinity is not None and (kept := self._kept.pop(affinity, None)) is not None and not kept.closed:
                conn = kept
            while conn is None and self._idle:
                candidate = self._idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                t0 = perf_counter_ns()
                try:
                    conn = await self._connect(timeout_s)
                except OSError as exc:  # includes TimeoutError and ssl.SSLError
                    ex.error_kind, ex.error = describe_os_error(exc)
                    return ex
                ex.connect_s = (perf_counter_ns() - t0) / 1e9
            fut: asyncio.Future[None] = loop.create_future()
            try:
                conn.begin(ex, fut, request, timeout_s, abandon_after_s)
                await fut
            except asyncio.CancelledError:
                conn.abort()
                self._open.discard(conn)
                raise
            if self.limits is not None and ex.error_kind is None:
                # What arrived between two watchdog checks (a 10 MB chunk) is judged once, here.
                pieces = ex.pieces
                size = sum(len(b) for _, b in pieces) if type(pieces) is list else pieces.nbytes()  # type: ignore[attr-defined]
                message = runaway_message(len(pieces), size, self.limits)
                if message is not None:
                    ex.error_kind, ex.error = RUNAWAY, message
            if conn.reusable and not conn.closed:
                if affinity is None:
                    self._idle.append(conn)
                else:  # kept for the session's next request, until release()
                    self._kept[affinity] = conn
            else:
                self._open.discard(conn)
                conn.abort()
            # A kept-alive connection the server had already closed: nothing was received, so the
            # request never reached it. Retry once on a fresh connection, as browsers do.
            if (attempt == 0 and reused and ex.error_kind == DISCONNECT and ex.status is None
                    and not conn.bytes_seen):
                ex.error_kind = ex.error = None
                continue
            return ex
        return ex

    async def post(self, path: str, body: bytes, timeout_s: float, abandon_after_s: float | None = None,
                   headers: dict[str, str] | None = None, affinity: object | None = None) -> Exchange:
        return await self._exchange(b"POST", path, body, timeout_s, abandon_after_s, headers, affinity)

    def release(self, affinity: object) -> None:
        conn = self._kept.pop(affinity, None)
        if conn is not None and not conn.closed:
            self._idle.append(conn)

    async def get(self, path: str, timeout_s: float) -> Exchange:
        return await self._exchange(b"GET", path, b"", timeout_s)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        self._open.clear()
        self._idle.clear()
        self._kept.clear()
