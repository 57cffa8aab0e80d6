"""The readers: parsed options (cli/options.py defines each group once) -> the config objects
domain code takes (RunConfig, LaunchSpec, objectives). A combination that cannot work is one
ConfigError line here, before anything starts."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest.cli.extrabody import extra_body
from loadtest.cli.options import SYNTHETIC
from loadtest.config import DEFAULT_AUDIO_SECONDS, POOLING_APIS, RunConfig
from loadtest.errors import ConfigError


def require_endpoint(ns: argparse.Namespace) -> None:
    if not ns.endpoint and not getattr(ns, "launch", None):
        raise ConfigError("--endpoint is required (or --launch ENGINE to start one)")


def run_config(ns: argparse.Namespace, *, command: str, concurrency: int = 1, request_rate: float | None = None,
               num_prompts: int | None = None, duration_s: float | None = None, output_dir: Path) -> RunConfig:
    """The RunConfig of a run command's options; ConfigError (one line) on a combination that
    cannot work, before anything starts."""
    from loadtest.client.auth import hosted_fields

    require_endpoint(ns)
    if ns.api == "messages" and ns.transport == "openai":
        raise ConfigError("--transport openai is OpenAI's SDK, which does not read the Messages API's events: "
                          "use --transport fast or httpx")
    load = _load_fields(ns, request_rate=request_rate, duration_s=duration_s)
    fields: dict[str, Any] = dict(
        command=command, base_url=normalized(ns.endpoint), model=ns.model, api=ns.api, stream=ns.stream,
        api_key=ns.api_key, dataset=ns.dataset, num_prompts=None if duration_s else num_prompts,
        duration_s=duration_s, concurrency=concurrency, seed=ns.seed, max_tokens=ns.max_tokens,
        temperature=ns.temperature, top_p=ns.top_p, ignore_eos=ns.ignore_eos, extra_body=extra_body(ns.extra_body, ns),
        tokenizer=ns.tokenizer, timeout_s=ns.timeout, transport=ns.transport, preconnect=ns.preconnect,
        output_dir=output_dir, quiet=ns.quiet, **load, **server_metrics_fields(ns), **_abandonment_fields(ns))
    fields.update(_trace_fields(ns))
    fields.update(_session_fields(ns))
    fields.update(_tool_fields(ns))
    fields.update(pooling_fields(ns))
    fields.update(_media_fields(ns))
    fields.update(hosted_fields(api_key=ns.api_key, api_key_env=ns.api_key_env, headers=ns.headers, azure=ns.azure,
                                api_version=ns.api_version, insecure=ns.insecure, max_retries=ns.max_retries,
                                rpm_limit=ns.rpm_limit, tpm_limit=ns.tpm_limit, endpoint=ns.endpoint or "",
                                model=ns.model, api=ns.api))
    return _prefix_caching(_synthetic(RunConfig(**fields), ns), ns)


def normalized(endpoint: str | None) -> str:
    from loadtest.transport.base import normalize_base_url

    return normalize_base_url(endpoint) if endpoint else ""


def _load_fields(ns: argparse.Namespace, *, request_rate: float | None, duration_s: float | None) -> dict[str, Any]:
    """RunConfig's load-shape fields; ConfigError on a combination that cannot work."""
    objectives(ns)  # bad objectives: one line before anything runs
    warm = ns.warmup
    warmup_s = float(warm) if isinstance(warm, float) else None
    cooldown = getattr(ns, "cooldown", 0.0)
    arrival, burstiness = getattr(ns, "arrival", "poisson"), getattr(ns, "burstiness", 1.0)
    max_concurrency = getattr(ns, "max_concurrency", None)
    if request_rate is None:
        if max_concurrency is not None and getattr(ns, "trace", None) is None:
            raise ConfigError("--max-concurrency needs --request-rate (a closed loop's cap is --concurrency)")
        if arrival != "poisson" or burstiness != 1.0:
            raise ConfigError("--arrival and --burstiness need --request-rate")
    if request_rate is not None and math.isinf(request_rate) and duration_s is not None and max_concurrency is None:
        raise ConfigError("--request-rate inf with --duration starts requests without end: add --max-concurrency N "
                          "(all at once, up to N in flight) or use --concurrency N")
    if burstiness != 1.0 and arrival != "gamma":
        raise ConfigError("--burstiness applies to --arrival gamma")
    if (warmup_s is not None or cooldown) and duration_s is None:
        raise ConfigError("--warmup in seconds and --cooldown need --duration (the phases are times around it)")
    if request_rate is not None and duration_s is not None and isinstance(warm, int) and warm:
        raise ConfigError("with --request-rate and --duration give --warmup as a time (e.g. --warmup 5s)")
    if getattr(ns, "resume", None) is not None and (request_rate is not None or warmup_s is not None or cooldown):
        raise ConfigError("--resume continues closed-loop runs only (not --request-rate, --warmup 5s, --cooldown)")
    return {"request_rate": request_rate, "arrival": arrival, "burstiness": burstiness,
            "max_concurrency": max_concurrency, "ramp_up_s": getattr(ns, "ramp_up", 0.0), "warmup_s": warmup_s,
            "cooldown_s": cooldown, "warmup": 0 if warmup_s is not None else int(warm)}


