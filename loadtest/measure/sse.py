"""Server-sent events, parsed after the fact from stamped body pieces.

Parsing once per request (instead of per chunk as it arrives) keeps the event loop free to stamp
other streams' bytes; the stamps were taken on arrival, so nothing is lost by waiting.
An event's time is the arrival of the piece holding its terminating blank line: the earliest
moment any client could know the event was complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat

from loadtest._accel import speedups

Event = tuple[int, bytes, "bytes | None"]
"""(arrival stamp of the bytes completing the event, its data, its event name). A plain tuple:
a NamedTuple costs four times as much to build, and this runs once per token."""


def _block_to_event(t_ns: int, block: bytes) -> Event | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case: one data line
        return (t_ns, block[6:], None)
    data: list[bytes] = []
    name: bytes | None = None
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
        # comments (":...") and other fields (id, retry) carry nothing we measure
    if not data:
        return None
    return (t_ns, b"\n".join(data), name)


def parse_events(pieces: Iterable[tuple[int, bytes]]) -> tuple[list[Event], bytes]:
    """Split stamped body pieces into events. Returns (events, bytes left over that no blank line
    closed). Handles ``\\n``, ``\\r\\n`` and ``\\r`` line endings, also split across pieces."""
    events: list[Event] = []
    buf = b""
    for t_ns, data in pieces:
        if buf:
            data = buf + data
        carry_cr = data.endswith(b"\r")  # maybe half of a \r\n split across pieces
        if carry_cr:
            data = data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n\n" in data:
            blocks = data.split(b"\n\n")
            buf = blocks.pop()
            for block in blocks:
                if block:
                    ev = _block_to_event(t_ns, block.lstrip(b"\n"))
                    if ev is not None:
                        events.append(ev)
        else:
            buf = data
        if carry_cr:
            buf += b"\r"
    return events, buf


def _parse_lf(pieces: Sequence[tuple[int, bytes]], body: bytes) -> tuple[list[Event], bytes]:
    """parse_events for a body without CR: split once in C, then map each event's end offset to
    the piece that holds it with a pointer that only moves forward."""
    events: list[Event] = []
    blocks = body.split(b"\n\n")
    rest = blocks.pop()
    pos = 0
    k = 0
    end = len(pieces[0][1])
    for block in blocks:
        pos += len(block) + 2
        while end < pos:
            k += 1
            end += len(pieces[k][1])
        if not block:
            continue
        if block[:6] == b"data: " and b"\n" not in block:
            events.append((pieces[k][0], block[6:], None))
        else:
            ev = _block_to_event(pieces[k][0], block.lstrip(b"\n"))
            if ev is not None:
                events.append(ev)
    return events, rest


def parse_stream(pieces: Sequence[tuple[int, bytes]]) -> list[Event]:
    """Events, plus a final event left unterminated when the stream simply closed (lenient, as the
    openai SDK is: some servers end without the blank line)."""
    if not pieces:
        return []
    if type(pieces) is not list:
        pieces = list(pieces)  # the C Pieces makes each (t_ns, bytes) tuple on access: make them once
    body = b"".join([p for _, p in pieces])
    events, rest = _parse_lf(pieces, body) if b"\r" not in body else parse_events(pieces)
    rest = rest.strip(b"\r\n")
    if rest:
        ev = _block_to_event(pieces[-1][0], rest.replace(b"\r\n", b"\n"))
        if ev is not None:
            events.append(ev)
    return events


def one_event_per_piece(pieces: Sequence[tuple[int, bytes]]) -> list[bytes] | None:
    """Each piece's event data, when every piece is exactly one single-line ``data: `` event and
    its blank line, as engines write one per token; else None (``parse_stream`` takes every other
    shape). Event k then arrived with piece k, so no splitting or offset mapping is needed: that
    was ~3% of the client's CPU at 50,000 tokens/s."""
    if not pieces:
        return None
    datas = [p for _, p in pieces]
    # Joined first: one pass over pieces scattered across the heap (they arrived interleaved with
    # every other stream's), after which the checks below find them in the CPU cache.
    body = b"".join(datas)
    if (b"\r" in body or not all(map(bytes.startswith, datas, repeat(b"data: ")))
            or not all(map(bytes.endswith, datas, repeat(b"\n\n")))):
        return None
    payloads = [d[6:-2] for d in datas]
    if b"\n" in b"".join(payloads):  # a multi-line event, or several events in one piece
        return None
    return payloads


def _one_event_array(pieces: Sequence[tuple[int, bytes]]) -> tuple[int, int, bytes | None] | None:
    """For the common shape (see one_event_per_piece): (events, JSON events, their payloads as one
    JSON array, or None when there are none). A trailing ``[DONE]`` is counted as an event but left
    out of the array. None for every other shape."""
    payloads = one_event_per_piece(pieces)
    if payloads is None:
        return None
    events = len(payloads)
    if payloads[-1] == b"[DONE]":
        payloads.pop()
    return events, len(payloads), (b"[" + b",".join(payloads) + b"]") if payloads else None


def stamps_of(pieces: Sequence[tuple[int, bytes]]) -> list[int]:
    return [t for t, _ in pieces] if type(pieces) is list else pieces.stamps()  # type: ignore[attr-defined]


# The same function in C (loadtest/csrc/sse.c): two passes over one buffer instead of five over
# scattered objects.
one_event_array = speedups.one_event_array if speedups is not None else _one_event_array
