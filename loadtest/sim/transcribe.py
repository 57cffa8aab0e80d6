"""The sim's ``POST /v1/audio/transcriptions``: a multipart/form-data upload of a WAV file, answered
with a transcript whose length and timing follow from the audio's length alone, so a client's
latency, time to first text and RTFx are checked against known numbers.

For S seconds of audio the request's prompt tokens are round(--audio-tokens-per-s x S) (Whisper's
encoder makes 50 a second), prefilled at --prefill-tokens-per-s like any prompt (slots, queueing,
/metrics and the log as for chat); the transcript is max(1, round(--transcript-words-per-s x S))
words ``tok0 tok1 ...``, one token each, on the usual schedule: the first text at slot + prefill +
--ttft-ms, each later word --tpot-ms after the one before. ``--transcription-dialect`` picks the
answer's shape: ``vllm`` streams chat-shaped ``transcription.chunk`` objects (usage on a last
``choices: []`` chunk when ``stream_include_usage`` is asked, then ``[DONE]``) and answers
``{"text", "usage": {"type": "duration", "seconds"}}`` without streaming; ``openai`` streams
``transcript.text.delta`` events and a ``transcript.text.done`` with token usage, and puts the same
token usage in a plain answer; ``none`` answers 404 as a server without the endpoint.

The form's boundary is read from the body's first line (a client sends no preamble), so the HTTP
layer keeps no headers for it; parts are split on CRLF + ``--boundary`` exactly, as RFC 7578 frames
them, and the file's bytes are never copied through a text decoder.
"""

from __future__ import annotations

import io
import math
import re
import time
import wave
from time import monotonic_ns
from typing import Any

from loadtest.sim.config import SimConfig
from loadtest.sim.generate import Plan, RequestError, token_text
from loadtest.sim.stream import END_OF_BODY, SSE_HEADERS, Stream

PATH = b"/v1/audio/transcriptions"
_NAME = re.compile(rb';\s*name="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb';\s*filename="([^"]*)"', re.IGNORECASE)