def _abandonment_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """cancel_rate and cancel_after_s (None: no abandonment asked for)."""
    rate, after = getattr(ns, "cancel_rate", None), getattr(ns, "cancel_after", None)
    if after is not None and rate is None:
        raise ConfigError("--cancel-after needs --cancel-rate P (the share of requests to abandon)")
    return {"cancel_rate": rate, "cancel_after_s": None if rate is None else (after or 0.0)}


def _synthetic(cfg: RunConfig, ns: argparse.Namespace) -> RunConfig:
    """The synthetic-prompt options checked against the dataset and written into the config."""
    given = getattr(ns, "prompt_tokens", None)
    stddev, shared = getattr(ns, "prompt_tokens_stddev", 0.0), getattr(ns, "shared_prefix_tokens", 0)
    if cfg.dataset != SYNTHETIC:
        if given is not None or shared or stddev:
            raise ConfigError("--prompt-tokens, --prompt-tokens-stddev and --shared-prefix-tokens need --dataset synthetic")
        return cfg
    if given is None or given < 1:
        raise ConfigError("--dataset synthetic needs --prompt-tokens N (N >= 1)")
    if stddev < 0 or not 0 <= shared < given:
        raise ConfigError("--prompt-tokens-stddev must be >= 0 and --shared-prefix-tokens between 0 and --prompt-tokens - 1")
    return replace(cfg, prompt_tokens=given, prompt_tokens_stddev=stddev, shared_prefix_tokens=shared)


def _prefix_caching(cfg: RunConfig, ns: argparse.Namespace) -> RunConfig:
    """--prefix-groups and --cache-bust checked against the synthetic options."""
    groups, bust = getattr(ns, "prefix_groups", None), bool(getattr(ns, "cache_bust", False))
    if (groups is not None or bust) and cfg.dataset != SYNTHETIC:
        raise ConfigError("--prefix-groups and --cache-bust need --dataset synthetic")
    if groups is not None and groups < 1:
        raise ConfigError(f"--prefix-groups must be >= 1, got {groups}")
    if groups is not None and not cfg.shared_prefix_tokens:
        raise ConfigError("--prefix-groups G needs --shared-prefix-tokens K (the tokens each group shares)")
    if bust and cfg.prompt_tokens is not None and cfg.shared_prefix_tokens + 1 >= cfg.prompt_tokens:
        raise ConfigError("--cache-bust adds a first token: --shared-prefix-tokens must be below --prompt-tokens - 1")
    return replace(cfg, prefix_groups=groups, cache_bust=bust)


def objectives(ns: argparse.Namespace) -> tuple[list[Any], float]:
    """(the --slo objectives, --slo-attainment)."""
    from loadtest.judge import slo

    return slo.parse(getattr(ns, "slo", None)), getattr(ns, "slo_attainment", slo.DEFAULT_ATTAINMENT)


def launch_spec(ns: argparse.Namespace, engine: str | None = None) -> Any:
    """The LaunchSpec of the launch options (``engine``: serve's positional engine), or None when
    nothing is to be launched. The model and log directory are the run's (run/launched.py)."""
    engine = engine or getattr(ns, "launch", None)
    if not engine:
        return None
    from loadtest.launch.spec import LaunchSpec

    api = getattr(ns, "api", None)
    embeddings = ns.embeddings or api in POOLING_APIS  # the engine must serve what the run asks
    if ns.pooling is not None and not embeddings:
        raise ConfigError("--pooling needs --embeddings (or --api embeddings|rerank)")
    return LaunchSpec(engine=engine, model=getattr(ns, "model", None), port=getattr(ns, "port", None),
                      threads=ns.threads, slots=ns.slots, ctx_size=ns.ctx_size, gpu_layers=ns.gpu_layers,
                      dtype=ns.dtype, attn_implementation=ns.attn_implementation, compile=ns.compile,
                      tensor_parallel_size=ns.tensor_parallel_size, max_model_len=ns.max_model_len,
                      gpu_memory_utilization=ns.gpu_memory_utilization, extra_args=list(ns.engine_arg),
                      ready_timeout_s=ns.ready_timeout, embeddings=embeddings,
                      pooling=(ns.pooling or ("rank" if api == "rerank" else "mean")) if embeddings else None)


