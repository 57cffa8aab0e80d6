"""The Anthropic Messages API (``--api messages``) as a dialect of the one stream reader.

Its stream is typed events: ``message_start`` (the message id and the prompt's usage),
``content_block_start``/``_delta``/``_stop`` per block (``text_delta``, ``thinking_delta``,
``input_json_delta`` of a tool call, ``signature_delta``), ``message_delta`` (``stop_reason`` and
the cumulative ``usage.output_tokens``), ``message_stop``, ``ping`` and ``error`` (read by
chunks.take_response_event, which fails the request as ``stream_error``); non-streamed, one
``message`` object with its content blocks. chunks.Stream.take sends every typed event here or to
the Responses reader by its ``type``, and Stream.read_body a non-streamed message, decoded into its
own struct: the chat path and its chunk struct pay nothing for this dialect.

Usage is mapped to chat's names so that one record serves every API. Anthropic's ``input_tokens``
counts only the prompt tokens after the last cache breakpoint: the prompt the model saw is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``. Thinking arrives as text
(``thinking_delta``) and is timed and counted as reasoning, as chat's ``reasoning_content`` is;
Anthropic's usage does not split it out, so reasoning_tokens are counted from that text.

This module must not import chunks.py (chunks.py imports it): the stream it fills is typed by the
small protocol below.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec
import orjson

from loadtest.measure.usage import check_anthropic

MESSAGE_EVENTS = frozenset({"message_start", "content_block_start", "content_block_delta", "content_block_stop",
                            "message_delta", "message_stop", "ping"})
"""The event ``type`` values read here; ``error`` is read as the Responses API's is
(take_response_event), one error event shape for both."""

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
           "refusal": "content_filter"}
"""Anthropic's stop_reason in chat's finish_reason names (others, e.g. pause_turn, kept as sent)."""


class _Stream(Protocol):
    response_id: str | None
    finish_reason: str | None
    usage: dict[str, Any] | None
    start_usage: dict[str, Any] | None
    error_kind: str | None
    error: str | None

    def add_text(self, t_ns: int, text: str, reasoning: str, cum: int | None) -> None: ...


class _Event(Protocol):
    """The fields of chunks.Chunk an event fills (message_start's ``message``, a delta's ``delta``,
    message_delta's ``usage``): the chat chunk's struct, which gains nothing for this dialect."""

    type: str | None
    delta: Any
    usage: dict[str, Any] | None
    message: Any


class _Message(msgspec.Struct, gc=False):
    """A non-streamed reply (``"type": "message"``), decoded here rather than into the chunk
    struct, so that chat chunks carry no field of it."""

    id: Any = None
    content: list[Any] | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None


_MESSAGE = msgspec.json.Decoder(_Message)


def take_message_event(s: _Stream, t_ns: int, c: _Event) -> None:
    """One event of a Messages stream. Text and thinking deltas are the generated output (timed
    per event); usage is final only with ``message_delta``: ``message_start``'s ``output_tokens``
    is a placeholder, so a stream cut short after it has no usage and its partial tokens are
    counted from what arrived. Block openings (Anthropic's open empty), block ends, ``message_stop``
    and ``ping`` carry nothing measured."""
    kind = c.type
    if kind == "content_block_delta":
        delta = c.delta
        if isinstance(delta, dict):
            dtype = delta.get("type")
            if dtype == "text_delta":
                _add(s, t_ns, delta.get("text"), "")
            elif dtype == "thinking_delta":
                _add(s, t_ns, "", delta.get("thinking"))
            elif dtype == "input_json_delta":  # a tool call's arguments: generated, timed as chat's are
                _add(s, t_ns, delta.get("partial_json"), "")
            # signature_delta (thinking's signature) and citations_delta carry no generated text
        return
    if kind == "message_start":
        message = c.message if isinstance(c.message, dict) else {}
        if s.response_id is None and message.get("id") is not None:
            s.response_id = str(message["id"])
        if isinstance(message.get("usage"), dict):
            s.start_usage = message["usage"]
    elif kind == "message_delta":
        if isinstance(c.delta, dict) and c.delta.get("stop_reason"):
            s.finish_reason = _finish(c.delta["stop_reason"])
        if isinstance(c.usage, dict):
            _take_usage(s, {**(s.start_usage or {}), **{k: v for k, v in c.usage.items() if v is not None}})


def take_message_body(s: _Stream, t_ns: int, body: bytes) -> None:
    """A non-streamed reply: its blocks arrive whole, now (thinking, then text and tool input)."""
    try:
        m = _MESSAGE.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # a message whose fields have unexpected types
        s.error_kind, s.error = "malformed", f"unexpected message shape ({exc}): {body[:80]!r}"
        return
    if s.response_id is None and m.id is not None:
        s.response_id = str(m.id)
    if m.stop_reason:
        s.finish_reason = _finish(m.stop_reason)
    text, thinking = [], []
    for block in m.content or ():
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif btype == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif btype == "tool_use" and block.get("input") is not None:  # its arguments as the model wrote them
            text.append(orjson.dumps(block["input"]).decode())
    _add(s, t_ns, "".join(text), "".join(thinking))
    if isinstance(m.usage, dict):
        _take_usage(s, m.usage)


def _add(s: _Stream, t_ns: int, text: Any, reasoning: Any) -> None:
    text = text if isinstance(text, str) else ""
    reasoning = reasoning if isinstance(reasoning, str) else ""
    if text or reasoning:
        s.add_text(t_ns, text, reasoning, None)


def _take_usage(s: _Stream, usage: dict[str, Any]) -> None:
    """Anthropic's usage in chat's names, every count checked (measure/usage.check_anthropic):
    completion_tokens = output_tokens (thinking included), prompt_tokens = input + cache read +
    cache creation, cached_tokens = cache read. No output_tokens: no usage."""
    if usage.get("output_tokens") is not None:
        s.usage = check_anthropic(usage)


def _finish(reason: Any) -> str:
    return _FINISH.get(reason, str(reason))
