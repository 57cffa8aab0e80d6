"""Request traces (``--trace FILE``): what was asked and when, read from a recorded trace. Part of the
prompt stage: a trace row gives an offset (handed to the scheduler as a plain number), an input
length or messages, and an output length; the prompts themselves are synthesised (tracetext.py).

Formats, detected from the content (not the file name):

- Mooncake JSONL: ``timestamp`` (ms), ``input_length``, ``output_length``, ``hash_ids`` (one id per
  512-token block of the input: rows sharing an id share that block), optional ``session_id`` (as
  AIPerf writes multi-turn traces; each row its timestamp, a ``delay`` instead is refused).
- BurstGPT CSV: ``Timestamp`` (s), ``Model``, ``Request tokens``, ``Response tokens``, ``Total
  tokens``, ``Log Type``. Rows with 0 response tokens (failed requests in the original log) are
  skipped and counted.
- Azure LLM inference trace CSV: ``TIMESTAMP`` (a date and time), ``ContextTokens``, ``GeneratedTokens``.
- Our own JSONL: ``start_s``, ``messages`` (OpenAI chat messages) or ``prompt_tokens``, ``max_tokens``,
  optional ``session_id``.

Rows sharing a ``session_id`` are one multi-turn session (prompts/tracesessions.py says how).

Offsets are seconds after the trace's first row. A row that cannot be read is fatal, as one line
``FILE:LINE: what is wrong``: a trace that is not what the user thinks must not be half replayed.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.errors import DatasetError

MOONCAKE, BURSTGPT, AZURE, JSONL = "mooncake", "burstgpt", "azure", "jsonl"
FORMATS = (MOONCAKE, BURSTGPT, AZURE, JSONL)
BLOCK_TOKENS = 512
"""Tokens per Mooncake hash id."""
_BURSTGPT = ("Timestamp", "Request tokens", "Response tokens")
_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class TraceRow:
    """One request of a trace. ``input_tokens`` is None when ``messages`` are given instead."""

    line: int
    offset_s: float
    output_tokens: int
    input_tokens: int | None = None
    hash_ids: tuple[int, ...] = ()
    messages: tuple[dict[str, Any], ...] | None = None
    session_id: str | None = None


@dataclass
class Trace:
    path: Path
    format: str
    rows: list[TraceRow]
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.rows[-1].offset_s if self.rows else 0.0


class _Bad(Exception):
    """A row's problem, raised inside a parser and turned into ``FILE:LINE: ...`` by the reader."""