def output_dir(ns: argparse.Namespace, command: str) -> Path:
    from loadtest.run.output import default_output_dir

    return ns.output if ns.output is not None else default_output_dir(command)

def server_metrics_fields(ns: argparse.Namespace) -> dict[str, Any]:
    given = getattr(ns, "server_metrics", None)
    if getattr(ns, "no_server_metrics", False):
        if given:
            raise ConfigError("--server-metrics and --no-server-metrics contradict each other")
        return {"server_metrics": ()}
    for url in given or ():
        if url != "auto" and not url.startswith(("http://", "https://")):
            raise ConfigError(f"--server-metrics {url!r}: give an http(s):// URL or 'auto'")
    return {"server_metrics": tuple(given or ("auto",)),
            "server_metrics_interval_s": getattr(ns, "server_metrics_interval", 1.0)}


# -- repeats (--repeat N; series/repeat.py) ------------------------------------------------------------
def repeat_settings(ns: argparse.Namespace) -> Any:
    """The RepeatSettings of --repeat and its companions, or None without --repeat."""
    n, until = getattr(ns, "repeat", None), getattr(ns, "until_ci", None)
    metric, vary = getattr(ns, "ci_metric", None), getattr(ns, "vary_seed", False)
    if n is None:
        if until is not None or metric is not None or vary:
            raise ConfigError("--vary-seed, --until-ci and --ci-metric need --repeat N")
        return None
    from loadtest.measure.repeats import metric_key
    from loadtest.series.repeat import DEFAULT_CI_METRIC, MIN_RUNS, RepeatSettings

    if metric is not None and until is None:
        raise ConfigError("--ci-metric names the metric --until-ci watches: give --until-ci PCT too")
    if until is not None and n < MIN_RUNS:
        raise ConfigError(f"--until-ci needs --repeat N with N >= {MIN_RUNS} (the most runs; no interval of fewer "
                          "than 3 is judged)")
    key = metric_key(metric or DEFAULT_CI_METRIC)
    if key is None:
        raise ConfigError(f"--ci-metric {metric!r}: give a metric of summary.json, e.g. output_tokens_per_s, "
                          "requests_per_min, ttft_s.p99 (or ttft:p99)")
    if getattr(ns, "resume", None) is not None:
        raise ConfigError("--resume continues one run; it does not combine with --repeat")
    return RepeatSettings(n=n, vary_seed=vary, until_ci_pct=until, ci_metric=key)


# -- multi-turn sessions (--turns, --multi-turn) ----------------------------------------------------
def session_conflicts(ns: argparse.Namespace) -> None:
    """What sessions cannot combine with, as one line each, before anything starts."""
    turns, multi = getattr(ns, "turns", None), getattr(ns, "multi_turn", False)
    if turns is None and not multi:
        trace = getattr(ns, "trace", None) is not None  # a trace's sessions: its rows sharing a session_id
        for dest, flag, unset in (("turn_prompt_tokens", "--turn-prompt-tokens", None), ("think_time", "--think-time", 0.0),
                                  ("session_header", "--session-header", None), ("session_rate", "--session-rate", None),
                                  ("history", "--history recorded", "actual")):
            if getattr(ns, dest, unset) == unset or (trace and dest == "session_header"):
                continue
            if trace:
                raise ConfigError(f"--trace replays its sessions at their recorded times with the actual replies: "
                                  f"leave out {flag}")
            raise ConfigError(f"{flag} needs sessions: --dataset synthetic --turns N, or --multi-turn")
        return
    if turns is not None and multi:
        raise ConfigError("--turns makes synthetic sessions, --multi-turn a file's: give one")
    if turns is not None and ns.dataset != SYNTHETIC:
        raise ConfigError("--turns N needs --dataset synthetic (a conversation file runs with --multi-turn)")
    if multi and ns.dataset == SYNTHETIC:
        raise ConfigError("--multi-turn runs a conversation file; synthetic sessions take --turns N")
    if getattr(ns, "turn_prompt_tokens", None) is not None and turns is None:
        raise ConfigError("--turn-prompt-tokens needs --turns N")
    if getattr(ns, "history", "actual") == "recorded" and not multi:
        raise ConfigError("--history recorded needs --multi-turn (synthetic sessions have no recorded replies)")
    if ns.api != "chat":
        raise ConfigError("sessions need --api chat (a turn carries the conversation as chat messages)")
    if getattr(ns, "session_rate", None) is not None and (getattr(ns, "request_rate", None) is not None
                                                         or getattr(ns, "concurrency", None) is not None):
        raise ConfigError("--session-rate starts sessions open-loop: leave out --request-rate and --concurrency")
    for dest, flag, unset in (("trace", "--trace", None), ("resume", "--resume", None),
                              ("cancel_rate", "--cancel-rate", None), ("ray_address", "--ray-address", None)):
        if getattr(ns, dest, unset) != unset:
            raise ConfigError(f"sessions do not combine with {flag}")
    if getattr(ns, "workers", 1) > 1:
        raise ConfigError("sessions run in one client process (not with --workers)")


