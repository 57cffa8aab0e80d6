"""What to generate for one request, and the bytes of OpenAI-shaped replies.

Kept apart from the event loop so the rules (token counts, finish reasons, error shapes) read in
one place and can be tested without sockets.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import orjson

from loadtest.sim.config import SimConfig

DEFAULT_MAX_TOKENS = 16  # OpenAI's legacy completions default

# OpenAI's (type, code) per status, so clients that classify by body see familiar values.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("requests", "rate_limit_exceeded"),
}


class RequestError(Exception):
    """A request answered with an HTTP error status and an OpenAI-shaped error body."""

    def __init__(self, status: int, message: str, *, type_: str | None = None, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        default_type, default_code = _ERROR_KINDS.get(status, ("server_error", None))
        self.status = status
        self.message = message
        self.type = type_ or default_type
        self.code = code if code is not None else default_code
        self.param = param
        self.headers: dict[str, str] = {}  # extra response headers (429: retry-after, x-ratelimit-*)

    def body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}})


@dataclass(slots=True)
class Plan:
    """The fully decided outcome of one generation request, fixed at receipt."""

    chat: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool  # usage on every chunk (asked with stream_options.continuous_usage_stats)
    prompt_tokens: int
    n_tokens: int
    reasoning_tokens: int  # the first this-many of n_tokens go to reasoning_content
    finish_reason: str
    fault: str | None  # disconnect / stream_error / malformed, or None
    fault_after: int  # tokens sent before the fault; a fault at or past n_tokens never happens
    seed: int = 0  # seeds chunk sizes and early stops, so a reply is reproducible
    # Prefix cache (sim/prefixcache.py): the prompt's block keys, and its cached tokens once it took
    # a slot (None: no cache, and usage says nothing of one).
    block_hashes: tuple[int, ...] = ()
    cached_tokens: int | None = None
    # --log-chunks: what the request carried (its chat messages' roles and content hashes, the
    # --log-header value), for tests of multi-turn sessions; None when nothing is logged.
    log_extra: dict[str, Any] | None = None
    # The reply's word stem: token i is " <word><i>" (--replies-from-prompt makes it depend on the prompt).
    word: bytes = b"tok"
    # Tool calls (sim/tools.py, --tool-call-rounds): (id, name, arguments) per call, and the
    # arguments cut into the reply's pieces as (call index, piece): one "token" each. None: text.
    tool_calls: tuple[tuple[str, str, str], ...] | None = None
    tool_pieces: tuple[tuple[int, str], ...] = ()
    # Images (sim/images.py): the prompt tokens charged for the request's image parts (None: no images).
    image_tokens: int | None = None
    # --jitter: this reply's TTFT and TPOT factors (1.0: the configured times exactly).
    ttft_factor: float = 1.0
    tpot_factor: float = 1.0


def _words(value: Any) -> int:
    """Whitespace word count of prompt-ish JSON: strings, content parts, token-id lists."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, int) and not isinstance(value, bool):
        return 1  # a token id in a pre-tokenized prompt
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):  # a content part: {"type": "text", "text": ...}
        return _words(value.get("text"))
    return 0


def message_parts(message: dict[str, Any]) -> list[Any]:
    """What of a chat message a model reads as prompt: its content and, for an assistant message
    that called tools, each call's arguments (a chat template renders them)."""
    parts = [message.get("content")]
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        parts += [c["function"].get("arguments") for c in calls
                  if isinstance(c, dict) and isinstance(c.get("function"), dict)]
    return parts


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(400, f"{name} must be an integer >= 1, got {value!r}", param=name)
    return value


