"""What one response said: OpenAI chunks decoded into typed structs holding only what is measured.

All of a response's chunks are decoded in one msgspec call, straight into these structs (unknown
fields are skipped in C). That costs ~0.4 us per chunk against ~1.4 us for a JSON parse into dicts
plus Python lookups: about 8% of the client's CPU at 50,000 tokens/s. Chunks are decoded one by
one only when the batch fails, to say which chunk was malformed. The structs are untracked by the
cyclic GC (``gc=False``): decoded JSON cannot form a reference cycle, and tracking cost ~5% of the
decode.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from loadtest.measure.messages import MESSAGE_EVENTS, take_message_body, take_message_event
from loadtest.measure.sse import one_event_array, parse_stream, stamps_of
from loadtest.measure.transcripts import take_transcript_body, take_transcript_event
from loadtest.measure.usage import check_openai_io

MALFORMED, STREAM_ERROR = "malformed", "stream_error"


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct, gc=False):
    """One entry of a delta's ``tool_calls``: ``id`` and ``function.name`` come in the first delta
    of a call, ``function.arguments`` in string pieces after it; ``index`` says which call a piece
    belongs to (calls may interleave). A non-streamed message's calls have no index: their position."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: _Function | None = None


class Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCall] | None = None


class Choice(msgspec.Struct, gc=False):
    delta: Delta | None = None       # streamed chat
    message: Delta | None = None     # non-streamed chat
    text: str | None = None          # /completions
    finish_reason: Any = None


class Chunk(msgspec.Struct, gc=False):
    id: Any = None
    choices: list[Choice] | None = None
    usage: Any = None                        # checked with the reply, not per chunk (measure/usage.py)
    timings: dict[str, Any] | None = None   # llama.cpp's own clock, on its last chunk
    error: Any = None
    # The Responses API (--api responses): typed events, and the response object itself.
    type: str | None = None
    delta: Any = None
    response: dict[str, Any] | None = None
    output: list[Any] | None = None
    status: str | None = None
    incomplete_details: dict[str, Any] | None = None
    message: Any = None                      # an `error` event's own message; Messages: message_start's message


class ToolCalls:
    """A reply's tool calls as their deltas arrive: by ``index``, the first delta's ``id`` and
    ``function.name`` kept, every ``arguments`` piece appended in order (servers split the
    arguments JSON anywhere, even inside a string or an escape: only the whole is JSON)."""

    __slots__ = ("by_index", "visible")

    def __init__(self) -> None:
        self.by_index: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        self.visible: dict[int, str] = {}         # content-chunk position -> its text without arguments

    def take(self, calls: list[_ToolCall]) -> str:
        """One delta's entries; returns their argument pieces joined (the chunk's generated text)."""
        args = ""
        for pos, tc in enumerate(calls):
            key = tc.index if tc.index is not None else pos
            entry = self.by_index.get(key)
            if entry is None:
                entry = self.by_index[key] = [None, None, []]
            if tc.id and entry[0] is None:
                entry[0] = tc.id
            fn = tc.function
            if fn is not None:
                if fn.name and entry[1] is None:  # some servers repeat the name: the first one counts
                    entry[1] = fn.name
                if fn.arguments:
                    entry[2].append(fn.arguments)
                    args += fn.arguments
        return args

    def calls(self) -> list[dict[str, Any]]:
        """In index order, as an assistant message carries them back (an id the server did not
        send is made up from the index: a tool message must name the call it answers)."""
        return [{"id": entry[0] or f"call_{key}", "type": "function",
                 "function": {"name": entry[1] or "", "arguments": "".join(entry[2])}}
                for key, entry in sorted(self.by_index.items())]


_ONE = msgspec.json.Decoder(Chunk)
_BATCH = msgspec.json.Decoder(list[Chunk])


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.I | re.S)
_TAGS = re.compile(rb"<(script|style)[^>]*>.*?</\1\s*>|<[^>]*>", re.I | re.S)
_MAX_MESSAGE = 200