def _session_fields(ns: argparse.Namespace) -> dict[str, Any]:
    turns, multi = getattr(ns, "turns", None), getattr(ns, "multi_turn", False)
    if turns is None and not multi:  # a trace's sessions take only the header
        return {"session_header": ns.session_header} if getattr(ns, "trace", None) and ns.session_header else {}
    return {"turns": turns, "turn_prompt_tokens": getattr(ns, "turn_prompt_tokens", None), "multi_turn": multi,
            "history": ns.history, "think_time_s": ns.think_time, "session_rate": getattr(ns, "session_rate", None),
            "session_header": ns.session_header}


# -- agentic tool loops (--tools) -------------------------------------------------------------------
_TOOL_OPTIONS = (("tool_result_tokens", "--tool-result-tokens", 32), ("tool_latency", "--tool-latency", 0.0),
                 ("max_tool_rounds", "--max-tool-rounds", 4))


def tool_conflicts(ns: argparse.Namespace) -> None:
    """What tool loops cannot combine with, as one line each, before anything starts."""
    if getattr(ns, "tools", None) is None:
        for dest, flag, unset in _TOOL_OPTIONS:
            if getattr(ns, dest, unset) != unset:
                raise ConfigError(f"{flag} needs --tools FILE (or --tools synthetic)")
        return
    if ns.api != "chat":
        raise ConfigError("--tools needs --api chat (tool calls and their results travel as chat messages)")
    if getattr(ns, "history", "actual") == "recorded":
        raise ConfigError("--tools does not combine with --history recorded (the tool rounds need the server's "
                          "actual replies)")
    for dest, flag, unset in (("trace", "--trace", None), ("resume", "--resume", None),
                              ("cancel_rate", "--cancel-rate", None), ("ray_address", "--ray-address", None)):
        if getattr(ns, dest, unset) != unset:
            raise ConfigError(f"--tools does not combine with {flag}")
    if getattr(ns, "workers", 1) > 1:
        raise ConfigError("tool loops run in one client process (not with --workers)")


def _tool_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """RunConfig's tool fields; the tools file is read and checked here (DatasetError: one line)."""
    source = getattr(ns, "tools", None)
    if source is None:
        return {}
    from loadtest.prompts.tools import load_tools

    return {"tools": load_tools(source), "tools_source": source, "tool_result_tokens": ns.tool_result_tokens,
            "tool_latency_s": ns.tool_latency, "max_tool_rounds": ns.max_tool_rounds}


# -- trace replay (--trace) -------------------------------------------------------------------------
_TRACE_CONFLICTS = (("request_rate", "--request-rate"), ("concurrency", "--concurrency"),
                    ("num_prompts", "--num-prompts"), ("duration", "--duration"), ("resume", "--resume"))


def trace_conflicts(ns: argparse.Namespace) -> None:
    """--trace decides when and what: the options that decide either elsewhere are refused."""
    if getattr(ns, "trace", None) is None:
        if getattr(ns, "trace_window", None) or getattr(ns, "max_idle", None) is not None or \
                getattr(ns, "replay_speed", 1.0) != 1.0:
            raise ConfigError("--replay-speed, --trace-window and --max-idle need --trace FILE")
        return
    for dest, flag in _TRACE_CONFLICTS:
        if getattr(ns, dest, None) is not None:
            raise ConfigError(f"--trace decides when and how many requests start: leave out {flag}")
    if ns.dataset != "builtin":
        raise ConfigError("--trace decides the prompts (synthesised at the trace's lengths): leave out --dataset")
    if getattr(ns, "ramp_up", 0.0):
        raise ConfigError("--trace replays the recorded start times: leave out --ramp-up")
    if getattr(ns, "workers", 1) > 1 or getattr(ns, "ray_address", None):
        raise ConfigError("--trace runs in one client process (not with --workers / --ray-address)")


