"""The per-request record: raw timestamps interpreted once, after the response is complete.

Definitions live in :mod:`loadtest.measure.definitions`; this module implements them. Times are seconds;
``None`` means not measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from loadtest.measure.chunk_tokens import TEXT_SHARE, split_chunk_tokens, tpot_from
from loadtest.measure.chunks import Stream, error_message
from loadtest.measure.media import split_prompt_tokens
from loadtest.measure.usage import Checked, check_chat, count
from loadtest.tokens import CHUNKS, TOKENIZER, USAGE, Tokenizer
from loadtest.transport import Exchange
from loadtest.transport.base import ABANDONED, AttemptInfo

# Request-level failure kinds beyond the transport's (connect, timeout, disconnect, protocol).
AUTH, NOT_FOUND, BAD_REQUEST, RATE_LIMITED, SERVER_ERROR, HTTP_ERROR = (
    "auth", "not_found", "bad_request", "rate_limited", "server_error", "http_error")
CANCELLED = "cancelled"  # the run stopped (deadline, signal, abort) while the request was in flight
# ABANDONED ("abandoned", from the transport): the user let go on purpose (--cancel-rate), neither a
# success nor a failure; kept apart from CANCELLED, which is the run's doing, not a user's.


OnReply = Callable[[str, list[dict[str, Any]]], None]
"""Receives a completed reply: (its visible text, its tool calls in OpenAI's message shape)."""


@dataclass(slots=True)
class RequestRecord:
    id: int
    prompt_id: str
    ok: bool
    status: int | None
    error_kind: str | None
    error: str | None
    start_s: float
    """Request start, seconds since the run started."""
    end_s: float | None
    ttft_s: float | None
    ttft_content_s: float | None
    e2e_s: float | None
    tpot_s: float | None
    decode_tokens_per_s: float | None
    tokens_per_s: float | None
    completion_tokens: int | None
    prompt_tokens: int | None
    token_source: str | None
    finish_reason: str | None
    chunks: int
    content_chunks: int
    connect_s: float | None
    warmup: bool = False
    response_id: str | None = None
    chunk_offsets_s: list[float] | None = None
    """Arrival of each content chunk, seconds after the request started."""
    chunk_tokens: list[int] | None = None
    """Tokens attributed to each content chunk (sums to completion_tokens)."""
    chunk_token_source: str | None = None
    """How chunk_tokens were obtained (see loadtest.measure.chunk_tokens)."""
    engine_timings: dict[str, Any] | None = None
    bytes_received: int | None = None
    """Response body bytes that arrived (also when the request failed)."""
    partial_tokens: int | None = None
    """Failed and abandoned requests: tokens that arrived before the failure or the abandonment
    (usage, else --tokenizer, else content chunks), so a runaway or cut-off server is told apart
    from a silent one."""
    attempts: int = 1
    """Requests sent for this one: 1 + retries after rate limiting + compatibility retries."""
    rate_limited: int = 0
    """Answers of 429 (or 503 with Retry-After) this request met, retried or (past --max-retries) not."""
    retry_wait_s: float = 0.0
    """Seconds waited before retries (never inside the latency, which is the recorded attempt's)."""
    limit_wait_s: float | None = None
    """Seconds waited for the client-side --rpm-limit/--tpm-limit budget (None: no limit set)."""
    reasoning_tokens: int | None = None
    """Of completion_tokens, those the model spent reasoning (usage's *_tokens_details.reasoning_tokens,
    else counted from streamed reasoning text)."""
    scheduled_s: float | None = None
    """Open loop: when the load shape wanted the request sent, seconds since the run started."""
    queue_s: float | None = None
    """Open loop with --max-concurrency: time waited for a free slot before the request started."""
    phase: str | None = None
    """warmup, measured or cooldown (only measured requests enter the statistics)."""
    cached_tokens: int | None = None
    """Prompt tokens the server answered from its prefix cache: usage.prompt_tokens_details.cached_tokens
    (OpenAI, vLLM, SGLang, llama.cpp), else llama.cpp's timings.cache_n (None: not reported)."""
    cached_tokens_source: str | None = None
    """Where cached_tokens came from: 'usage', 'timings' (llama.cpp's cache_n) or 'anthropic' (the
    Messages API's cache_read_input_tokens); None with it."""
    cache_creation_tokens: int | None = None
    """Messages API: prompt tokens written to the prompt cache by this request
    (usage.cache_creation_input_tokens; None: not reported)."""
    abandoned_after_s: float | None = None
    """Abandoned requests (error_kind 'abandoned', --cancel-rate): when the client let go and closed
    the connection, seconds after the request start. ttft_s is then set when the first token had
    come, and partial_tokens counts the tokens received."""

    max_tokens: int | None = None
    """Trace replay: the output length this request asked for (its row's own; None: the run's
    --max-tokens, in config)."""
    stopped_early: bool | None = None
    """Trace replay: completion_tokens < max_tokens, the server ended the reply before the length the
    trace recorded (None: not known, e.g. a failed request or no token count)."""
    held_s: float | None = None
    """Trace sessions: how long a later turn waited, after the previous reply, for its own replayed offset
    (0: the reply came after the offset, see late_s); outside every latency. None: not a later turn of a
    trace session."""
    late_s: float | None = None
    """Trace sessions: how long after its replayed offset a later turn was ready to go because the previous
    reply came after that offset (0: it was held, see held_s). None as held_s."""

    session_id: str | None = None
    """Multi-turn sessions: the session this turn belongs to (the --session-header value)."""
    turn: int | None = None
    """Multi-turn sessions: the turn's index in its session, from 0."""
    think_s: float | None = None
    """Multi-turn sessions: the pause (--think-time) between the previous turn's reply and this turn's
    start, never inside any latency (None: the first turn, which follows no reply)."""

    tool_round: int | None = None
    """Tool loops (--tools): 0 for the request that sends a user turn, k for the k-th request that
    answers the previous reply's tool calls (None: the run offers no tools)."""
    tool_calls: int | None = None
    """Tool loops: the tool calls this reply made (0: a final answer; None: not known, the request failed)."""
    tool_wait_s: float | None = None
    """Tool loops: the pause (--tool-latency, as it was really slept) between the
    previous reply and this round's request, as a tool would take to run; never inside any latency
    (None: round 0)."""

    inputs: int | None = None
    """--api embeddings: texts the request embedded (its batch; the answer held one vector each)."""
    embedding_dim: int | None = None
    """--api embeddings: floats per returned vector (the first one's, list or base64)."""
    documents: int | None = None
    """--api rerank: documents scored against the request's query."""
    images: int | None = None
    """Images the request carried (--images, a dataset's image fields; None: none)."""
    image_bytes: int | None = None
    """Bytes of those image files (base64 adds a third on the wire; None: no images, or an http(s)
    image whose size the client does not know)."""
    prompt_image_tokens: int | None = None
    """Of prompt_tokens, those of the images: usage.prompt_tokens_details.image_tokens (None: not reported)."""
    prompt_text_tokens: int | None = None
    """Of prompt_tokens, those of the text: prompt_tokens_details.text_tokens, else prompt_tokens -
    prompt_image_tokens (None: no image tokens reported)."""
    audio_seconds: float | None = None
    """--api transcriptions: seconds of audio the request uploaded (None: no audio)."""
    rtfx: float | None = None
    """--api transcriptions: inverse real-time factor, audio_seconds / e2e_s (None: not completed)."""
    usage_invalid: dict[str, str] | None = None
    """Fields of the reply's usage that were not token counts (a string, a fraction, a negative or
    huge number...: measure/usage.py), each with its raw value cut short; they were ignored, and
    the counts fell back as without usage (token_source says to what). None: usage was valid or absent."""

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson serialises dataclasses natively (no asdict deep copy)


def _http_error_kind(status: int) -> str:
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status in (400, 413, 422):
        return BAD_REQUEST
    if status == 429:
        return RATE_LIMITED
    if status >= 500:
        return SERVER_ERROR
    return HTTP_ERROR


def build_record(ex: Exchange, *, request_id: int, prompt_id: str, run_t0_ns: int, stream: bool,
                 tokenizer: Tokenizer | None, warmup: bool = False,
                 keep_texts: Callable[[int, list[str]], None] | None = None,
                 on_reply: OnReply | None = None) -> RequestRecord:
    """Interpret one Exchange. Implements every definition in docs/metrics.md. ``keep_texts(id,
    texts)`` receives the chunk texts of a request whose per-chunk counts are estimated, for an exact
    count after the run (loadtest.measure.retokenize). ``on_reply(text, calls)`` receives a completed
    reply's visible text and its assembled tool calls (a session's next request carries them); the
    record itself keeps no text."""
    s = Stream()
    ok = ex.error_kind is None
    kind, message = ex.error_kind, ex.error
    body_pieces = ex.pieces
    if ok and ex.status is not None and ex.status >= 400:
        ok, kind, message = False, _http_error_kind(ex.status), f"HTTP {ex.status}: {error_message(ex.body())}"
    elif ok:
        is_sse = stream and ("event-stream" in ex.content_type or ex.body().lstrip().startswith(b"data:"))
        if is_sse:
            s.read_sse(body_pieces)
        else:
            s.read_body(ex.t_end_ns or ex.t_start_ns, ex.body())
        if s.error_kind:
            ok, kind, message = False, s.error_kind, s.error
    elif stream and len(body_pieces):  # failed mid-response: keep what did arrive
        s.read_sse(body_pieces)

    ms = 1e9
    e2e = (ex.t_end_ns - ex.t_start_ns) / ms if ex.t_end_ns is not None else None
    rec = RequestRecord(
        id=request_id, prompt_id=prompt_id, ok=ok, status=ex.status, error_kind=kind, error=message,
        start_s=(ex.t_start_ns - run_t0_ns) / ms,
        end_s=(ex.t_end_ns - run_t0_ns) / ms if ex.t_end_ns is not None else None,
        ttft_s=None, ttft_content_s=None, e2e_s=e2e, tpot_s=None, decode_tokens_per_s=None,
        tokens_per_s=None, completion_tokens=None, prompt_tokens=None, token_source=None,
        finish_reason=s.finish_reason, chunks=s.chunks, content_chunks=len(s.times),
        connect_s=ex.connect_s, warmup=warmup, response_id=s.response_id, engine_timings=s.timings)
    take_attempts(rec, ex.attempt_info)
    if len(body_pieces):
        rec.bytes_received = len(ex.body()) if type(body_pieces) is list else body_pieces.nbytes()  # type: ignore[attr-defined]
    if not ok:
        if s.times:
            usage = _checked(s.usage, rec)
            given = usage["completion_tokens"] if usage is not None else None
            rec.partial_tokens = (given if given is not None else
                                  tokenizer.count("".join(s.texts)) if tokenizer is not None else len(s.times))
        if kind == ABANDONED and ex.abandoned_ns is not None:
            rec.abandoned_after_s = (ex.abandoned_ns - ex.t_start_ns) / ms
            rec.partial_tokens = rec.partial_tokens or 0  # received nothing: 0, measured
            if s.times:
                rec.ttft_s = (s.times[0] - ex.t_start_ns) / ms
                if s.first_content_ns is not None:
                    rec.ttft_content_s = (s.first_content_ns - ex.t_start_ns) / ms
        return rec

    if on_reply is not None:
        on_reply(s.visible_text(), s.calls())
    usage = _checked(s.usage, rec)
    total = usage["completion_tokens"] if usage is not None else None
    if usage is not None:
        rec.prompt_tokens = usage["prompt_tokens"]
        if usage["cached_tokens"] is not None:
            rec.cached_tokens = usage["cached_tokens"]
            rec.cached_tokens_source = usage.get("cached_tokens_source") or USAGE  # Messages API: 'anthropic'
        if usage.get("image_tokens") is not None:  # a prompt with images (measure/media.py)
            split_prompt_tokens(rec, {"image_tokens": usage["image_tokens"], "text_tokens": usage["text_tokens"]})
        rec.cache_creation_tokens = usage.get("cache_creation_tokens")  # the Messages API's
        rec.reasoning_tokens = usage.get("reasoning_tokens")
    if total is not None:
        rec.token_source = USAGE
    elif tokenizer is not None:
        total, rec.token_source = tokenizer.count("".join(s.texts)), TOKENIZER
    else:
        total, rec.token_source = len(s.times), CHUNKS
    rec.completion_tokens = total
    if rec.cached_tokens is None and s.timings is not None and (cache_n := count(s.timings.get("cache_n"))) is not None:
        rec.cached_tokens, rec.cached_tokens_source = cache_n, "timings"
    if rec.reasoning_tokens is None and s.reasoning_texts:  # streamed reasoning, no usage details
        rec.reasoning_tokens = (min(total, tokenizer.count("".join(s.reasoning_texts))) if tokenizer is not None
                                else round(total * len(s.reasoning_texts) / len(s.texts)) if len(s.texts) > 1
                                else round(total * len(s.reasoning_texts[0]) / max(len(s.texts[0]), 1)))
    if e2e:
        rec.tokens_per_s = total / e2e
    if not stream or not s.times:
        return rec

    t0 = ex.t_start_ns
    rec.ttft_s = (s.times[0] - t0) / ms
    if s.first_content_ns is not None:
        rec.ttft_content_s = (s.first_content_ns - t0) / ms
    rec.chunk_offsets_s = [(t - t0) / ms for t in s.times]
    if total > 0:
        texts = s.texts
        rec.chunk_tokens, rec.chunk_token_source = split_chunk_tokens(
            texts, s.cum_usage, total, tokenizer.count if tokenizer is not None else None)
        rates = tpot_from(rec.chunk_offsets_s, rec.chunk_tokens, total)
        if rates is not None:
            rec.tpot_s, rec.decode_tokens_per_s = rates
            if keep_texts is not None and rec.chunk_token_source == TEXT_SHARE:
                keep_texts(request_id, texts)
    return rec


def take_attempts(rec: RequestRecord, info: AttemptInfo | None) -> None:
    """How the request got its answer (client/sender.py): attempts, 429s, waits, and, when a rate
    limit ended it, why it was not tried again (appended to its one-line error)."""
    if info is None:
        return
    rec.attempts, rec.rate_limited, rec.retry_wait_s, rec.limit_wait_s = (
        info.attempts, info.rate_limited, info.retry_wait_s, info.limit_wait_s)
    if info.gave_up and not rec.ok:
        rec.error = f"{rec.error}; {info.gave_up}" if rec.error else info.gave_up


def _checked(usage: Any, rec: RequestRecord) -> Checked | None:
    """The reply's usage with every count checked (once per reply: measure/usage.py); its invalid
    fields noted on the record."""
    if usage is None:
        return None
    checked = usage if type(usage) is Checked else check_chat(usage)
    if checked["invalid"]:
        rec.usage_invalid = checked["invalid"]
    return checked


def cancelled_record(*, request_id: int, prompt_id: str, t_start_ns: int, run_t0_ns: int,
                     warmup: bool, reason: str) -> RequestRecord:
    return RequestRecord(
        id=request_id, prompt_id=prompt_id, ok=False, status=None, error_kind=CANCELLED, error=reason,
        start_s=(t_start_ns - run_t0_ns) / 1e9, end_s=None, ttft_s=None, ttft_content_s=None, e2e_s=None,
        tpot_s=None, decode_tokens_per_s=None, tokens_per_s=None, completion_tokens=None,
        prompt_tokens=None, token_source=None, finish_reason=None, chunks=0, content_chunks=0,
        connect_s=None, warmup=warmup)


def asked(rec: RequestRecord, max_tokens: int | None) -> None:
    """Note the output length a request asked for and whether the server stopped before it
    (a completed request with a token count only: a failure says nothing about the length)."""
    rec.max_tokens = max_tokens
    if max_tokens is not None and rec.ok and rec.completion_tokens is not None:
        rec.stopped_early = rec.completion_tokens < max_tokens
