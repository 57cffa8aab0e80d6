"""The transcription dialect (``--api transcriptions``): what ``/audio/transcriptions`` answers.

A non-streamed answer is ``{"text": ..., "usage": ...}``; OpenAI streams ``transcript.text.delta``
events and a ``transcript.text.done`` with the usage; vLLM streams chat-shaped chunks
(``transcription.chunk`` objects with ``choices[].delta.content``, usage on a last ``choices: []``
chunk when asked), which the chat parser already reads. Usage is mapped to chat's names so one
record serves every API: OpenAI's token usage (``input_tokens``/``output_tokens``) becomes prompt and
completion tokens; a duration usage (``{"type": "duration", "seconds": N}``: whisper-1, vLLM) counts
no tokens, so completion tokens then come from --tokenizer or the content chunks.

Nothing here runs for a chat stream: chunks.py hands over only typed events of this family and
non-streamed bodies that carry no ``choices``.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from loadtest.measure.usage import check_openai_io


class _Sink(Protocol):
    """The part of chunks.Stream a transcript fills."""

    usage: dict[str, Any] | None
    finish_reason: str | None

    def add_text(self, t_ns: int, text: str, reasoning: str, cum: int | None) -> None: ...


class _Event(Protocol):
    type: str | None
    delta: Any
    usage: dict[str, Any] | None


class _Transcript(msgspec.Struct, gc=False):
    text: Any = None
    usage: Any = None


_BODY = msgspec.json.Decoder(_Transcript)


def transcript_usage(usage: Any) -> dict[str, Any] | None:
    """Token usage of a transcription in chat's names; None for a duration usage (no tokens)."""
    if isinstance(usage, dict) and usage.get("output_tokens") is not None:
        return check_openai_io(usage)  # every count checked (measure/usage.py)
    return None


def take_transcript_event(s: _Sink, t_ns: int, c: _Event) -> None:
    """One OpenAI transcription stream event: a delta's text is generated text (it ends TTFT: the
    time to first text), ``transcript.text.done`` brings the usage."""
    if c.type == "transcript.text.delta":
        if isinstance(c.delta, str) and c.delta:
            s.add_text(t_ns, c.delta, "", None)
    elif c.type == "transcript.text.done":
        s.finish_reason = "stop"
        usage = transcript_usage(c.usage)
        if usage is not None:
            s.usage = usage


def take_transcript_body(s: _Sink, t_ns: int, body: bytes) -> None:
    """A non-streamed answer (``json`` or ``verbose_json``): its text arrives whole, now. A body
    of another shape (no ``text``) is left alone."""
    try:
        t = _BODY.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return
    if not isinstance(t.text, str):
        return
    if t.text:
        s.add_text(t_ns, t.text, "", None)
    s.finish_reason = "stop"
    usage = transcript_usage(t.usage)
    if usage is not None:
        s.usage = usage
