"""Configuration of the simulated server: one frozen dataclass, mirrored one-to-one by CLI flags.

The same ``SimConfig`` is built by ``python -m loadtest.sim``, by ``loadtest serve sim`` and by
tests, and ``to_args`` turns it back into flags so ``SimProcess`` can hand it to a child process.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from loadtest.errors import ConfigError

_FAULT_FIELDS = ("disconnect_after_tokens", "stream_error_after_tokens", "malformed_after_tokens")


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulated server's replies; times in ms, counts in tokens."""

    host: str = "127.0.0.1"
    # 0 = let the OS pick a free port (the CLI defaults to 8000 instead, for humans).
    port: int = 0
    model: str = "sim-model"
    api_key: str | None = None
    ttft_ms: float = 20.0
    tpot_ms: float = 5.0
    # None = generate the request's max_tokens (16 when absent).
    output_tokens: int | None = None
    tokens_per_chunk: int = 1
    # Chunks of a seeded random 1..N tokens each, the first of 1 (as engines stream): overrides
    # tokens_per_chunk.
    chunk_tokens_max: int | None = None
    early_stops: bool = False
    continuous_usage: bool = False
    reject_continuous_usage: bool = False
    tokenize_endpoint: bool = False  # POST /tokenize (sim/tokenize.py), with prompt_tokenizer when set
    log_chunks: str | None = None
    empty_chunks: bool = False
    role_chunk: bool = True
    reasoning_tokens: int = 0
    usage: bool = True
    # Usage on the last chunk of every stream, asked for or not (transformers serve <= 5.23 did this).
    usage_always: bool = False
    usage_per_chunk: bool = False
    done: bool = True
    reject_stream_options: bool = False
    fail_status: int | None = None
    fail_every: int | None = None
    disconnect_after_tokens: int | None = None
    stream_error_after_tokens: int | None = None
    malformed_after_tokens: int | None = None
    crlf: bool = False
    # Prompt side (loadtest/sim/prompting.py): exact prompt counts, /props, slow prefill.
    prompt_tokenizer: str | None = None
    template_tokens: int = 0
    prefill_tokens_per_s: float | None = None
    n_ctx: int | None = None
    timings: bool = False

    # Hosted-API behaviour (sim/limits.py, sim/responses.py); --hosted sets a realistic mix.
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    rate_limit_every: int | None = None
    retry_after_s: float | None = None
    sse_comments: bool = False
    empty_choices_chunks: bool = False
    data_no_space: bool = False
    reject_max_tokens: bool = False

    # Server-side slots: at most this many replies generate at once, the rest wait (FIFO) and their
    # timing starts when a slot frees, so queueing under overload is real. None = unlimited.
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        # Fail at construction so a bad option never reaches a child process and dies there.
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"sim: port must be 0..65535, got {self.port}")
        if not self.model:
            raise ConfigError("sim: model name must not be empty")
        if not (math.isfinite(self.ttft_ms) and math.isfinite(self.tpot_ms)):
            raise ConfigError("sim: ttft_ms and tpot_ms must be finite numbers")
        if self.ttft_ms < 0 or self.tpot_ms < 0:
            raise ConfigError("sim: ttft_ms and tpot_ms must be >= 0")
        if self.output_tokens is not None and self.output_tokens < 1:
            raise ConfigError("sim: output_tokens must be >= 1")
        if self.tokens_per_chunk < 1:
            raise ConfigError("sim: tokens_per_chunk must be >= 1")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError("sim: max_concurrency must be >= 1")
        if self.chunk_tokens_max is not None and self.chunk_tokens_max < 1:
            raise ConfigError("sim: chunk_tokens_max must be >= 1")
        if self.reasoning_tokens < 0:
            raise ConfigError("sim: reasoning_tokens must be >= 0")
        if self.fail_status is not None and not 400 <= self.fail_status <= 599:
            raise ConfigError(f"sim: fail_status must be an HTTP error status 400..599, got {self.fail_status}")
        if self.fail_every is not None and self.fail_every < 1:
            raise ConfigError("sim: fail_every must be >= 1")
        if self.template_tokens < 0 or (self.n_ctx is not None and self.n_ctx < 1):
            raise ConfigError("sim: template_tokens must be >= 0 and n_ctx >= 1")
        if self.prefill_tokens_per_s is not None and not (math.isfinite(self.prefill_tokens_per_s)
                                                          and self.prefill_tokens_per_s > 0):
            raise ConfigError("sim: prefill_tokens_per_s must be a finite number > 0")
        faults = [name for name in _FAULT_FIELDS if getattr(self, name) is not None]
        for name in faults:
            if getattr(self, name) < 0:
                raise ConfigError(f"sim: {name} must be >= 0")
        if len(faults) + (self.fail_status is not None) > 1:
            raise ConfigError("sim: choose at most one of fail_status, " + ", ".join(_FAULT_FIELDS))
        for name in ("rpm_limit", "tpm_limit", "rate_limit_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"sim: {name} must be >= 1")
        if self.retry_after_s is not None and not (math.isfinite(self.retry_after_s) and self.retry_after_s >= 0):
            raise ConfigError("sim: retry_after_s must be a finite number >= 0")
        if self.fail_every is not None and not faults and self.fail_status is None:
            raise ConfigError("sim: fail_every needs fail_status or one of " + ", ".join(_FAULT_FIELDS))

    @property
    def fault(self) -> tuple[str, int] | None:
        """The mid-generation fault as (kind, after_tokens), kind in disconnect/stream_error/malformed."""
        for name in _FAULT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                return name.removesuffix("_after_tokens"), value
        return None

    def public_dict(self) -> dict[str, Any]:
        """The config as reported by /sim/stats; the key is withheld because stats are unauthenticated."""
        d = asdict(self)
        d["api_key"] = None if self.api_key is None else "***"
        return d

    def to_args(self) -> list[str]:
        """CLI flags that ``config_from_args`` turns back into an equal config."""
        args: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.name in _NEGATABLE:
                args.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, bool):
                if value:
                    args.append(flag)
            elif value is not None:
                args += [flag, str(value)]
        return args


