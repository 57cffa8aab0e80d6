"""Tiny scripted HTTP servers on loopback for the fault tests: each connection's requests are read
properly (headers + Content-Length body) and answered by a behaviour function, byte for byte, in
a thread, so a test can play what no well-behaved server would (resets, stalls, endless streams,
HTML pages, huge chunks)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator

Behaviour = Callable[["FaultServer", socket.socket, int, bytes], None]
"""(server, client socket, 1-based request number, request head) -> writes the answer; returning
keeps the connection alive for the next request."""

SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: keep-alive\r\n\r\n")
NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
             b"</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n" + b"<!-- padding -->\r\n" * 6)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(content: str | bytes) -> bytes:
    if isinstance(content, str):
        content = json.dumps(content).encode()
    else:
        content = b'"' + content + b'"'
    return chunk(b'data: {"id":"r","choices":[{"delta":{"content":' + content + b'}}]}\n\n')


def response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "X")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: keep-alive\r\n\r\n").encode() + body


def ok_stream(sock: socket.socket, tokens: int = 4) -> None:
    sock.sendall(SSE_HEAD + b"".join(event("tok") for _ in range(tokens))
                 + chunk(b'data: {"id":"r","choices":[{"delta":{},"finish_reason":"stop"}],"usage":'
                         b'{"completion_tokens":%d,"prompt_tokens":5}}\n\n' % tokens)
                 + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultServer:
    def __init__(self, behaviour: Behaviour, *, backlog: int = 128) -> None:
        self.behaviour = behaviour
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.port = self.listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.requests = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while not self.stopping.is_set():
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                with self._lock:
                    self.requests += 1
                    n = self.requests
                self.behaviour(self, sock, n, head)
                if sock.fileno() < 0:
                    return

    def close_listener(self) -> None:
        """Refuse new connections from now on (connections already open stay)."""
        with contextlib.suppress(OSError):
            self.listener.close()

    def stop(self) -> None:
        self.stopping.set()
        self.close_listener()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def serve(behaviour: Behaviour, **kwargs: object) -> Iterator[FaultServer]:
    server = FaultServer(behaviour, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def hold(server: FaultServer) -> None:
    """Keep the connection open, saying nothing more, until the test ends."""
    server.stopping.wait()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose listener never accepts and whose backlog is full: connects never complete
    (they hang in SYN retries), preconnect's included."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    try:
        yield port
    finally:
        for s in fillers:
            s.close()
        listener.close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never says a word (its /models, its /metrics): the
    base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stopping.set()
        listener.close()
        for c in held:
            c.close()
