"""``aiperf profile`` (and genai-perf) as loadtest options (cli/foreign.py)."""

from __future__ import annotations

import json
from typing import Any

from loadtest.cli.foreign import Conversion, Options, as_float, as_int, leftover, ms_objectives, one

AIPERF_FLAGS = {"streaming", "use-server-token-count", "tokenizer-trust-remote-code", "verbose", "extra-verbose"}
AIPERF_SHORT = {"-m": "--model", "-u": "--url", "-H": "--header", "-v": "--verbose"}
_AIPERF_WHY = {"tokenizer": "AIPerf counts tokens with it on the client; loadtest takes the server's usage and "
                            "counts synthetic prompts with the server's /tokenize",
               "artifact-dir": "loadtest writes its results to --output DIR",
               "num-prompts": "loadtest samples its prompts in seeded order from the dataset",
               "num-dataset-entries": "loadtest samples its prompts in seeded order from the dataset",
               "api-key": "never written to a scenario file: set $OPENAI_API_KEY or api-key-env",
               "output-tokens-stddev": "loadtest asks one max-tokens of every request",
               "ui": "no effect", "ui-type": "no effect",
               "use-server-token-count": "loadtest always uses the server's usage"}


def aiperf(opts: Options) -> Conversion:
    c = Conversion("aiperf profile")
    handled = {"model", "url", "endpoint-type", "streaming", "concurrency", "request-rate", "request-rate-mode",
               "request-count", "num-requests", "benchmark-duration", "synthetic-input-tokens-mean",
               "synthetic-input-tokens-stddev", "output-tokens-mean", "warmup-request-count", "random-seed",
               "extra-inputs", "goodput", "header", "input-file"}
    url = one(opts, "url", "localhost:8000") or ""
    c.keys["endpoint"] = url if "://" in url else "http://" + url
    if one(opts, "model"):
        c.keys["model"] = one(opts, "model")
    kind = one(opts, "endpoint-type", "chat")
    if kind in ("chat", "completions"):
        c.keys["api"] = kind
    else:
        c.note(f"--endpoint-type {kind}: not a loadtest API here; chat kept")
    if "streaming" not in opts:
        c.keys["no-stream"] = True
        c.note("AIPerf streams only with --streaming: without it neither does loadtest (TTFT not measured)")
    rate, conc = as_float(one(opts, "request-rate")), as_int(one(opts, "concurrency"))
    if rate is not None:
        c.keys["request-rate"] = rate
        mode = one(opts, "request-rate-mode")
        if mode == "constant":
            c.keys["arrival"] = "constant"
        elif mode is None:
            c.note("AIPerf's arrival pattern is taken as Poisson (--request-rate-mode to say)")
        if conc is not None:
            c.keys["max-concurrency"] = conc
    else:
        c.keys["concurrency"] = conc or 1
    count, seconds = as_int(one(opts, "request-count") or one(opts, "num-requests")), as_float(one(opts, "benchmark-duration"))
    if seconds is not None:
        c.keys["duration"] = seconds
    elif count is not None:
        c.keys["num-prompts"] = count
    if one(opts, "input-file"):
        c.keys["dataset"] = one(opts, "input-file")
        c.note("--input-file: loadtest reads JSONL/JSON/Parquet files in the LIMA, ShareGPT, messages or prompt schema")
    else:
        c.keys["dataset"] = "synthetic"
        c.keys["prompt-tokens"] = as_int(one(opts, "synthetic-input-tokens-mean", "550"))
        if "synthetic-input-tokens-mean" not in opts:
            c.note("AIPerf's default synthetic prompt is 550 tokens: prompt-tokens = 550")
        stddev = as_float(one(opts, "synthetic-input-tokens-stddev"))
        if stddev:
            c.keys["prompt-tokens-stddev"] = stddev
    if one(opts, "output-tokens-mean"):
        c.keys["max-tokens"] = as_int(one(opts, "output-tokens-mean"))
    if one(opts, "warmup-request-count"):
        c.keys["warmup"] = as_int(one(opts, "warmup-request-count"))
    if one(opts, "random-seed") is not None:
        c.keys["seed"] = as_int(one(opts, "random-seed"))
    _aiperf_extra(opts.get("extra-inputs", []), c)
    if opts.get("goodput"):
        ms_objectives(opts["goodput"], {"time_to_first_token": "ttft", "inter_token_latency": "tpot",
                                         "request_latency": "e2e"}, ":", c, "--goodput")
    if opts.get("header"):
        c.keys["header"] = [h.replace(":", ": ", 1) if ": " not in h else h for h in opts["header"]]
    c.note("AIPerf's inter_token_latency is per request (e2e - TTFT) / (tokens - 1): loadtest's tpot_s")
    leftover(opts, handled, c, _AIPERF_WHY)
    return c


def _aiperf_extra(items: list[str], c: Conversion) -> None:
    extra: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition(":")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key == "ignore_eos":
            c.keys["ignore-eos"] = bool(value)
        elif key in ("max_tokens", "max_completion_tokens") and isinstance(value, int):
            c.keys["max-tokens"] = value
        elif key in ("temperature", "top_p") and isinstance(value, (int, float)):
            c.keys[key.replace("_", "-")] = float(value)
        else:
            extra[key] = value
    if extra:
        c.keys["extra-body"] = json.dumps(extra)
