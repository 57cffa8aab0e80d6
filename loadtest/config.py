"""Run configuration: what to run, separate from the thing that runs it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from loadtest.redact import is_secret_name, redact

POOLING_APIS = ("embeddings", "rerank")
"""The APIs whose requests generate nothing (vLLM calls their models pooling models): one JSON answer
per request, no stream, so no TTFT, TPOT or ITL (client/pooling.py, measure/pooling.py)."""
Api = Literal["chat", "completions", "responses", "embeddings", "rerank", "transcriptions"]
DEFAULT_AUDIO_SECONDS = 10.0
"""--api transcriptions: the synthetic clip's length when --audio-seconds is not given."""


@dataclass(frozen=True)
class RunConfig:
    command: Literal["single", "throughput", "sweep", "capacity"]
    base_url: str
    model: str | None
    api: Api = "chat"
    stream: bool = True
    api_key: str | None = None
    dataset: str = "builtin"
    num_prompts: int | None = 100
    duration_s: float | None = None
    concurrency: int = 1
    warmup: int = 0
    seed: int = 0
    max_tokens: int = 256
    temperature: float | None = None
    top_p: float | None = None
    ignore_eos: bool = False
    extra_body: dict[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None
    timeout_s: float = 600.0
    transport: str = "fast"
    preconnect: bool = True
    output_dir: Path | None = None
    quiet: bool = False
    # --dataset synthetic (loadtest/synthetic.py)
    prompt_tokens: int | None = None
    prompt_tokens_stddev: float = 0.0
    shared_prefix_tokens: int = 0
    # prefix caching (prompts/synthetic.py): G groups sharing the prefix, or no prefix can hit
    prefix_groups: int | None = None
    cache_bust: bool = False

    # Hosted APIs (loadtest/auth.py, retry.py, ratelimit.py, sender.py).
    headers: tuple[tuple[str, str], ...] = ()
    azure: bool = False
    api_version: str | None = None
    insecure: bool = False
    max_retries: int = 5
    rpm_limit: float | None = None
    tpm_limit: float | None = None

    # Load shape (loadtest/scheduler/phases.py): an open loop when request_rate is set (math.inf: all at once).
    request_rate: float | None = None
    arrival: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    ramp_up_s: float = 0.0
    warmup_s: float | None = None
    cooldown_s: float = 0.0

    # The server's side (loadtest/servermetrics): /metrics sources ("auto": the endpoint's own) and
    # NVML, sampled by a child process every server_metrics_interval_s; () turns it all off.
    server_metrics: tuple[str, ...] = ("auto",)
    server_metrics_interval_s: float = 1.0
    # Abandoned requests (loadtest/client/abandon.py): a seeded share of the requests is let go
    # cancel_after_s seconds after it was sent, as users who close the tab. None: not asked for.
    cancel_rate: float | None = None
    cancel_after_s: float | None = None

    # Trace replay (--trace; prompts/trace.py reads it, scheduler/replay.py times it): the file, how it is
    # replayed, and the start offsets (seconds from the run's origin) computed from it before the run.
    trace: str | None = None
    replay_speed: float = 1.0
    trace_window: tuple[float, float | None] | None = None
    max_idle_s: float | None = None
    trace_schedule_s: tuple[float, ...] = ()

    # Multi-turn sessions (run/sessions.py; docs/load-shapes.md "Multi-turn sessions"): a job is a
    # session whose turns go one after another, each carrying the whole history. ``turns``: synthetic
    # sessions of that many user turns (the first --prompt-tokens long, each later turn_prompt_tokens);
    # ``multi_turn``: a dataset's conversations, each user turn a turn. ``history``: "actual" (the
    # server's own replies) or "recorded" (the dataset's assistant turns). ``think_time_s``: mean of
    # the seeded exponential pause between a reply and the next turn (0: none).
    turns: int | None = None
    turn_prompt_tokens: int | None = None
    multi_turn: bool = False
    history: str = "actual"
    think_time_s: float = 0.0
    session_rate: float | None = None
    session_header: str | None = None

    # Agentic tool loops (run/sessions.py; docs/load-shapes.md "Agentic tool loops"): the OpenAI tool
    # definitions offered with every request (--tools FILE|synthetic; None: none). A reply with tool
    # calls is answered with one canned result per call, tool_result_tokens long by the server's
    # tokenizer (the text, tool_result_text, is made before the run: client/synthetic.py), after a
    # pause of tool_latency_s, and requested again, up to max_tool_rounds times per user turn.
    tools: tuple[dict[str, Any], ...] | None = None
    tools_source: str | None = None
    tool_result_tokens: int = 32
    tool_latency_s: float = 0.0
    max_tool_rounds: int = 4
    tool_result_text: str | None = None

    # Embeddings and rerank (--api embeddings|rerank; docs/embeddings.md): each embeddings request carries
    # batch_size inputs; each rerank request one query and ``documents`` documents (document_tokens long
    # each with --dataset synthetic). encoding_format (float, base64) is sent only when given.
    batch_size: int = 1
    documents: int = 8
    document_tokens: int | None = None
    encoding_format: str | None = None

    @property
    def pooled(self) -> bool:
        """Whether requests go to an endpoint that generates nothing (embeddings, rerank)."""
        return self.api in POOLING_APIS
    # Images and audio (prompts/attach.py; docs/media.md): ``images`` seeded synthetic images of
    # ``image_size`` (width, height) in ``image_format`` (png, jpeg) attached to every chat prompt;
    # ``audio_seconds``: the length of the seeded synthetic clip each --api transcriptions request
    # uploads when its dataset row names no audio file (None: not a transcription run).
    images: int = 0
    image_size: tuple[int, int] = (512, 512)
    image_format: str = "png"
    audio_seconds: float | None = None

    @property
    def multi_turn_sessions(self) -> bool:
        """Whether each job is a conversation of several user turns (--turns, --multi-turn)."""
        return self.turns is not None or self.multi_turn

    @property
    def sessions(self) -> bool:
        """Whether each job runs through the session loop rather than as one request: multi-turn
        sessions, and tool loops (a task is a user turn and the tool rounds that answer it)."""
        return self.multi_turn_sessions or self.tools is not None

    def to_json(self) -> dict[str, Any]:
        """Every parameter, for summary.json; the API key itself is never written."""
        d = asdict(self)
        d["api_key"] = "(set)" if self.api_key else None
        d["base_url"] = redact(self.base_url)
        d["output_dir"] = str(self.output_dir) if self.output_dir else None
        d["headers"] = [[k, "***" if is_secret_name(k) else redact(v)] for k, v in self.headers]
        d["server_metrics"] = [redact(u) for u in self.server_metrics]
        d.pop("trace_schedule_s")  # the summary's trace block says what the schedule was
        d.pop("tool_result_text")  # the summary's tools block says how it was made
        d["tools"] = None if self.tools is None else [t["function"]["name"] for t in self.tools]  # names, not definitions
        d["image_size"] = "{}x{}".format(*self.image_size)  # as --image-size takes it (a tuple would not compare)
        if d["request_rate"] == float("inf"):
            d["request_rate"] = "inf"  # JSON has no infinity
        return d
