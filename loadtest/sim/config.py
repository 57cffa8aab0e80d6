"""Configuration of the simulated server: one frozen dataclass, mirrored one-to-one by CLI flags
(defined in cli/serve.py: ``loadtest serve sim``, also ``python -m loadtest.sim``).

Tests build ``SimConfig`` directly, and ``to_args`` turns it back into those flags so
``SimProcess`` can hand it to a child process.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from loadtest.errors import ConfigError

_FAULT_FIELDS = ("disconnect_after_tokens", "stream_error_after_tokens", "malformed_after_tokens")
TRANSCRIPTION_DIALECTS = ("vllm", "openai", "none")
"""How POST /v1/audio/transcriptions answers (sim/transcribe.py); none: 404."""
METRICS_FAMILIES = ("vllm", "llamacpp", "dcgm")
"""What GET /metrics can serve (sim/metrics.py): vLLM's and llama.cpp's names, and DCGM's GPU fields."""


_DAY_MS = 86_400_000
_TOKENS = 10_000_000  # as ``tokens`` sizes: past it no prompt exists and sums near 64 bits
_UPPER_BOUNDS: dict[str, int | float] = {
    "ttft_ms": _DAY_MS, "tpot_ms": _DAY_MS, "metrics_delay_ms": _DAY_MS, "retry_after_s": 86_400,
    "output_tokens": _TOKENS, "reasoning_tokens": _TOKENS, "template_tokens": _TOKENS, "image_tokens": _TOKENS,
    "n_ctx": 1_000_000_000, "prefix_cache_tokens": 1_000_000_000, "kv_cache_tokens": 1_000_000_000_000,
    "embedding_dim": 65_536, "tool_call_rounds": 1_000, "tool_calls_per_round": 1_000,
    "metrics_extra_series": 100_000, "audio_tokens_per_s": 100_000, "transcript_words_per_s": 1_000,
    "prefill_tokens_per_s": 1e12,
}
"""The largest value each option takes (``_check_bounds``)."""


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
    # Server noise: each reply's TTFT and TPOT are multiplied by its own lognormal factor
    # exp(N(0, jitter)) (median 1), drawn from (jitter_seed, reply number): a server whose timing
    # varies as real ones do, reproducibly. 0 = exact. Chat and completions replies.
    jitter: float = 0.0
    jitter_seed: int = 0
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
    log_header: str | None = None  # with log_chunks: this request header's value in each line
    # Reply words depend on the whole prompt (a hash of the chat messages), so a conversation's
    # history can be checked against the replies it really got, which differ per conversation.
    replies_from_prompt: bool = False
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
    # Prefix cache (sim/prefixcache.py): capacity in tokens (None/0 = off), LRU over whole blocks.
    prefix_cache_tokens: int | None = None
    prefix_block_tokens: int = 16

    # Hosted-API behaviour (sim/limits.py, sim/responses.py); --hosted sets a realistic mix.
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    rate_limit_every: int | None = None
    retry_after_s: float | None = None
    sse_comments: bool = False
    empty_choices_chunks: bool = False
    data_no_space: bool = False
    reject_max_tokens: bool = False
    overload_every: int | None = None  # /v1/messages: the Nth valid request answered 529 (sim/messages.py)

    # Tool calls (sim/tools.py): a request offering tools gets tool_calls_per_round calls instead of text
    # in its first tool_call_rounds replies after a user message (0: never).
    tool_call_rounds: int = 0
    tool_calls_per_round: int = 1

    # Server-side slots: at most this many replies generate at once, the rest wait (FIFO) and their
    # timing starts when a slot frees, so queueing under overload is real. None = unlimited.
    max_concurrency: int | None = None

    # GET /metrics (sim/engine.py keeps the truth, sim/metrics.py writes the page): which engines'
    # families it serves; () = none, /metrics answers 404 as a server without metrics does.
    metrics: tuple[str, ...] = ()
    kv_cache_tokens: int = 65536  # KV capacity: usage = tokens held by running requests / this
    # The known engine bug: a request whose client went away keeps its slot and KV, and generates
    # until it would have finished (default: aborted at once, as engines that handle it do).
    keep_generating_on_disconnect: bool = False
    metrics_delay_ms: float = 0.0  # each /metrics answer waits this long (generation goes on)
    metrics_malformed: bool = False  # /metrics answers 200 with a page the Prometheus parser rejects
    metrics_extra_series: int = 0  # this many extra gauge series, to make the page large

    # Embeddings and rerank (sim/pooling.py): floats per embedding (a request's ``dimensions`` overrides it);
    # embeddings False answers them 501 as llama.cpp started without --embeddings does.
    embedding_dim: int = 8
    embeddings: bool = True
    # Images and transcriptions (sim/images.py, sim/transcribe.py): prompt tokens charged per image part
    # of a chat request; a transcription's prompt tokens per second of audio (Whisper's encoder: 1500 per
    # 30 s) and transcript words (one token each) per second; the shape of /v1/audio/transcriptions'
    # answers: vllm (chat-shaped chunks, duration usage), openai (transcript.text.* events, token
    # usage) or none (404, a server without the endpoint).
    image_tokens: int = 256
    audio_tokens_per_s: float = 50.0
    transcript_words_per_s: float = 2.5
    transcription_dialect: str = "vllm"

    def __post_init__(self) -> None:
        # Fail at construction so a bad option never reaches a child process and dies there.
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"sim: port must be 0..65535, got {self.port}")
        if not self.model:
            raise ConfigError("sim: model name must not be empty")
        if not self.host.strip():
            raise ConfigError("sim: host must not be empty (0.0.0.0 listens on every address)")
        if not (math.isfinite(self.ttft_ms) and math.isfinite(self.tpot_ms)):
            raise ConfigError("sim: ttft_ms and tpot_ms must be finite numbers")
        if self.ttft_ms < 0 or self.tpot_ms < 0:
            raise ConfigError("sim: ttft_ms and tpot_ms must be >= 0")
        if not (math.isfinite(self.jitter) and 0 <= self.jitter <= 2):
            raise ConfigError("sim: jitter must be between 0 and 2 (the sigma of a lognormal factor)")
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
        if (self.prefix_cache_tokens is not None and self.prefix_cache_tokens < 0) or self.prefix_block_tokens < 1:
            raise ConfigError("sim: prefix_cache_tokens must be >= 0 and prefix_block_tokens >= 1")
        if self.tool_call_rounds < 0 or self.tool_calls_per_round < 1:
            raise ConfigError("sim: tool_call_rounds must be >= 0 and tool_calls_per_round >= 1")
        faults = [name for name in _FAULT_FIELDS if getattr(self, name) is not None]
        for name in faults:
            if getattr(self, name) < 0:
                raise ConfigError(f"sim: {name} must be >= 0")
        if len(faults) + (self.fail_status is not None) > 1:
            raise ConfigError("sim: choose at most one of fail_status, " + ", ".join(_FAULT_FIELDS))
        for name in ("rpm_limit", "tpm_limit", "rate_limit_every", "overload_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"sim: {name} must be >= 1")
        if self.retry_after_s is not None and not (math.isfinite(self.retry_after_s) and self.retry_after_s >= 0):
            raise ConfigError("sim: retry_after_s must be a finite number >= 0")
        if self.fail_every is not None and not faults and self.fail_status is None:
            raise ConfigError("sim: fail_every needs fail_status or one of " + ", ".join(_FAULT_FIELDS))
        if self.embedding_dim < 1:
            raise ConfigError("sim: embedding_dim must be >= 1")
        self._check_metrics()
        self._check_media()
        self._check_bounds()

    def _check_bounds(self) -> None:
        """Upper bounds: a value past them was accepted, then each request overflowed a timer
        (``prefill_tokens_per_s 1e-300``: a 400 'callback error'), built a reply until memory ran out
        (``tool_calls_per_round 10^12``, ``metrics_extra_series 10^12``: the server died) or sent a
        count past 64 bits. None of them is a server anyone tests against."""
        for name, most in _UPPER_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and value > most:
                raise ConfigError(f"sim: {name} must be at most {most:,}, got {value:,}")
        if self.prefill_tokens_per_s is not None and self.prefill_tokens_per_s < 0.001:
            raise ConfigError(f"sim: prefill_tokens_per_s must be at least 0.001, got {self.prefill_tokens_per_s}")

    def _check_metrics(self) -> None:
        if not isinstance(self.metrics, tuple):  # a list from a caller would not survive to_args
            object.__setattr__(self, "metrics", tuple(self.metrics))
        unknown = [name for name in self.metrics if name not in METRICS_FAMILIES]
        if unknown or len(set(self.metrics)) != len(self.metrics):
            raise ConfigError(f"sim: metrics must be distinct names from {', '.join(METRICS_FAMILIES)}, "
                              f"got {','.join(self.metrics)}")
        if self.kv_cache_tokens < 1:
            raise ConfigError("sim: kv_cache_tokens must be >= 1")
        if not (math.isfinite(self.metrics_delay_ms) and self.metrics_delay_ms >= 0):
            raise ConfigError("sim: metrics_delay_ms must be a finite number >= 0")
        if self.metrics_extra_series < 0:
            raise ConfigError("sim: metrics_extra_series must be >= 0")
        if not self.metrics and (self.metrics_delay_ms or self.metrics_malformed or self.metrics_extra_series):
            raise ConfigError("sim: metrics_delay_ms, metrics_malformed and metrics_extra_series need metrics "
                              "(--metrics vllm,llamacpp,dcgm)")

    def _check_media(self) -> None:
        if self.image_tokens < 0:
            raise ConfigError("sim: image_tokens must be >= 0")
        if not (math.isfinite(self.audio_tokens_per_s) and self.audio_tokens_per_s >= 0):
            raise ConfigError("sim: audio_tokens_per_s must be a finite number >= 0")
        if not (math.isfinite(self.transcript_words_per_s) and self.transcript_words_per_s > 0):
            raise ConfigError("sim: transcript_words_per_s must be a finite number > 0")
        if self.transcription_dialect not in TRANSCRIPTION_DIALECTS:
            raise ConfigError(f"sim: transcription_dialect must be one of {', '.join(TRANSCRIPTION_DIALECTS)}, "
                              f"got {self.transcription_dialect!r}")

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
            if f.name in NEGATABLE:
                args.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, bool):
                if value:
                    args.append(flag)
            elif isinstance(value, tuple):
                if value:
                    args += [flag, ",".join(value)]
            elif value is not None:
                args += [flag, str(value)]
        return args


# Flags that default on and so need an explicit --no-X form.
NEGATABLE = ("role_chunk", "usage", "done", "embeddings")


HOSTED = {"rpm_limit": 600, "tpm_limit": 200_000, "sse_comments": True, "empty_choices_chunks": True,
          "reject_max_tokens": True, "reasoning_tokens": 8}
