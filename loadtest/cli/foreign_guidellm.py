"""``guidellm benchmark [run]`` as loadtest options (cli/foreign.py)."""

from __future__ import annotations

import json
import math
from typing import Any

from loadtest.cli.foreign import Conversion, Options, as_float, as_int, leftover, one

GUIDELLM_FLAGS = {"disable-console", "disable-console-outputs", "disable-console-interactive", "disable-progress",
                  "detect-saturation", "default-over-saturation"}
_GUIDELLM_WHY = {"processor": "GuideLLM counts tokens with it on the client; loadtest counts synthetic prompts with "
                              "the server's own /tokenize",
                 "output-path": "loadtest writes its results to --output DIR", "output-dir": "see --output DIR",
                 "outputs": "loadtest writes summary.json and requests.jsonl; `loadtest report` makes tables and HTML",
                 "backend": "loadtest speaks OpenAI-compatible HTTP", "scenario": "give the scenario's options instead"}


def guidellm(opts: Options) -> Conversion:
    c = Conversion("guidellm benchmark")
    handled = {"target", "model", "profile", "rate-type", "rate", "data", "max-seconds", "max-requests", "warmup",
               "warmup-percent", "cooldown", "cooldown-percent", "rampup", "random-seed", "request-type",
               "max-error-rate"}
    if one(opts, "target"):
        c.keys["endpoint"] = one(opts, "target")
    if one(opts, "model"):
        c.keys["model"] = one(opts, "model")
    profile = one(opts, "profile") or one(opts, "rate-type") or "sweep"
    rates = [float(r) for item in opts.get("rate", []) for r in item.split(",") if r.strip()]
    _guidellm_profile(profile, rates, c)
    _guidellm_data(opts.get("data", []), c)
    seconds, requests = as_float(one(opts, "max-seconds")), as_int(one(opts, "max-requests"))
    if c.command == "single" and seconds is not None:
        c.command, c.keys["concurrency"] = "throughput", 1
    key = "num-prompts"
    if seconds is not None:
        c.keys["duration"] = seconds
        key = "duration"
        if requests is not None:
            c.note("--max-requests with --max-seconds: GuideLLM stops at whichever comes first; loadtest measures "
                   "for the duration")
    elif requests is not None:
        c.keys["num-prompts"] = requests
    total = seconds if key == "duration" else requests
    for flag, alias, target in (("warmup", "warmup-percent", "warmup"), ("cooldown", "cooldown-percent", "cooldown")):
        value = as_float(one(opts, flag) or one(opts, alias))
        if value is None or value <= 0:
            continue
        amount = value * total if value < 1 and total else value
        if key == "duration":
            c.keys[target] = f"{amount:g}s"
        elif target == "warmup":
            c.keys[target] = math.ceil(amount)
        else:
            c.note(f"--{flag}: loadtest's cooldown is a time after --duration; left out")
            continue
        c.note(f"--{flag}: GuideLLM counts it inside --max-seconds/--max-requests; loadtest's comes "
               f"{'before' if target == 'warmup' else 'after'} the measured window")
    if one(opts, "rampup"):
        c.keys["ramp-up"] = float(one(opts, "rampup"))  # type: ignore[arg-type]
    if one(opts, "random-seed") is not None:
        c.keys["seed"] = as_int(one(opts, "random-seed"))
    request_type = one(opts, "request-type", "chat_completions")
    if request_type in ("chat_completions", "text_completions"):
        c.keys["api"] = "chat" if request_type == "chat_completions" else "completions"
    else:
        c.note(f"--request-type {request_type}: not a loadtest API; chat kept")
    if one(opts, "max-error-rate") and c.command == "sweep":
        c.keys["max-error-rate"] = float(one(opts, "max-error-rate"))  # type: ignore[arg-type]
    elif one(opts, "max-error-rate"):
        c.note("--max-error-rate: a run goes on whatever fails (a sweep stops at --max-error-rate)")
    c.note("GuideLLM's inter-token latency is per request (e2e - TTFT) / (tokens - 1): loadtest's tpot_s")
    leftover(opts, handled, c, _GUIDELLM_WHY)
    return c


def _guidellm_profile(profile: str, rates: list[float], c: Conversion) -> None:
    if profile == "synchronous":
        c.command = "single"  # (a throughput run at concurrency 1 when it is timed: single takes no --duration)
    elif profile == "throughput":
        c.keys["request-rate"] = "inf"
        c.note("--profile throughput: every request at once (request-rate = inf); GuideLLM caps it at its "
               "max concurrency setting")
    elif profile == "concurrent":
        levels = [int(r) for r in rates] or [1]
        if len(levels) > 1:
            c.command, c.keys["concurrency"] = "sweep", levels
        else:
            c.keys["concurrency"] = levels[0]
    elif profile in ("constant", "poisson", "async"):
        if profile != "async":
            c.keys["arrival"] = profile
        if len(rates) > 1:
            c.command, c.keys["request-rate"] = "sweep", ",".join(f"{r:g}" for r in rates)
            c.keys.pop("arrival", None)
            c.note(f"--profile {profile} with several rates: a sweep of those rates (Poisson arrivals)")
        else:
            c.keys["request-rate"] = rates[0] if rates else 1.0
    elif profile == "sweep":
        c.command, c.keys["request-rate"] = "sweep", "auto"
        if rates and rates[0] != 10:
            c.note(f"--rate {rates[0]:g} with sweep: loadtest's automatic sweep runs 10 rates between its two probes")
    else:
        c.note(f"--profile {profile}: no loadtest equivalent; a throughput run at concurrency 1")
        c.keys["concurrency"] = 1


def _guidellm_data(items: list[str], c: Conversion) -> None:
    for item in items:
        spec: dict[str, Any] | None = None
        text = item.strip()
        if text.startswith("{"):
            spec = json.loads(text)
        elif "=" in text and "/" not in text.split("=", 1)[0]:
            spec = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in text.split(","))}
        if spec is None:
            c.keys["dataset"] = text
            c.note(f"--data {text}: loadtest reads it as a JSONL/JSON/Parquet file (LIMA, ShareGPT, messages or "
                   "prompt schema); a Hugging Face dataset id is not fetched")
            continue
        c.keys["dataset"] = "synthetic"
        for key, value in spec.items():
            if key == "prompt_tokens":
                c.keys["prompt-tokens"] = int(float(value))
            elif key in ("prompt_tokens_stdev", "prompt_tokens_stddev"):
                c.keys["prompt-tokens-stddev"] = float(value)
            elif key == "output_tokens":
                c.keys.update({"max-tokens": int(float(value)), "ignore-eos": True})
                c.note("output_tokens: GuideLLM asks exactly that many (ignore_eos): so does loadtest")
            else:
                c.note(f"--data {key}={value}: not translated (loadtest asks one max-tokens of every request)")