def plan_request(config: SimConfig, chat: bool, body: Any, fail: bool, seed: int = 0) -> Plan:
    """Validate a generation request body and decide its tokens; raises ``RequestError`` to refuse it.

    ``fail`` says whether this request is one chosen (by --fail-every) to get the configured failure.
    """
    if not isinstance(body, dict):
        raise RequestError(400, "Request body must be a JSON object")
    model = body.get("model")
    if model and model != config.model:
        raise RequestError(404, f"The model `{model}` does not exist.", code="model_not_found", param="model")
    if config.reject_stream_options and "stream_options" in body:
        raise RequestError(400, "Unrecognized request argument supplied: stream_options", param="stream_options")
    options = body.get("stream_options")
    if config.reject_continuous_usage and isinstance(options, dict) and "continuous_usage_stats" in options:
        raise RequestError(400, "Unrecognized stream_options field: continuous_usage_stats", param="stream_options")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty array", param="messages")
        prompt_tokens = sum(_words(message_parts(m)) for m in messages if isinstance(m, dict))
    else:
        if "prompt" not in body:
            raise RequestError(400, "'prompt' is a required property", param="prompt")
        prompt_tokens = _words(body["prompt"])
    max_tokens = _positive_int(body, "max_completion_tokens") if chat else None
    if max_tokens is None:
        max_tokens = _positive_int(body, "max_tokens")
    limit = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    if config.output_tokens is None or body.get("ignore_eos") is True:
        n_tokens = limit if max_tokens is not None or config.output_tokens is None else config.output_tokens
    else:
        n_tokens = min(config.output_tokens, limit) if max_tokens is not None else config.output_tokens
    if config.early_stops:
        n_tokens = random.Random(seed).randint(1, n_tokens)
    finish_reason = "length" if n_tokens >= limit else "stop"
    stream = body.get("stream") is True
    asked = isinstance(options, dict) and options.get("include_usage") is True
    include_usage = stream and (asked or config.usage_always)
    continuous = (stream and asked and config.continuous_usage and config.usage
                  and options.get("continuous_usage_stats") is True)  # type: ignore[union-attr]
    if fail and config.fault is not None:
        fault, fault_after = config.fault
    else:
        fault, fault_after = None, 0
    plan = Plan(chat=chat, stream=stream, include_usage=include_usage and config.usage, continuous_usage=continuous,
                prompt_tokens=prompt_tokens, n_tokens=n_tokens,
                reasoning_tokens=min(config.reasoning_tokens, n_tokens) if chat else 0,
                finish_reason=finish_reason, fault=fault, fault_after=fault_after, seed=seed)
    if config.jitter:
        rng = random.Random(f"jitter:{config.jitter_seed}:{seed}")
        plan.ttft_factor = math.exp(rng.gauss(0.0, config.jitter))
        plan.tpot_factor = math.exp(rng.gauss(0.0, config.jitter))
    return plan


def token_text(start: int, end: int, word: bytes = b"tok") -> bytes:
    """Tokens start..end-1 as text: one space-led word per token, so a whitespace split counts exactly."""
    if end - start == 1:
        return b" %b%d" % (word, start)
    return b"".join([b" %b%d" % (word, i) for i in range(start, end)])


def usage_json(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0,
               cached_tokens: int | None = None, image_tokens: int | None = None) -> bytes:
    """OpenAI's usage; reasoning tokens (part of completion_tokens) in completion_tokens_details,
    prefix-cached prompt tokens (with --prefix-cache-tokens) and the images' tokens (sim/images.py)
    in prompt_tokens_details."""
    details = b',"completion_tokens_details":{"reasoning_tokens":%d}' % reasoning_tokens if reasoning_tokens else b""
    if cached_tokens is not None and image_tokens is None:
        details += b',"prompt_tokens_details":{"cached_tokens":%d}' % cached_tokens
    elif image_tokens is not None:
        cached = b'"cached_tokens":%d,' % cached_tokens if cached_tokens is not None else b""
        details += b',"prompt_tokens_details":{%b"image_tokens":%d}' % (cached, image_tokens)
    return b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d%b}' % (
        prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, details)


def completion_body(plan: Plan, head: bytes, with_usage: bool, extra: bytes = b"",
                    tool_message: bytes | None = None) -> bytes:
    """The non-stream chat.completion / text_completion JSON; ``head`` holds id, object, created, model,
    ``extra`` more top-level members (llama.cpp's timings), ``tool_message`` a reply's whole message
    when it calls tools (sim/tools.py)."""
    n, r = plan.n_tokens, plan.reasoning_tokens
    finish = plan.finish_reason.encode()
    if plan.chat and tool_message is not None:
        choice = b'{"index":0,"message":%s,"logprobs":null,"finish_reason":"%s"}' % (tool_message, finish)
    elif plan.chat:
        message = b'{"role":"assistant","content":"%s"' % token_text(r, n, plan.word) if r < n else b'{"role":"assistant","content":""'
        if r:
            message += b',"reasoning_content":"%s"' % token_text(0, r, plan.word)
        choice = b'{"index":0,"message":%s},"logprobs":null,"finish_reason":"%s"}' % (message, finish)
    else:
        choice = b'{"index":0,"text":"%s","logprobs":null,"finish_reason":"%s"}' % (token_text(0, n, plan.word), finish)
    usage = b',"usage":' + usage_json(plan.prompt_tokens, n, r, plan.cached_tokens, plan.image_tokens) if with_usage else b""
    return head + b',"choices":[' + choice + b"]" + usage + extra + b"}"


def object_head(chat: bool, stream: bool, rid: int, created: int, model_json: bytes) -> bytes:
    """The opening of every JSON object for one reply, left open for choices/usage to follow."""
    if chat:
        prefix, obj = b"chatcmpl", (b"chat.completion.chunk" if stream else b"chat.completion")
    else:
        prefix, obj = b"cmpl", b"text_completion"
    return b'{"id":"%s-%d","object":"%s","created":%d,"model":%s' % (prefix, rid, obj, created, model_json)