def _trace_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """RunConfig's trace fields; a trace asks each row's output length exactly (ignore_eos, which
    the sender stops sending if the server rejects it)."""
    path = getattr(ns, "trace", None)
    if path is None:
        return {}
    return {"trace": path, "replay_speed": ns.replay_speed, "trace_window": trace_window(ns.trace_window),
            "max_idle_s": ns.max_idle, "ignore_eos": True}


def trace_window(text: str | None) -> tuple[float, float | None] | None:
    """``START:END`` seconds (either may be empty: ``:60``, ``30:``); ConfigError when unusable."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    try:
        a = float(start) if start.strip() else 0.0
        b = float(end) if end.strip() else None
    except ValueError:
        a = b = None  # type: ignore[assignment]
    if not sep or a is None or not (0 <= a < float("inf")) or (b is not None and not a < b < float("inf")):
        raise ConfigError(f"--trace-window {text!r}: give START:END seconds with 0 <= START < END (e.g. 60:120)")
    return a, b


# -- embeddings and rerank (--api embeddings|rerank) ------------------------------------------------
_POOLING_OPTIONS = (("batch_size", "--batch-size", 1, "embeddings"), ("encoding_format", "--encoding-format", None,
                    "embeddings"), ("documents", "--documents", 8, "rerank"),
                    ("document_tokens", "--document-tokens", None, "rerank"))
_GENERATION_ONLY = ("ttft_s", "tpot_s", "itl_s")


def pooling_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """RunConfig's embeddings/rerank fields, checked: each option belongs to one API, the requests are
    never streamed, and an objective on a generation metric (TTFT, TPOT, ITL) is refused, since these
    requests generate nothing and such an objective could never be met."""
    api = ns.api
    for dest, flag, unset, owner in _POOLING_OPTIONS:
        if getattr(ns, dest, unset) != unset and api != owner:
            raise ConfigError(f"{flag} needs --api {owner}")
    if api not in POOLING_APIS:
        return {}
    if getattr(ns, "document_tokens", None) is not None and ns.dataset != SYNTHETIC:
        raise ConfigError("--document-tokens needs --dataset synthetic (documents of exact length)")
    if getattr(ns, "trace", None) is not None:
        raise ConfigError(f"--trace replays generation requests (their output lengths): not with --api {api}")
    for o in objectives(ns)[0]:
        if o.metric in _GENERATION_ONLY:
            raise ConfigError(f"--slo {o.text()}: --api {api} requests generate nothing, so they have no "
                              f"{o.label.split()[-1].upper()}; give latency objectives (e.g. --slo e2e:p99=0.5)")
    return {"stream": False, "batch_size": ns.batch_size, "documents": ns.documents,
            "document_tokens": ns.document_tokens, "encoding_format": ns.encoding_format}
# -- images and audio (--images, --api transcriptions) ----------------------------------------------
def _media_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """RunConfig's media fields; what images or transcriptions cannot combine with, one line each."""
    images = getattr(ns, "images", 0) or 0
    size, fmt, seconds = (getattr(ns, name, None) for name in ("image_size", "image_format", "audio_seconds"))
    if (size is not None or fmt is not None) and not images:
        raise ConfigError("--image-size and --image-format shape the synthetic images of --images N")
    if images and ns.api != "chat":
        raise ConfigError("--images needs --api chat (images travel as image_url content parts of a chat message)")
    transcriptions = ns.api == "transcriptions"
    if seconds is not None and not transcriptions:
        raise ConfigError("--audio-seconds needs --api transcriptions")
    what = "--images" if images else "--api transcriptions" if transcriptions else None
    if what is not None:
        for dest, flag, unset in (("turns", "--turns", None), ("multi_turn", "--multi-turn", False),
                                  ("tools", "--tools", None), ("trace", "--trace", None)):
            if getattr(ns, dest, unset) != unset:
                raise ConfigError(f"{what} does not combine with {flag}")
    if transcriptions:
        if ns.dataset == SYNTHETIC:
            raise ConfigError("--api transcriptions uploads audio, not prompts of N tokens: leave out --dataset "
                              "synthetic (a dataset's rows may name audio files)")
        if ns.transport == "openai":
            raise ConfigError("--api transcriptions needs --transport fast or httpx (a multipart upload, its "
                              "stream timed chunk by chunk)")
    return {"images": images, "image_size": size or (512, 512), "image_format": fmt or "png",
            "audio_seconds": (seconds or DEFAULT_AUDIO_SECONDS) if transcriptions else None}