def _one_line(text: str) -> str:
    """Whitespace collapsed and cut to one short line: an error page must not flood the console."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."


def error_message(body: bytes) -> str:
    """The server's own words from an error body (OpenAI, FastAPI and plain shapes), as one line;
    for an HTML page (a proxy's 502...) its title, else its first text."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        head = body[:65536]
        if b"<" in head[:512] and (b"<html" in head.lower() or b"<!doctype" in head.lower() or b"<title" in head.lower()):
            m = _TITLE.search(head)
            page = m.group(1) if m and m.group(1).strip() else _TAGS.sub(b" ", head)
            return "HTML page: " + (_one_line(html.unescape(page.decode("utf-8", "replace"))) or "(no text)")
        return _one_line(head.decode("utf-8", "replace")) or "(empty body)"
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return _one_line(err if isinstance(err, str) else orjson.dumps(err).decode())
    return _one_line(body[:65536].decode("utf-8", "replace"))


def _decode_one(data: bytes) -> tuple[Chunk | None, str | None]:
    """(chunk, None), or (None, why it is malformed)."""
    try:
        return _ONE.decode(data), None
    except msgspec.ValidationError as exc:
        return None, f"unexpected chunk shape ({exc}): {data[:80]!r}"
    except msgspec.DecodeError:
        return None, f"invalid JSON: {data[:80]!r}"
    except RecursionError:  # msgspec's own depth limit: a hostile body nested ~1000 deep
        return None, f"JSON nested too deep to read: {data[:80]!r}"


class Stream:
    """The content chunks of one response (stamps, texts, per-chunk usage) and its final facts."""

    start_usage: dict[str, Any] | None = None
    """Messages API: message_start's usage, until message_delta completes it (a class default: chat
    streams never set it)."""

    def __init__(self) -> None:
        self.times: list[int] = []        # content-chunk arrival stamps
        self.texts: list[str] = []
        self.cum_usage: list[int | None] = []
        self.first_content_ns: int | None = None  # first visible (non-reasoning) content
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.timings: dict[str, Any] | None = None
        self.response_id: str | None = None
        self.error_kind: str | None = None
        self.error: str | None = None
        self.chunks = 0
        self.reasoning_texts: list[str] = []  # streamed reasoning (reasoning_content / reasoning)
        # Tool calls (tools.py), None until a chunk carries one: the plain content path never touches them.
        self.tool_calls: ToolCalls | None = None

    def read_sse(self, pieces: Sequence[tuple[int, bytes]]) -> None:
        """Take a streamed body: the common shape (one event per piece) skips SSE splitting."""
        shape = one_event_array(pieces)
        if shape is None:
            self.read_events(parse_stream(pieces))
            return
        self.chunks, n_json, array = shape
        if array is None:
            return
        try:
            chunks = _BATCH.decode(array)
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested past msgspec's depth
            chunks = None
        if chunks is None or len(chunks) != n_json:  # a malformed chunk, or [DONE] mid-stream
            self.read_events(parse_stream(pieces))
            return
        self._take_all(stamps_of(pieces), chunks)

    def read_events(self, events: Sequence[tuple[int, bytes, bytes | None]]) -> None:
        """Take every SSE event of a stream; ``[DONE]`` ends nothing early (a stream may lack it)."""
        self.chunks = len(events)
        items = [(t, d) for t, d, _ in events if d != b"[DONE]"]
        if not items:
            return
        try:
            chunks = _BATCH.decode(b"[" + b",".join([d for _, d in items]) + b"]")
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested past msgspec's depth
            chunks = None
        bad = None
        if chunks is None or len(chunks) != len(items):
            chunks = []
            for _, data in items:  # find the bad one; everything before it still counts
                chunk, bad = _decode_one(data)
                if chunk is None:
                    break
                chunks.append(chunk)
        self._take_all([t for t, _ in items], chunks)
        if bad is not None and not self.error_kind:
            self.error_kind, self.error = MALFORMED, bad

    def _take_all(self, stamps: Sequence[int], chunks: list[Chunk]) -> None:
        take = self.take
        for t_ns, chunk in zip(stamps, chunks):
            take(t_ns, chunk)
            if self.error_kind:
                return

    def read_body(self, t_ns: int, body: bytes) -> None:
        chunk, bad = _decode_one(body)
        if chunk is None:
            self.error_kind, self.error = MALFORMED, bad
        elif chunk.choices is None and chunk.type is None and chunk.output is None and not chunk.error:
            take_transcript_body(self, t_ns, body)  # {"text": ...}: a transcription (measure/transcripts.py)
        elif chunk.type == "message":  # Anthropic's non-streamed reply: its own shape (measure/messages.py)
            take_message_body(self, t_ns, body)
        else:
            self.take(t_ns, chunk)

    def take(self, t_ns: int, c: Chunk) -> None:
        """One decoded chunk. Runs per token: ordered for the common case, a content delta."""
        choices = c.choices
        if (c.type is not None and choices is None) or c.output is not None:
            (take_message_event if c.type in MESSAGE_EVENTS else take_response_event)(self, t_ns, c)
            return
        if c.error and not choices:
            self.error_kind, self.error = STREAM_ERROR, "server sent an error event: " + error_message(
                orjson.dumps({"error": c.error}))
            return
        if self.response_id is None and c.id is not None:
            self.response_id = str(c.id)
        cum = None
        usage = c.usage
        if usage:  # checked once the reply is complete (measure/usage.py), not here: this runs per chunk
            try:
                cum = usage.get("completion_tokens")
            except AttributeError:  # not an object: kept, and named invalid with the reply
                self.usage = usage
            if cum is not None:
                self.usage = usage
        if c.timings is not None:
            self.timings = c.timings
        if not choices:
            return
        choice = choices[0]
        if choice.finish_reason:
            self.finish_reason = str(choice.finish_reason)
        delta = choice.delta or choice.message
        if delta is None:  # /completions
            text, reasoning = choice.text or "", ""
        else:
            text = delta.content or choice.text or ""
            reasoning = delta.reasoning_content or delta.reasoning or ""
            if delta.tool_calls:  # rare: kept off the content path, which pays this one test
                text = self._take_tool_calls(delta.tool_calls, text, reasoning)
        if not (text or reasoning):
            return  # role-only, empty and finish chunks carry no generated text
        self.add_text(t_ns, text, reasoning, cum if cum.__class__ is int else None)

    def _take_tool_calls(self, calls: list[_ToolCall], content: str, reasoning: str) -> str:
        """Assemble the chunk's tool-call pieces; returns the chunk's generated text (its content,
        then its argument pieces), timed and counted like any other. What the chunk shows apart
        from the arguments is noted, so the reply's visible text leaves them out."""
        if self.tool_calls is None:
            self.tool_calls = ToolCalls()
        args = self.tool_calls.take(calls)
        if args:
            self.tool_calls.visible[len(self.times)] = reasoning + content
        return content + args

    def visible_text(self) -> str:
        """The reply's text as a conversation carries it on: its content (with its reasoning, as a
        session's history always has), without the tool calls' arguments."""
        calls = self.tool_calls
        if calls is None or not calls.visible:
            return "".join(self.texts)
        seen = calls.visible
        return "".join(seen.get(i, t) for i, t in enumerate(self.texts))

    def calls(self) -> list[dict[str, Any]]:
        """The reply's tool calls, assembled, in OpenAI's message shape (empty: none)."""
        return self.tool_calls.calls() if self.tool_calls is not None else []

    def add_text(self, t_ns: int, text: str, reasoning: str, cum: int | None) -> None:
        if text and self.first_content_ns is None:
            self.first_content_ns = t_ns
        self.times.append(t_ns)
        if reasoning:
            self.reasoning_texts.append(reasoning)
            self.texts.append(reasoning + text)
        else:
            self.texts.append(text)
        self.cum_usage.append(cum)


_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def take_response_event(s: Stream, t_ns: int, c: Chunk) -> None:
    """One Responses API event (``response.output_text.delta``, ``response.completed``...) or a
    non-streamed response object. Usage is mapped to chat's names (completion_tokens...), so one
    record serves both APIs. Reasoning is hidden by the API; its tokens come from usage only."""
    kind = c.type or ""
    if kind == "response.output_text.delta" or kind == "response.refusal.delta":
        if isinstance(c.delta, str) and c.delta:
            s.add_text(t_ns, c.delta, "", None)
        return
    if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
        if isinstance(c.delta, str) and c.delta:
            s.add_text(t_ns, "", c.delta, None)
        return
    if kind.startswith("transcript.text."):  # the transcription dialect (measure/transcripts.py)
        take_transcript_event(s, t_ns, c)
        return
    if kind in ("error", "response.failed"):
        detail = c.error or (c.response or {}).get("error") or {"message": c.message or kind}
        s.error_kind, s.error = STREAM_ERROR, "server sent an error event: " + error_message(orjson.dumps({"error": detail}))
        return
    response = c.response if c.response is not None else (
        {"id": c.id, "status": c.status, "usage": c.usage, "output": c.output, "incomplete_details": c.incomplete_details}
        if c.output is not None else None)
    if response is None:
        return
    if s.response_id is None and response.get("id") is not None:
        s.response_id = str(response["id"])
    status = response.get("status")
    if status in ("completed", "incomplete"):
        reason = (response.get("incomplete_details") or {}).get("reason")
        s.finish_reason = "stop" if status == "completed" else _FINISH.get(reason, reason or "incomplete")
    usage = response.get("usage")
    if isinstance(usage, dict) and usage.get("output_tokens") is not None:
        s.usage = check_openai_io(usage)
    if c.output is not None:  # a non-streamed response: its text arrives whole, now
        text = "".join(part.get("text") or "" for item in (response.get("output") or []) if isinstance(item, dict)
                       and item.get("type") == "message" for part in (item.get("content") or []) if isinstance(part, dict))
        if text:
            s.add_text(t_ns, text, "", None)