def parse_form(body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Field name -> (value bytes, file name or None); RequestError 400 when it is not a form."""
    first, sep, _ = body.partition(b"\r\n")
    if not sep or not first.startswith(b"--") or len(first) < 3:
        raise RequestError(400, "expected a multipart/form-data body (file, model, ...)")
    parts = body[len(first) + 2:].split(b"\r\n" + first)
    if len(parts) < 2 or not parts[-1].startswith(b"--"):
        raise RequestError(400, "multipart/form-data body without its closing boundary")
    out: dict[str, tuple[bytes, str | None]] = {}
    for i, part in enumerate(parts[:-1]):
        if i:
            part = part.removeprefix(b"\r\n")
        head, sep, value = part.partition(b"\r\n\r\n")
        name = filename = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:"):
                name, filename = _NAME.search(line), _FILENAME.search(line)
        if not sep or name is None:
            raise RequestError(400, "a multipart part without a Content-Disposition name")
        out[name.group(1).decode(errors="replace")] = (value, filename.group(1).decode(errors="replace")
                                                       if filename else None)
    return out


def _text(form: dict[str, tuple[bytes, str | None]], name: str) -> str | None:
    value = form.get(name)
    return None if value is None else value[0].decode(errors="replace").strip()


def _flag(form: dict[str, tuple[bytes, str | None]], name: str) -> bool:
    return (_text(form, name) or "").lower() in ("true", "1")


def plan_transcription(config: SimConfig, form: dict[str, tuple[bytes, str | None]], seed: int) -> tuple[Plan, float]:
    """(the reply's plan, the audio's seconds); RequestError for what a server refuses."""
    model = _text(form, "model")
    if model and model != config.model:
        raise RequestError(404, f"The model `{model}` does not exist.", code="model_not_found", param="model")
    if "file" not in form:
        raise RequestError(400, "Missing required parameter: 'file'.", param="file")
    try:
        with wave.open(io.BytesIO(form["file"][0]), "rb") as w:
            seconds = w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        raise RequestError(400, f"could not read the audio file {form['file'][1]!r}: the sim reads WAV only",
                           param="file") from None
    if (_text(form, "response_format") or "json") != "json":
        raise RequestError(400, "response_format: the sim answers json only", param="response_format")
    options = [name for name in ("stream_include_usage", "stream_continuous_usage_stats") if name in form]
    if options and config.reject_stream_options:
        raise RequestError(400, f"Unrecognized request argument supplied: {options[0]}", param=options[0])
    stream = _flag(form, "stream")
    usage = stream and config.usage and (_flag(form, "stream_include_usage") or config.usage_always)
    words = max(1, round(config.transcript_words_per_s * seconds))
    return Plan(chat=False, stream=stream, include_usage=usage,
                continuous_usage=usage and config.continuous_usage and _flag(form, "stream_continuous_usage_stats"),
                prompt_tokens=round(config.audio_tokens_per_s * seconds), n_tokens=words, reasoning_tokens=0,
                finish_reason="stop", fault=None, fault_after=0, seed=seed), seconds


def transcribe(sim: Any, conn: Any, req: Any) -> None:
    """Answer one request (``sim``: the server's Sim, its slots, scheduler and log)."""
    config, stats, keep = sim.config, sim.stats, req.keep_alive
    if config.transcription_dialect == "none":
        error = RequestError(404, f"Not found: {PATH.decode()}", code="not_found")
        return conn.respond(error.status, error.body(), keep)
    if req.method != b"POST":
        error = RequestError(405, f"Method {req.method.decode()} not allowed")
        return conn.respond(error.status, error.body(), keep)
    stats.received(req.recv_ns)
    try:
        if not sim._authorized(req):
            raise RequestError(401, "Incorrect API key provided.", code="invalid_api_key")
        form = parse_form(req.body)
        plan, seconds = plan_transcription(config, form, seed=sim.last_id + 1)
        if sim.limits is not None and (refusal := sim.limits.admit(plan.prompt_tokens + plan.n_tokens)):
            stats.rate_limited += 1
            raise refusal
        sim.valid_requests += 1
    except RequestError as error:
        stats.requests_failed += 1
        stats.last_done_ns = monotonic_ns()
        return conn.respond(error.status, error.body(), keep, error.headers)
    sim.last_id += 1
    head = b'{"id":"trsc-%d","object":"transcription.chunk","created":%d,"model":%b' % (
        sim.last_id, int(time.time()), sim.model_json)
    if sim.chunk_log is not None:
        plan.log_extra = {"audio_seconds": seconds, "audio_bytes": len(form["file"][0]), "filename": form["file"][1],
                          "dialect": config.transcription_dialect, "connection": conn.number}
    stream = TranscriptionStream(sim, conn, plan, req.recv_ns, head, keep, arrival_ns=req.recv_ns)
    stream.audio_s = seconds
    if config.max_concurrency is not None and stats.active >= config.max_concurrency:
        conn.stream = stream  # waits for a slot; a closed connection still cancels it
        sim.waiting.append(stream)
        sim.engine.waiting += 1
        return
    sim._prefill(stream)  # the audio's tokens prefilled at --prefill-tokens-per-s, as a prompt's
    conn.begin(stream)


class TranscriptionStream(Stream):
    """A transcript on the sim's schedule, in the configured dialect."""

    __slots__ = ("audio_s",)
    audio_s: float  # the uploaded audio's seconds (set by transcribe)

    def start(self) -> None:
        sim, plan = self.sim, self.plan
        sim.engine.take_slot(self)
        if plan.stream:
            self.conn.write(SSE_HEADERS + (b"Connection: keep-alive\r\n\r\n" if self.keep_alive
                                           else b"Connection: close\r\n\r\n"))
            self.next_end = self._end_after(0)
        else:
            self.next_end = plan.n_tokens
        self.due = self.recv_ns + sim.ttft_ns + max(self.next_end - 1, 0) * sim.tpot_ns
        sim.scheduler.push(self.due, self)

    @property
    def _openai(self) -> bool:
        return bool(self.sim.config.transcription_dialect == "openai")

    def _token_usage(self) -> bytes:
        p, n = self.plan.prompt_tokens, self.sent
        return (b'{"type":"tokens","input_tokens":%d,"input_token_details":{"text_tokens":0,"audio_tokens":%d},'
                b'"output_tokens":%d,"total_tokens":%d}' % (p, p, n, p + n))

    def step(self) -> None:
        now = monotonic_ns()
        sim, plan, stats = self.sim, self.plan, self.sim.stats
        stats.late(now - self.due)
        if not plan.stream:
            self.sent = plan.n_tokens
            stats.tokens_sent += plan.n_tokens
            sim.engine.generated(self, 0, plan.n_tokens)
            usage = (self._token_usage() if self._openai else b'{"type":"duration","seconds":%d}'
                     % math.ceil(self.audio_s))
            body = b'{"text":"%b"' % token_text(0, plan.n_tokens, plan.word)
            self.conn.send(200, body + (b',"usage":' + usage if sim.config.usage else b"") + b"}", self.keep_alive)
            self._close(now, completed=True)
            return
        start, end = self.sent, self.next_end
        self.sent = end
        text = token_text(start, end, plan.word)
        if self._openai:
            out = [self._frame(b'{"type":"transcript.text.delta","delta":"%b","logprobs":null}' % text)]
        else:
            usage = self._usage() if plan.continuous_usage else b""
            out = [self._frame(self.head + b',"choices":[{"delta":{"content":"%b"},"finish_reason":null,'
                                           b'"stop_reason":null}]%b}' % (text, usage))]
        self._generated(start, end, now)
        self._end_step(out, now)

    def _finish_stream(self, out: list[bytes], now: int) -> None:
        sim, plan = self.sim, self.plan
        if self._openai:
            usage = b',"usage":' + self._token_usage() if sim.config.usage else b""
            out.append(self._frame(b'{"type":"transcript.text.done","text":"%b","logprobs":null%b}'
                                   % (token_text(0, plan.n_tokens, plan.word), usage)))
        else:
            out.append(self._frame(self.head + b',"choices":[{"delta":{},"finish_reason":"stop","stop_reason":null}]}'))
            if plan.include_usage:
                out.append(self._frame(self.head + b',"choices":[]' + self._usage() + b"}"))
            if sim.config.done:
                out.append(self._frame(b"[DONE]"))
        out.append(END_OF_BODY)
        self.conn.write(b"".join(out))
        self._close(now, completed=True)
