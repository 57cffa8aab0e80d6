"""The test server's Anthropic Messages API (``POST /v1/messages``), playing the hosted API.

What it emulates, each part the truth a client is checked against (``--log-chunks`` logs every
reply's chunks, its cached and cache-written tokens and, with ``--log-header x-api-key``, the key
header it came with):

- the key in ``x-api-key`` (server.py maps the header), refused with Anthropic's 401
  ``authentication_error``; every error in Anthropic's shape, ``{"type": "error", "error": {"type",
  "message"}}``, and unknown body fields refused as the hosted API does ("Extra inputs are not
  permitted": ``ignore_eos``, ``stream_options``), ``max_tokens`` required;
- the stream: ``message_start`` (the prompt's usage) with the first block's
  ``content_block_start`` and a ``ping`` on receipt, none of them a token; ``--reasoning-tokens N``
  makes the first N tokens a thinking block (``thinking_delta``, then ``signature_delta``), the rest
  a text block (``text_delta``); ``message_delta`` with ``stop_reason`` and the cumulative
  ``output_tokens``, then ``message_stop``. Non-streamed, the whole message at the last token's time;
- usage: ``cache_read_input_tokens`` from the sim's prefix cache (--prefix-cache-tokens), the
  prompt's other whole blocks as ``cache_creation_input_tokens`` (written by this request),
  ``input_tokens`` the rest, so their sum is the prompt;
- limits: --rpm-limit/--tpm-limit/--rate-limit-every (sim/limits.py) answered 429
  ``rate_limit_error`` with ``retry-after`` and ``anthropic-ratelimit-*`` headers; --overload-every N
  answers the Nth valid request 529 ``overloaded_error`` (with ``retry-after`` when --retry-after-s is
  given); --stream-error-after-tokens sends an ``overloaded_error`` event mid-stream.

Timing, slots, faults and the log are sim/stream.py's, shared with the OpenAI paths.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from time import monotonic_ns
from typing import Any

import orjson

from loadtest.sim.generate import DEFAULT_MAX_TOKENS, Plan, RequestError, _positive_int, _words, token_text
from loadtest.sim.state import request_log
from loadtest.sim.stream import END_OF_BODY, Stream

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
          429: "rate_limit_error", 529: "overloaded_error"}
_FIELDS = frozenset({"model", "messages", "max_tokens", "system", "stream", "temperature", "top_p", "top_k",
                     "stop_sequences", "metadata", "tools", "tool_choice", "thinking", "service_tier"})
"""The body fields the hosted API takes (any other is refused with 400)."""
SIGNATURE = "EqQBCkgIAhABGAIiQLsim"


class MessagesError(RequestError):
    """An error answered in Anthropic's shape."""

    def body(self) -> bytes:
        return orjson.dumps({"type": "error", "error": {"type": _TYPES.get(self.status, "api_error"),
                                                         "message": self.message}})


def anthropic_error(error: RequestError) -> MessagesError:
    """A shared check's refusal (a 429 of sim/limits.py, the context limit's 400) in Anthropic's
    shape: its rate-limit headers as Anthropic names them (retry-after kept, resets as RFC 3339)."""
    if isinstance(error, MessagesError):
        return error
    out = MessagesError(error.status, error.message)
    wait_s = float(error.headers.get("retry-after", 0) or 0)
    for name, value in error.headers.items():
        if name == "retry-after":
            out.headers[name] = value
        elif name.startswith("x-ratelimit-"):  # x-ratelimit-limit-requests -> anthropic-ratelimit-requests-limit
            field, kind = name.removeprefix("x-ratelimit-").split("-", 1)
            if field == "reset":
                exhausted = error.headers.get(f"x-ratelimit-remaining-{kind}") == "0"
                value = datetime.fromtimestamp(time.time() + (wait_s if exhausted else 0), UTC).isoformat(
                    timespec="seconds").replace("+00:00", "Z")
            out.headers[f"anthropic-ratelimit-{kind}-{field}"] = value
    return out


def overloaded(retry_after_s: float | None) -> MessagesError:
    error = MessagesError(529, "Overloaded")
    if retry_after_s is not None:
        error.headers["retry-after"] = str(max(0, math.ceil(retry_after_s)))
    return error


