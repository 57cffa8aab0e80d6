"""The fast transport's C hot path (chunked decoding, header hand-off) against its pure-Python path.

Unit tests drive the C decoder with byte strings split at every kind of boundary; loopback tests
play scripted responses, written in pieces, to the real transport in both modes.
"""

from __future__ import annotations

import asyncio
import random
from time import perf_counter_ns

import pytest

from loadtest.measure import chunks
from loadtest.measure import sse
from loadtest._speedups import ConnBase, Pieces
from loadtest.transport import make_transport
from loadtest.transport import _fast
from loadtest.transport import base


def chunked(payloads: list[bytes], *, ext: bool = False, trailers: bytes = b"") -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";a=b" if ext else b"", p) for p in payloads)
    return out + b"0\r\n" + trailers + b"\r\n"


class Recorder(ConnBase):
    """The C base with the Python side of its contract recorded."""

    def __init__(self) -> None:
        self._pieces = Pieces()
        self.fed: list[bytes] = []
        self.done: bool | None = None
        self.errors: list[str] = []

    def _feed(self, data: bytes) -> None:
        self.fed.append(data)

    def _body_done(self, extra: bool) -> None:
        self.done = extra

    def _body_error(self, message: str) -> None:
        self.errors.append(message)


def decode(body: bytes, cuts: list[int]) -> Recorder:
    """Hand ``body`` to the decoder as the reads ``cuts`` make of it (the first is what arrived
    with the headers)."""
    conn = Recorder()
    bounds = [0, *cuts, len(body)]
    parts = [body[a:b] for a, b in zip(bounds, bounds[1:])]
    conn._t = 7
    conn._start_body(parts[0])
    for part in parts[1:]:
        before = perf_counter_ns()
        n = len(conn._pieces)
        conn.data_received(part)
        assert all(before <= conn._pieces[i][0] <= perf_counter_ns()  # stamped on arrival
                   for i in range(n, len(conn._pieces)))
    return conn


PAYLOADS = [b'data: {"a":1}\n\n', b"x" * 300, b'data: {"b":"\\r\\n"}\n\n', b"z",
            b"\r\n0\r\n\r\n"]  # framing look-alikes inside chunk data are data


@pytest.mark.parametrize("ext,trailers", [(False, b""), (True, b""), (False, b"X-Trailer: 1\r\nY: 2\r\n")])
def test_chunked_body_decodes_the_same_however_it_is_split(ext, trailers):
    body = chunked(PAYLOADS, ext=ext, trailers=trailers)
    rng = random.Random(3)
    splits = [[], list(range(1, len(body))), *[sorted(rng.sample(range(1, len(body)), 5)) for _ in range(200)]]
    for cuts in splits:
        conn = decode(body, cuts)
        assert b"".join(p for _, p in conn._pieces) == b"".join(PAYLOADS), cuts
        assert conn.done is False and conn.errors == [] and conn._body_mode == 0
        assert all(p for _, p in conn._pieces)  # no empty pieces


def test_one_chunk_per_read_gives_one_piece_per_chunk_with_that_reads_stamp():
    payloads = [b"data: %d\n\n" % i for i in range(5)]
    body = chunked(payloads)
    cuts, at = [], 0
    for p in payloads:
        at += len(b"%x\r\n%s\r\n" % (len(p), p))
        cuts.append(at)
    conn = decode(body, cuts[:-1])
    assert [p for _, p in conn._pieces] == payloads
    assert conn._pieces[0][0] == 7  # arrived with the headers: the stamp of that read


def test_bytes_after_the_end_are_reported_and_later_reads_go_to_python():
    conn = decode(chunked([b"abc"]) + b"HTTP/1.1 200 OK\r\n", [])
    assert conn.done is True
    conn.data_received(b"more")
    assert conn.fed == [b"more"]


@pytest.mark.parametrize("body,error", [
    (b"zz\r\n", "invalid chunk size"),
    (b"\r\n", "invalid chunk size"),
    (b"1234567890abcdef0\r\n", "chunk size too large"),
    (b"5\nhello\r\n", "invalid chunk size"),
    (b"5\r\rhello\r\n", "missing LF after chunk size"),
    (b"5\r\nhelloXX", "missing CRLF after chunk data"),
    (b"5\r\nhello\rX", "missing CRLF after chunk data"),
    (b"0\r\nbad\n", "invalid trailer"),
    (b"0\r\n\rX", "invalid end of chunked body"),
])
def test_invalid_framing_is_one_error_and_ends_body_mode(body, error):
    conn = decode(body, [])
    assert conn.errors == [error] and conn.done is None and conn._body_mode == 0


# -- the real transport over loopback, C and pure-Python paths --------------------------------------
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENTS = [b'data: {"choices":[{"delta":{"content":"t%d"}}]}\n\n' % i for i in range(4)] + [b"data: [DONE]\n\n"]


