"""The wire between the coordinator and its workers, in one place (as Locust keeps its workers'
protocol in one small module): two one-way byte channels (a multiprocessing pipe each way, or a
Ray actor's buffer and calls), each message one tag byte and a payload.

Worker -> coordinator:
  ``S``                   a request started (so that a worker that dies is known to have lost
                          those started and never recorded: started - records = lost in flight)
  ``R`` + record          a finished request: its requests.jsonl line
  ``P`` + texts \\n record the same, with its chunk texts for the post-run /tokenize pass
  ``Y``                   ready: connections open, waiting at the start barrier
  ``W``                   its share of a counted warm-up is done
  ``D`` + JSON            done: how it ended, its exit code, CPU, monitors (``done_info``)
  ``E`` + text            error: one line; the worker then exits
Coordinator -> worker:
  ``G`` + wall time       go: start at this time.time() instant
  ``M``                   the measured phase may begin (every worker finished its warm-up)
  ``X``                   stop: in-flight requests are cancelled and recorded as such
"""

from __future__ import annotations

from typing import Any

import orjson

STARTED, RECORD, RECORD_WITH_TEXTS, READY, WARM, DONE, ERROR = b"S", b"R", b"P", b"Y", b"W", b"D", b"E"
GO, MEASURED, STOP = b"G", b"M", b"X"
"""Tags; a bare tag (STARTED, READY, WARM, MEASURED, STOP) is a whole message."""


def split(message: bytes) -> tuple[bytes, bytes]:
    """(tag, payload)."""
    return message[:1], message[1:]


def record(line: bytes) -> bytes:
    return RECORD + line


def record_with_texts(request_id: int, texts: list[str], line: bytes) -> bytes:
    return RECORD_WITH_TEXTS + orjson.dumps({"id": request_id, "texts": texts}) + b"\n" + line


def texts_and_record(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """A ``P`` payload: ({id, texts}, the record's line)."""
    texts, line = payload.split(b"\n", 1)
    return orjson.loads(texts), line


def done(info: dict[str, Any]) -> bytes:
    return DONE + orjson.dumps(info, option=orjson.OPT_SERIALIZE_NUMPY)


def error(text: str) -> bytes:
    return ERROR + text.encode()


def go(at_wall: float) -> bytes:
    return GO + repr(at_wall).encode()

