"""One client connection of the test server: a raw asyncio protocol with httptools parsing and
keep-alive, answering its requests strictly in order (pipelined ones queue up). The routing and
the replies are the server's (sim/server.py); this is the HTTP layer under them.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from time import monotonic_ns
from typing import Protocol, cast

import httptools

from loadtest.sim.generate import RequestError
from loadtest.sim.stream import Stream


class Server(Protocol):
    """What a connection needs of the server (sim/server.py's Sim): where to hand a request, the
    set of open connections, the count that numbers them, and which header to log."""

    connections: set[Connection]
    connections_made: int
    log_header: bytes | None

    def handle(self, conn: Connection, req: Request) -> None: ...

_REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
            405: b"Method Not Allowed", 408: b"Request Timeout", 413: b"Payload Too Large",
            422: b"Unprocessable Entity", 429: b"Too Many Requests", 500: b"Internal Server Error",
            502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}


class Request:
    """One fully received HTTP request; only what routing and auth need is kept."""

    __slots__ = ("auth", "body", "keep_alive", "logged_header", "method", "path", "query", "recv_ns")

    def __init__(self, method: bytes, path: bytes, auth: bytes | None, body: bytes, keep_alive: bool,
                 recv_ns: int, query: bytes = b"", logged_header: bytes | None = None) -> None:
        self.logged_header = logged_header
        self.method = method
        self.path = path
        self.query = query
        self.auth = auth
        self.body = body
        self.keep_alive = keep_alive
        self.recv_ns = recv_ns


class Connection(asyncio.Protocol):
    """One client connection; requests are answered strictly in order, pipelined ones queue up."""

    def __init__(self, sim: Server) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.auth: bytes | None = None
        self.logged_header: bytes | None = None
        self.body_parts: list[bytes] = []
        self.pending: deque[Request] = deque()
        self.busy = False
        self.closing = False
        self.stream: Stream | None = None
        sim.connections_made += 1
        self.number = sim.connections_made
        """Which connection of the run this is (1, 2, ...): logged per request with --log-chunks."""

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Each SSE event must leave now, not wait for Nagle to coalesce it with the next one.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sim.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            error = RequestError(400, f"Malformed HTTP request: {exc}")
            self.pending.clear()
            if not self.busy:
                self.send(error.status, error.body(), keep_alive=False)
            self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.sim.connections.discard(self)
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.pending.clear()

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.auth = None
        self.logged_header = None
        self.body_parts = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == self.sim.log_header:
            self.logged_header = value
        if name == b"authorization":
            self.auth = value
        elif name == b"api-key" or (name == b"x-api-key" and self.auth is None):  # Azure's; Anthropic's (messages.py)
            self.auth = b"Bearer " + value
        elif name == b"expect" and value.lower() == b"100-continue" and not self.busy and not self.pending:
            # curl sends this for bodies over 1 KiB and would otherwise stall a second before sending it
            # (never mid-response: that would corrupt the reply being written).
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_parts.append(body)

    def on_message_complete(self) -> None:
        # Receipt time is the anchor of the whole token schedule, so take it before anything else.
        recv_ns = monotonic_ns()
        path, _, query = self.url.partition(b"?")
        self.pending.append(Request(self.parser.get_method(), path, self.auth,
                                    b"".join(self.body_parts), self.parser.should_keep_alive(), recv_ns, query,
                                    self.logged_header))
        self._next()

    # -- responses ----------------------------------------------------------------------------------
    def _next(self) -> None:
        while self.pending and not self.busy and not self.closing:
            self.sim.handle(self, self.pending.popleft())

    def write(self, data: bytes) -> None:
        if not self.closing and self.transport is not None:
            self.transport.write(data)

    def send(self, status: int, body: bytes, keep_alive: bool, headers: dict[str, str] | None = None,
             content_type: bytes = b"application/json") -> None:
        """Write a whole response (JSON unless told); the caller decides when the connection is free again."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() if headers else b""
        head = b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\nContent-Length: %d\r\n%bConnection: %b\r\n\r\n" % (
            status, _REASONS.get(status, b"Error"), content_type, len(body), extra,
            b"keep-alive" if keep_alive else b"close")
        self.write(head + body)

    def respond(self, status: int, body: bytes, keep_alive: bool, headers: dict[str, str] | None = None,
                content_type: bytes = b"application/json") -> None:
        """Answer at once (not scheduled): errors, stats, models, health, metrics."""
        self.send(status, body, keep_alive, headers, content_type)
        if not keep_alive:
            self.close()

    def begin(self, stream: Stream) -> None:
        self.busy = True
        self.stream = stream
        stream.start()

    def stream_done(self, keep_alive: bool) -> None:
        self.busy = False
        self.stream = None
        if not keep_alive:
            self.close()
        else:
            self._next()

    def close(self) -> None:
        """Close after what is buffered has been sent."""
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()

    def drop(self) -> None:
        """End the connection abruptly; data the kernel already holds still goes out, then FIN."""
        if self.transport is None or self.transport.is_closing():
            self.closing = True
            return
        self.closing = True
        if self.transport.get_write_buffer_size():
            self.transport.close()  # abort() would discard tokens we claim to have sent
        else:
            self.transport.abort()