def _exchanges(responses: list[list[bytes]]) -> tuple[list[base.Exchange], int]:
    """POST once per scripted response, all on one keep-alive connection of the fast transport, to a
    loopback server that writes each response in the given pieces with a pause between them (so
    each is its own read). Returns the exchanges and how many connections the server saw."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for pieces in responses:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.002)
        writer.close()

    async def go() -> list[base.Exchange]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t = make_transport("fast", f"http://127.0.0.1:{port}/v1", max_connections=1, headers={})
        try:
            return [await t.post("/chat/completions", b"{}", 5.0) for _ in responses]
        finally:
            await t.aclose()
            server.close()

    return asyncio.run(go()), len(connections)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class CountingCConn(_fast.CConn):
    """The C path, counting the bodies it decoded (a silent fall-back to httptools would still give
    right answers, only slower: these tests must see which path ran)."""

    bodies = 0

    def _start_body(self, data: bytes) -> None:
        type(self).bodies += 1
        super()._start_body(data)


@pytest.fixture(params=["c", "python"])
def path(request, monkeypatch):
    assert _fast._Conn is _fast.CConn, "the C hot path was not built (or LOADTEST_PURE_PYTHON is set)"
    monkeypatch.setattr(_fast, "_Conn", CountingCConn if request.param == "c" else _fast.PyConn)
    if request.param == "python":
        monkeypatch.setattr(base, "PiecesType", list)
    monkeypatch.setattr(CountingCConn, "bodies", 0)
    return request.param


RESPONSE = HEAD + chunked(EVENTS)
SPLITS = {
    "one write": [],
    "inside the blank line": [len(HEAD) - 3, len(HEAD) - 1],
    "headers alone, then per event": [len(HEAD), *[len(HEAD) + len(chunked(EVENTS[:k])) - 5 for k in range(1, 5)]],
    "body starts with the headers": [len(HEAD) + 7, len(HEAD) + 40],
    "every 9 bytes": list(range(9, len(RESPONSE), 9)),
}


@pytest.mark.parametrize("name", SPLITS)
def test_streamed_response_reads_the_same_on_both_paths(path, name):
    (first, second), connections = _exchanges([_split(RESPONSE, SPLITS[name]), [RESPONSE]])
    for ex in (first, second):
        assert ex.error_kind is None and ex.status == 200 and ex.content_type == "text/event-stream"
        assert ex.body() == b"".join(EVENTS)
        assert ex.t_start_ns <= ex.pieces[0][0] <= ex.pieces[-1][0] <= ex.t_end_ns
    assert connections == 1 and second.connect_s is None  # the second reused the kept-alive connection
    assert CountingCConn.bodies == (2 if path == "c" else 0)


@pytest.mark.parametrize("script,kind", [
    ([HEAD + b"5\r\nhello\r\nzz\r\n"], "protocol"),
    ([HEAD + b"5\r\nhel"], "disconnect"),  # the server closes mid-chunk
])
def test_broken_bodies_fail_the_same_on_both_paths(path, script, kind):
    (ex,), _ = _exchanges([script])
    assert ex.error_kind == kind and ex.status == 200
    assert CountingCConn.bodies == (1 if path == "c" else 0)


def test_content_length_bodies_stay_with_httptools(path):
    body = b'{"choices":[{"message":{"content":"hi"}}]}'
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    (ex,), _ = _exchanges([_split(response, [len(response) - 10])])
    assert ex.error_kind is None and ex.body() == body and len(ex.pieces) == 2
    assert CountingCConn.bodies == 0


# -- the SSE fast path in C against its Python version ------------------------------------------------
@pytest.mark.parametrize("datas", [
    [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n', b"data: [DONE]\n\n"],
    [b"data: [DONE]\n\n"],
    [b'data: {"a":1}\n\n'],
    [b"data: [DONE]\n\n", b'data: {"a":1}\n\n'],
    [b"data: \n\n"],
    [b"data: x\r\n\r\n"],
    [b"data:x\n\n"],
    [b"data: a\nb\n\n"],
    [b"data: a\n\ndata: b\n\n"],
    [b"data: a\n"],
    [b"data: a\n\n", b": comment\n\n"],
    [],
])
def test_sse_fast_path_in_c_matches_python(datas):
    pieces = [(i, d) for i, d in enumerate(datas)]
    assert sse.one_event_array is not sse._one_event_array, "the C SSE fast path was not built"
    assert sse.one_event_array(pieces) == sse._one_event_array(pieces)
    assert chunks.one_event_array is sse.one_event_array


def test_pieces_reads_like_the_list_it_replaces():
    items = [(5, b"data: a\n\n"), (9, b""), (12, b"data:b\r\n\r\n"), (2**62, b"x" * 5000)]
    pieces = Pieces()
    for item in items:
        pieces.append(item)
    assert len(pieces) == 4 and bool(pieces) and not Pieces()
    assert list(pieces) == items and pieces[-1] == items[-1] and pieces[1] == (9, b"")
    assert pieces.body() == b"".join(p for _, p in items) and pieces.stamps() == [5, 9, 12, 2**62]
    with pytest.raises(IndexError):
        pieces[4]
    with pytest.raises(TypeError):
        pieces.append(b"no stamp")
    # The general SSE parser (TGI writes "data:" without the space) reads it as it reads the list.
    assert sse.parse_stream(pieces) == sse.parse_stream(items)
    assert base.Exchange(t_start_ns=0, pieces=pieces).body() == base.Exchange(t_start_ns=0, pieces=items).body()