def plan_messages(config: Any, body: Any, fail: bool, seed: int) -> tuple[Plan, dict[str, Any]]:
    """Validate a Messages request and decide its reply; also the body as the prompt counters read
    it (system text first, as one more message). Raises MessagesError to refuse it."""
    if not isinstance(body, dict):
        raise MessagesError(400, "Request body must be a JSON object")
    extra = sorted(set(body) - _FIELDS)
    if extra:
        raise MessagesError(400, f"{extra[0]}: Extra inputs are not permitted")
    model = body.get("model")
    if model != config.model:
        raise MessagesError(404 if model else 400, f"model: {model}" if model else "model: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MessagesError(400, "messages: at least one message is required")
    if "max_tokens" not in body:
        raise MessagesError(400, "max_tokens: Field required")
    try:
        limit = _positive_int(body, "max_tokens") or DEFAULT_MAX_TOKENS
    except RequestError as error:
        raise MessagesError(400, error.message) from None
    system = body.get("system")
    turns = ([{"role": "system", "content": system}] if system else []) + [m for m in messages if isinstance(m, dict)]
    view = {"messages": turns, "max_tokens": limit}
    n = limit if config.output_tokens is None else min(config.output_tokens, limit)
    fault, after = config.fault if fail and config.fault is not None else (None, 0)
    plan = Plan(chat=True, stream=body.get("stream") is True, include_usage=True, continuous_usage=False,
                prompt_tokens=sum(_words(m.get("content")) for m in turns), n_tokens=n,
                reasoning_tokens=min(config.reasoning_tokens, n), finish_reason="length" if n >= limit else "stop",
                fault=fault, fault_after=after, seed=seed)
    return plan, view


def handle_messages(sim: Any, conn: Any, req: Any) -> None:
    """POST /v1/messages on the Sim (server.py routes here): checked, admitted, then scheduled as
    every reply is (a slot, or the queue under --max-concurrency)."""
    stats, config, keep = sim.stats, sim.config, req.keep_alive
    if req.method != b"POST":
        error = MessagesError(405, f"Method {req.method.decode()} not allowed")
        return conn.respond(error.status, error.body(), keep)
    stats.received(req.recv_ns)
    try:
        if not sim._authorized(req):
            raise MessagesError(401, "invalid x-api-key")
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise MessagesError(400, f"Could not parse request body as JSON: {exc}") from None
        nth = sim.valid_requests + 1  # the Nth *valid* request fails or is overloaded, as on the other paths
        plan, view = plan_messages(config, body, config.fail_every is None or nth % config.fail_every == 0,
                                   seed=sim.last_id + 1)
        plan.prompt_tokens = sim.prompting.prompt_tokens(True, view, plan.prompt_tokens)
        if sim.limits is not None and (refusal := sim.limits.admit(plan.prompt_tokens + view["max_tokens"])):
            stats.rate_limited += 1
            raise refusal
        sim.valid_requests = nth
        if config.overload_every is not None and nth % config.overload_every == 0:
            raise overloaded(config.retry_after_s)
        if config.fail_status is not None and (config.fail_every is None or nth % config.fail_every == 0):
            raise MessagesError(config.fail_status, f"simulated failure (HTTP {config.fail_status})")
    except RequestError as error:
        stats.requests_failed += 1
        stats.last_done_ns = monotonic_ns()
        error = anthropic_error(error)
        return conn.respond(error.status, error.body(), keep, error.headers)
    sim.last_id += 1
    head = b'{"id":"msg_%d","type":"message","role":"assistant","model":%b' % (sim.last_id, sim.model_json)
    if sim.prefix_cache is not None:
        plan.block_hashes = sim.prefix_cache.block_hashes(sim.prompting.token_keys(True, view))
    if sim.chunk_log is not None:
        plan.log_extra = request_log(view, req.logged_header, sim.log_header is not None)
        plan.log_extra["connection"] = conn.number
    stream = MessagesStream(sim, conn, plan, req.recv_ns, head, keep, arrival_ns=req.recv_ns)
    if config.max_concurrency is not None and stats.active >= config.max_concurrency:
        conn.stream = stream  # a waiting reply: a closed connection still cancels it
        sim.waiting.append(stream)
        sim.engine.waiting += 1
        return
    sim._prefill(stream)  # the prefix cache looked up now, prefill shifting the schedule (server.py)
    conn.begin(stream)


class MessagesStream(Stream):
    """One Messages reply on its way out: Stream's schedule and bookkeeping, Anthropic's events."""

    __slots__ = ()

    # -- the bytes --------------------------------------------------------------------------------
    def _event(self, name: bytes, data: bytes) -> bytes:
        self.sim.stats.events_sent += 1
        sim = self.sim
        event = b"event: " + name + sim.eol2[: len(sim.eol2) // 2] + sim.data_prefix + data + sim.eol2
        return b"%x\r\n%b\r\n" % (len(event), event)

    def _usage(self) -> bytes:
        """The prompt's usage: cache read (the prefix cache's hit), cache creation (the prompt's
        other whole blocks, which this request writes), the rest as input_tokens."""
        plan = self.plan
        read = plan.cached_tokens or 0
        created = 0
        if self.sim.prefix_cache is not None:
            created = max(0, len(plan.block_hashes) * self.sim.prefix_cache.block_tokens - read)
        if plan.log_extra is not None:
            plan.log_extra["cache_creation_tokens"] = created
        return b'"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d' % (
            plan.prompt_tokens - read - created, created, read)

    def _stop_reason(self) -> bytes:
        return b"max_tokens" if self.plan.finish_reason == "length" else b"end_turn"

    def _block_start(self, index: int, thinking: bool) -> bytes:
        block = b'{"type":"thinking","thinking":""}' if thinking else b'{"type":"text","text":""}'
        return self._event(b"content_block_start", b'{"type":"content_block_start","index":%d,"content_block":%b}'
                           % (index, block))

    def _delta(self, index: int, kind: bytes, field: bytes, value: bytes) -> bytes:
        return self._event(b"content_block_delta", b'{"type":"content_block_delta","index":%d,"delta":{"type":"%b",'
                           b'"%b":"%b"}}' % (index, kind, field, value))

    def _block_stop(self, index: int) -> bytes:
        return self._event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % index)

    # -- the schedule -----------------------------------------------------------------------------
    def _opening(self) -> bytes:
        """message_start, the first block's opening and a ping on receipt (the first token on time)."""
        return (self._event(b"message_start", b'{"type":"message_start","message":%b,"content":[],'
                            b'"stop_reason":null,"stop_sequence":null,"usage":{%b,"output_tokens":1}}}'
                            % (self.head, self._usage()))
                + self._block_start(0, self.plan.reasoning_tokens > 0) + self._event(b"ping", b'{"type": "ping"}'))

    def step(self) -> None:
        now = monotonic_ns()
        plan = self.plan
        self.sim.stats.late(now - self.due)
        if not plan.stream:
            self._finish_plain(now)
            return
        out: list[bytes] = []
        start, end = self.sent, self.next_end
        r = plan.reasoning_tokens
        if end > start:  # chunks never straddle the thinking/text boundary (Stream._end_after)
            text = token_text(start, end, plan.word)
            if end <= r:
                out.append(self._delta(0, b"thinking_delta", b"thinking", text))
            else:
                if start == r and r:  # the first text token: thinking's block closes, text's opens
                    out += [self._delta(0, b"signature_delta", b"signature", SIGNATURE.encode()),
                            self._block_stop(0), self._block_start(1, False)]
                out.append(self._delta(1 if r else 0, b"text_delta", b"text", text))
            self.sent = end
            self._generated(start, end, now)
        self._end_step(out, now)

    def _finish_stream(self, out: list[bytes], now: int) -> None:
        r = self.plan.reasoning_tokens
        if r and self.sent <= r:  # all thinking: its block still closes with its signature
            out.append(self._delta(0, b"signature_delta", b"signature", SIGNATURE.encode()))
        out.append(self._block_stop(1 if r and self.sent > r else 0))
        out.append(self._event(b"message_delta", b'{"type":"message_delta","delta":{"stop_reason":"%b","stop_sequence"'
                               b':null},"usage":{"output_tokens":%d}}' % (self._stop_reason(), self.sent)))
        out.append(self._event(b"message_stop", b'{"type":"message_stop"}'))
        out.append(END_OF_BODY)
        self.conn.write(b"".join(out))
        self._close(now, completed=True)

    def _error_frames(self) -> list[bytes]:
        """What the hosted API sends when it is overloaded mid-reply."""
        return [self._event(b"error", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')]

    def _malformed_frames(self) -> list[bytes]:
        return [self._event(b"content_block_delta", b"{not json")]

    def _plain_error(self) -> RequestError:
        return MessagesError(500, "Internal server error")

    def _plain_body(self) -> bytes:
        """A non-streamed message: its thinking and text blocks, stop reason and usage."""
        plan = self.plan
        n, r = plan.n_tokens, plan.reasoning_tokens
        blocks = []
        if r:
            blocks.append(b'{"type":"thinking","thinking":"%b","signature":"%b"}'
                          % (token_text(0, r, plan.word), SIGNATURE.encode()))
        if n > r:
            blocks.append(b'{"type":"text","text":"%b"}' % token_text(r, n, plan.word))
        return (self.head + b',"content":[%b],"stop_reason":"%b","stop_sequence":null,"usage":{%b,"output_tokens":%d}}'
                % (b",".join(blocks), self._stop_reason(), self._usage(), n))