def load_trace(source: str | Path) -> Trace:
    """Read a trace of any known format; DatasetError (one line naming the file and line) when a row
    or the file cannot be read, or when nothing is left to replay."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise DatasetError(f"trace not found: {source}" if not path.exists() else f"trace is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None
    lines = text.splitlines()
    first = next((s.strip() for s in lines if s.strip()), "")
    if not first:
        raise DatasetError(f"{path}: the trace is empty")
    trace = _read_jsonl(path, lines) if first.startswith("{") else _read_csv(path, lines)
    if not trace.rows:
        raise DatasetError(f"{path}: no request to replay ({trace.skipped} rows skipped)")
    trace.rows.sort(key=lambda r: r.offset_s)  # stable: rows of one instant keep the file's order
    t0 = trace.rows[0].offset_s
    trace.rows = [TraceRow(r.line, r.offset_s - t0, r.output_tokens, r.input_tokens, r.hash_ids, r.messages,
                           r.session_id) for r in trace.rows]
    return trace


# --- JSONL: Mooncake and ours ------------------------------------------------------------------


def _read_jsonl(path: Path, lines: list[str]) -> Trace:
    fmt: str | None = None
    rows: list[TraceRow] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise _Bad(f"invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise _Bad("a row must be a JSON object")
            if fmt is None:
                fmt = _jsonl_format(obj)
            rows.append(_mooncake_row(obj, lineno) if fmt == MOONCAKE else _our_row(obj, lineno))
        except _Bad as e:
            raise DatasetError(f"{path}:{lineno}: {e}") from None
    return Trace(path, fmt or JSONL, rows)


def _jsonl_format(obj: dict[str, Any]) -> str:
    if "timestamp" in obj and "input_length" in obj:
        return MOONCAKE
    if "start_s" in obj:
        return JSONL
    raise _Bad("unknown trace format: expected Mooncake (timestamp, input_length, output_length, hash_ids) or "
               "loadtest JSONL (start_s, messages or prompt_tokens, max_tokens)")


def _mooncake_row(obj: dict[str, Any], line: int) -> TraceRow:
    ids = obj.get("hash_ids", [])
    if not isinstance(ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in ids):
        raise _Bad("hash_ids must be a list of integers")
    n_in = _count(obj, "input_length", minimum=1)
    if ids and not (len(ids) - 1) * BLOCK_TOKENS < n_in <= len(ids) * BLOCK_TOKENS:
        raise _Bad(f"input_length {n_in} does not fit {len(ids)} hash_ids of {BLOCK_TOKENS} tokens")
    if "timestamp" not in obj and "delay" in obj:
        raise _Bad("delay (a pause after the previous turn) is not supported: give every row its timestamp")
    return TraceRow(line, _seconds(obj.get("timestamp"), "timestamp", scale=1e-3), _count(obj, "output_length"),
                    n_in, tuple(ids), session_id=_session(obj))


def _our_row(obj: dict[str, Any], line: int) -> TraceRow:
    messages = obj.get("messages")
    if messages is not None:
        if (not isinstance(messages, list) or not messages
                or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)):
            raise _Bad("messages must be a non-empty list of {role, content} objects")
        if "prompt_tokens" in obj:
            raise _Bad("give messages or prompt_tokens, not both")
        n_in = None
    elif "prompt_tokens" in obj:
        n_in = _count(obj, "prompt_tokens", minimum=1)
    else:
        raise _Bad("a row needs messages or prompt_tokens")
    return TraceRow(line, _seconds(obj.get("start_s"), "start_s"), _count(obj, "max_tokens", minimum=1), n_in,
                    messages=tuple(messages) if messages is not None else None, session_id=_session(obj))


# --- CSV: BurstGPT and Azure -------------------------------------------------------------------


def _read_csv(path: Path, lines: list[str]) -> Trace:
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    if all(c in header for c in _BURSTGPT):
        fmt, cols = BURSTGPT, _BURSTGPT
    elif all(c in header for c in _AZURE):
        fmt, cols = AZURE, _AZURE
    else:
        raise DatasetError(f"{path}:1: unknown trace format: expected a BurstGPT CSV ({', '.join(_BURSTGPT)}), "
                           f"an Azure LLM trace CSV ({', '.join(_AZURE)}) or JSONL")
    where = [header.index(c) for c in cols]
    trace = Trace(path, fmt, [])
    for lineno, cells in _numbered(reader):
        try:
            if len(cells) < len(header):
                raise _Bad(f"{len(cells)} columns, the header has {len(header)}")
            t, n_in, n_out = (cells[i].strip() for i in where)
            offset = _azure_time(t) if fmt == AZURE else _seconds(_number(t, cols[0]), cols[0])
            fields = {cols[1]: _number(n_in, cols[1]), cols[2]: _number(n_out, cols[2])}
            n_out_i = _count(fields, cols[2])
            if n_out_i == 0:  # BurstGPT logs failed requests with no response: nothing to ask for
                trace.skipped += 1
                trace.skip_reasons["no output tokens"] = trace.skip_reasons.get("no output tokens", 0) + 1
                continue
            trace.rows.append(TraceRow(lineno, offset, n_out_i, _count(fields, cols[1], minimum=1)))
        except _Bad as e:
            raise DatasetError(f"{path}:{lineno}: {e}") from None
    return trace


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Rows with the file line they start on (quoted fields never span lines in these traces)."""
    for cells in reader:
        if cells and any(c.strip() for c in cells):
            yield reader.line_num, cells


def _azure_time(text: str) -> float:
    """Azure's TIMESTAMP, e.g. ``2023-11-16 18:15:46.6805900`` (7 fractional digits, which
    datetime does not read): seconds since the epoch, as a float."""
    stem, _, frac = text.partition(".")
    try:
        whole = datetime.fromisoformat(stem.replace("T", " ").rstrip("Z"))
        fraction = float("0." + frac.rstrip("Z")) if frac else 0.0
    except ValueError:
        raise _Bad(f"TIMESTAMP {text!r} is not a date and time") from None
    return whole.timestamp() + fraction


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _Bad(f"{name} {text!r} is not a number") from None


# --- fields ------------------------------------------------------------------------------------


def _seconds(value: Any, name: str, *, scale: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(f"{name} must be a number")
    if value < 0:
        raise _Bad(f"{name} must be >= 0")
    return float(value) * scale


def _session(obj: dict[str, Any]) -> str | None:
    """A row's session_id as text (ids 7 and "7" are one session), None when it has none."""
    value = obj.get("session_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise _Bad("session_id must be a non-empty string or an integer")
    return str(value)


def _count(obj: dict[str, Any], name: str, *, minimum: int = 0) -> int:
    value = obj.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{name} must be an integer" + ("" if name in obj else " (missing)"))
    if value < minimum:
        raise _Bad(f"{name} must be >= {minimum}, got {value}")
    return value