# Flags that default on and so need an explicit --no-X form.
_NEGATABLE = ("role_chunk", "usage", "done")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sim's flags; dests equal SimConfig field names so ``config_from_args`` is mechanical."""
    d = SimConfig()
    g = parser.add_argument_group("simulated server")
    g.add_argument("--host", default=d.host, help="address to bind (default %(default)s)")
    g.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default %(default)s)")
    g.add_argument("--model", default=d.model, help="the one model name served (default %(default)s)")
    g.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 endpoints")

    t = parser.add_argument_group("timing (absolute schedule: token i is due at receipt + ttft + i*tpot)")
    t.add_argument("--ttft-ms", type=float, default=d.ttft_ms, help="time to first token (default %(default)s)")
    t.add_argument("--tpot-ms", type=float, default=d.tpot_ms, help="delay per token after the first (default %(default)s)")
    t.add_argument("--output-tokens", type=int, default=None,
                   help="tokens per reply, capped by max_tokens (default: the request's max_tokens, or 16)")
    t.add_argument("--max-concurrency", type=int, default=None,
                   help="replies generated at once; more wait for a slot, their clock starting then (default: no limit)")

    s = parser.add_argument_group("stream shape")
    s.add_argument("--tokens-per-chunk", type=int, default=d.tokens_per_chunk, help="tokens per SSE content chunk")
    s.add_argument("--empty-chunks", action="store_true", help='follow every content chunk with a {"content":""} chunk')
    s.add_argument("--role-chunk", action=argparse.BooleanOptionalAction, default=d.role_chunk,
                   help="send a role-only chunk immediately on receipt (chat)")
    s.add_argument("--reasoning-tokens", type=int, default=d.reasoning_tokens,
                   help="the first N tokens go to delta.reasoning_content (chat)")
    s.add_argument("--usage", action=argparse.BooleanOptionalAction, default=d.usage,
                   help="report usage (final chunk when stream_options.include_usage; non-stream body)")
    s.add_argument("--usage-always", action="store_true",
                   help="streams end with a usage chunk even when stream_options.include_usage is not asked "
                        "(as transformers serve <= 5.23; by default only when asked, as OpenAI and vLLM)")
    s.add_argument("--usage-per-chunk", action="store_true", help="every content chunk carries cumulative usage")
    s.add_argument("--chunk-tokens-max", type=int, default=None,
                   help="chunks of a seeded random 1..N tokens, the first chunk 1 token (overrides --tokens-per-chunk)")
    s.add_argument("--early-stops", action="store_true",
                   help="each reply stops at a seeded random length 1..max_tokens (finish_reason stop)")
    s.add_argument("--continuous-usage", action="store_true",
                   help="every chunk carries cumulative usage when stream_options.continuous_usage_stats is asked (vLLM)")
    s.add_argument("--reject-continuous-usage", action="store_true",
                   help="answer 400 to a request whose stream_options has continuous_usage_stats")
    s.add_argument("--tokenize-endpoint", action="store_true",
                   help="serve POST /tokenize (llama.cpp and vLLM shapes): the sim's exact word tokenizer, "
                        "or --prompt-tokenizer when given")
    s.add_argument("--log-chunks", default=None, metavar="PATH",
                   help="append one JSON line per reply to PATH: tokens and send time (ns) of every content chunk")
    s.add_argument("--done", action=argparse.BooleanOptionalAction, default=d.done, help="end streams with data: [DONE]")
    s.add_argument("--crlf", action="store_true", help="use CRLF line endings in SSE")

    f = parser.add_argument_group("failures (--fail-every N applies the chosen one to every Nth request only)")
    f.add_argument("--reject-stream-options", action="store_true", help="answer 400 to any request with stream_options")
    f.add_argument("--fail-status", type=int, default=None, help="answer generation requests with this HTTP status")
    f.add_argument("--fail-every", type=int, default=None, help="only every Nth generation request fails")
    f.add_argument("--disconnect-after-tokens", type=int, default=None, help="drop the connection after N tokens")
    f.add_argument("--stream-error-after-tokens", type=int, default=None,
                   help="after N tokens send an SSE error event, then end the stream")
    f.add_argument("--malformed-after-tokens", type=int, default=None,
                   help="after N tokens send an unparsable data line, then end the stream")
    _add_prompt_arguments(parser)


