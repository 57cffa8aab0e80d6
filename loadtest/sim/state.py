"""What a reply in flight shares with the server: config-derived constants, stats, the chunk log.

``stream.py`` depends on this module only (not on ``server.py``, which imports ``stream.py``), so
the two no longer import each other.
"""

from __future__ import annotations

import hashlib
from typing import IO, Any, Protocol

import orjson

from loadtest.errors import ConfigError

from loadtest.sim.config import SimConfig
from loadtest.sim.engine import Engine


class Conn(Protocol):
    """The part of a connection a reply writes to."""

    def write(self, data: bytes) -> None: ...

    def send(self, status: int, body: bytes, keep_alive: bool) -> None: ...

    def drop(self) -> None: ...

    def stream_done(self, keep_alive: bool) -> None: ...


class Pusher(Protocol):
    def push(self, due_ns: int, stream: Any) -> None: ...


class Stats:
    """Counters behind /sim/stats; times are CLOCK_MONOTONIC so a client process can compare its own."""

    def __init__(self) -> None:
        self.active = 0  # in-flight generation replies; survives reset because they are still running
        self.reset()

    def reset(self) -> None:
        self.requests_received = 0
        self.requests_completed = 0
        self.requests_failed = 0
        self.requests_aborted = 0
        self.rate_limited = 0
        self.tokens_sent = 0
        self.events_sent = 0
        self.wakeups = 0
        self.first_recv_ns: int | None = None
        self.last_done_ns: int | None = None
        self.ttft_ns: list[int] = []
        self.first_token_ns: dict[str, int] = {}  # response id -> CLOCK_MONOTONIC write of its first token
        self.late_sum_ns = 0
        self.late_max_ns = 0
        self.late_count = 0
        self.max_active = self.active

    def late(self, late_ns: int) -> None:
        """A step ran ``late_ns`` after it was due (the server's own lateness, in its stats)."""
        self.late_sum_ns += late_ns
        self.late_count += 1
        if late_ns > self.late_max_ns:
            self.late_max_ns = late_ns

    def received(self, recv_ns: int) -> None:
        self.requests_received += 1
        if self.first_recv_ns is None:
            self.first_recv_ns = recv_ns

    def snapshot(self, config: dict[str, Any]) -> dict[str, Any]:
        n = self.late_count
        return {
            "requests_received": self.requests_received,
            "requests_completed": self.requests_completed,
            "requests_failed": self.requests_failed,
            "requests_aborted": self.requests_aborted,
            "rate_limited": self.rate_limited,
            "tokens_sent": self.tokens_sent,
            "events_sent": self.events_sent,
            "scheduler_wakeups": self.wakeups,
            "active_requests": self.active,
            "max_active_requests": self.max_active,
            "first_request_recv_s": None if self.first_recv_ns is None else self.first_recv_ns / 1e9,
            "last_request_done_s": None if self.last_done_ns is None else self.last_done_ns / 1e9,
            "ttft_server_s": [t / 1e9 for t in self.ttft_ns],
            "first_token_ns": self.first_token_ns,
            "lateness_ms": {"mean": self.late_sum_ns / n / 1e6 if n else None,
                            "max": self.late_max_ns / 1e6 if n else None, "count": n},
            "config": config,
        }



class SimState:
    """Server-wide constants and counters that every reply reads; ``Sim`` adds routing."""

    scheduler: Pusher

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.usage_per_chunk = config.usage_per_chunk and config.usage
        self.ttft_ns = round(config.ttft_ms * 1e6)
        self.tpot_ns = round(config.tpot_ms * 1e6)
        self.tokens_per_chunk = config.tokens_per_chunk
        self.chunk_tokens_max = config.chunk_tokens_max
        self.eol2 = b"\r\n\r\n" if config.crlf else b"\n\n"
        self.chunk_log: IO[bytes] | None = _open_log(config.log_chunks) if config.log_chunks else None
        self.log_header: bytes | None = config.log_header.lower().encode() if config.log_header else None
        self.engine = Engine(config, self.stats, self.ttft_ns, self.tpot_ns)

    def log_chunks(self, response_id: str, tokens: list[int], sent_ns: list[int], completed: bool,
                   engine: dict[str, Any] | None = None) -> None:
        """One line per reply: the ground truth a client's per-chunk counts are checked against, and
        the engine's side of it (``engine``: queue, prefill, how it ended; docs/test-server.md)."""
        if self.chunk_log is not None:
            self.chunk_log.write(orjson.dumps({"id": response_id, "tokens": tokens, "sent_ns": sent_ns,
                                               "completed": completed, **(engine or {})}) + b"\n")
            self.chunk_log.flush()

    def close(self) -> None:
        if self.chunk_log is not None:
            self.chunk_log.close()
            self.chunk_log = None


def request_log(body: Any, header: bytes | None, log_header: bool, raw: bytes | None = None) -> dict[str, Any]:
    """What a --log-chunks line says of the request: the SHA-256 of its body's bytes as received
    (``body_sha256``, the first 16 hex digits: a rerun's requests are proved byte-identical by it),
    its chat messages as [role, content hash] (the first 16 hex digits of the content's SHA-256; tool
    messages and tool calls add more: see _logged_message), so a test can check a conversation's
    history without the log holding the text, and the --log-header value (None when it was not sent)."""
    out: dict[str, Any] = {} if raw is None else {"body_sha256": hashlib.sha256(raw).hexdigest()[:16]}
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list):
        out["messages"] = [_logged_message(m) for m in messages if isinstance(m, dict)]
    if log_header:
        out["header"] = header.decode("latin-1") if header is not None else None
    return out


def _logged_message(m: dict[str, Any]) -> list[Any]:
    """[role, content hash], then for a tool message the call it answers (its tool_call_id) and for an
    assistant message that called tools the calls as received: [[id, name, arguments], ...]."""
    out = [m.get("role"), content_hash(m.get("content"))]
    if m.get("role") == "tool":
        out.append(m.get("tool_call_id"))
    elif isinstance(m.get("tool_calls"), list):
        out.append([[c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments")]
                    for c in m["tool_calls"] if isinstance(c, dict)])
    return out


def content_hash(content: Any) -> str:
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _open_log(path: str) -> IO[bytes]:
    """The chunk log, opened before the server listens: a path that cannot be appended to was
    reported as "cannot listen on HOST:PORT" (the OSError looked like a taken port)."""
    try:
        return open(path, "ab")
    except OSError as exc:
        raise ConfigError(f"sim: log_chunks {path}: cannot append to it: {exc.strerror or exc}") from None