def _add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser.add_argument_group("prompt side")
    p.add_argument("--prompt-tokenizer", default=None,
                   help="count prompt tokens with this tokenizer (as loadtest --tokenizer) instead of whitespace words")
    p.add_argument("--template-tokens", type=int, default=0, help="chat requests: tokens a chat template adds")
    p.add_argument("--prefill-tokens-per-s", type=float, default=None,
                   help="prompt processing speed: the first token is delayed by prompt tokens / this")
    p.add_argument("--n-ctx", type=int, default=None,
                   help="context size: served by GET /props; prompt + max_tokens beyond it is refused (400)")
    p.add_argument("--timings", action="store_true",
                   help="llama.cpp-style timings (prompt_per_second, predicted_per_second) on the usage chunk")


    h = parser.add_argument_group("hosted API (--hosted: key sk-sim unless --api-key, 600 RPM, 200k TPM, "
                                  "SSE comments, choices:[] chunks, max_tokens rejected, 8 reasoning tokens)")
    h.add_argument("--hosted", action="store_true", help="behave like a hosted API (the mix above)")
    h.add_argument("--rpm-limit", type=int, default=None, metavar="N", help="answer 429 past N requests per minute")
    h.add_argument("--tpm-limit", type=int, default=None, metavar="N",
                   help="answer 429 past N tokens per minute (prompt words + max tokens)")
    h.add_argument("--rate-limit-every", type=int, default=None, metavar="N", help="answer 429 to every Nth generation request")
    h.add_argument("--retry-after-s", type=float, default=None, metavar="S",
                   help="Retry-After sent with a 429 (default: the time until the limit allows; 1 s for --rate-limit-every)")
    h.add_argument("--sse-comments", action="store_true", help="send ': keep-alive' / ': PROCESSING' comment lines")
    h.add_argument("--empty-choices-chunks", action="store_true",
                   help='open each stream with a "choices": [] chunk (as Azure does)')
    h.add_argument("--data-no-space", action="store_true", help="write 'data:{...}' without the space")
    h.add_argument("--reject-max-tokens", action="store_true",
                   help="answer 400 to max_tokens (chat): only max_completion_tokens is accepted, as o-series models")


HOSTED = {"rpm_limit": 600, "tpm_limit": 200_000, "sse_comments": True, "empty_choices_chunks": True,
          "reject_max_tokens": True, "reasoning_tokens": 8}


def config_from_args(ns: argparse.Namespace) -> SimConfig:
    """Build the config from parsed flags; raises ``ConfigError`` on an unusable combination.
    ``--hosted`` fills in what the other flags leave at their defaults."""
    values = {f.name: getattr(ns, f.name) for f in fields(SimConfig)}
    if getattr(ns, "hosted", False):
        default = SimConfig()
        for name, value in HOSTED.items():
            if values[name] == getattr(default, name):
                values[name] = value
        values["api_key"] = values["api_key"] or "sk-sim"
    return SimConfig(**values)
