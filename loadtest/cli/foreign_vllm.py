"""``vllm bench serve`` (and benchmarks/benchmark_serving.py) as loadtest options (cli/foreign.py)."""

from __future__ import annotations

import json
import math

from loadtest.cli.foreign import Conversion, Options, as_float, as_int, leftover, ms_objectives, number, one

VLLM_FLAGS = {"ignore-eos", "save-result", "save-detailed", "append-result", "disable-tqdm", "profile", "insecure",
              "use-beam-search", "trust-remote-code", "skip-tokenizer-init", "plot-timeline", "plot-dataset-stats",
              "self-timed", "no-self-timed", "disable-shuffle", "no-oversample"}
_VLLM_SAMPLING = ("top-k", "min-p", "frequency-penalty", "presence-penalty", "repetition-penalty")
_VLLM_WHY = {"save-result": "loadtest always writes its results (--output DIR)",
             "result-dir": "loadtest writes its results to --output DIR", "result-filename": "see --output DIR",
             "save-detailed": "requests.jsonl always has every request", "disable-tqdm": "no effect (see --quiet)",
             "percentile-metrics": "loadtest reports mean, p50, p90, p95, p99 of every metric",
             "metric-percentiles": "loadtest reports mean, p50, p90, p95, p99 of every metric",
             "ramp-up-strategy": "vLLM's per-request rate ramp has no equivalent (loadtest's --ramp-up rises "
                                 "linearly to the rate over seconds); left out",
             "tokenizer": "vLLM counts prompt lengths with it on the client; loadtest counts synthetic prompts with "
                          "the server's own /tokenize (--tokenizer only where the server has none)",
             "label": "a name for vLLM's result file; left out", "metadata": "left out"}


def vllm(opts: Options) -> Conversion:
    c = Conversion("vllm bench serve")
    handled = {"backend", "endpoint", "base-url", "host", "port", "model", "served-model-name", "dataset-name",
               "dataset-path", "input-len", "output-len", "random-input-len", "random-output-len",
               "random-range-ratio", "random-prefix-len", "sharegpt-output-len", "num-prompts", "request-rate",
               "burstiness", "max-concurrency", "num-warmups", "ignore-eos", "temperature", "top-p", "extra-body",
               "goodput", "header", "insecure", "seed", *_VLLM_SAMPLING}
    base = one(opts, "base-url") or f"http://{one(opts, 'host', '127.0.0.1')}:{one(opts, 'port', '8000')}"
    path = one(opts, "endpoint", "/v1/completions") or ""
    url = base.rstrip("/") + path  # what vLLM posts to; loadtest's endpoint is the base URL below the API path
    backend = one(opts, "backend", "openai")
    for suffix, api in (("/chat/completions", "chat"), ("/completions", "completions")):
        if url.endswith(suffix):
            c.keys["endpoint"], c.keys["api"] = url[: -len(suffix)], api
            break
    else:
        c.keys["endpoint"] = base
        c.note(f"--endpoint {path}: loadtest sends /chat/completions, /completions or /responses; chat kept")
    if backend not in ("openai", "openai-chat", "vllm"):
        c.note(f"--backend {backend}: translated as an OpenAI-compatible server")
    model = one(opts, "served-model-name") or one(opts, "model")
    if model:
        c.keys["model"] = model
    _vllm_dataset(opts, c)
    num = as_int(one(opts, "num-prompts", "1000"))
    c.keys["num-prompts"] = num
    rate = one(opts, "request-rate", "inf") or "inf"
    c.keys["request-rate"] = "inf" if math.isinf(float(rate)) else float(rate)
    burst = as_float(one(opts, "burstiness"))
    if burst is not None and burst != 1.0 and c.keys["request-rate"] != "inf":
        c.keys.update({"arrival": "gamma", "burstiness": burst})
    if one(opts, "max-concurrency") is not None:
        c.keys["max-concurrency"] = as_int(one(opts, "max-concurrency"))
    if "request-rate" not in opts:
        c.note("vLLM's default --request-rate is inf: every request starts at once (request-rate = inf here)"
               + ("; with --max-concurrency the rest wait for a slot, and that wait is kept out of TTFT by both "
                  "(loadtest records it as queue_s)" if "max-concurrency" in opts else ""))
    warm = as_int(one(opts, "num-warmups"))
    if warm:
        c.keys["warmup"] = warm
    if "ignore-eos" in opts:
        c.keys["ignore-eos"] = True
    for name in ("temperature", "top-p"):
        if one(opts, name) is not None:
            c.keys[name] = float(one(opts, name))  # type: ignore[arg-type]
    if "temperature" not in opts:
        c.note("vLLM sends no temperature unless given (the server's default): neither does loadtest")
    extra = json.loads(one(opts, "extra-body") or "{}")
    extra.update({k.replace("-", "_"): number(v) for k in _VLLM_SAMPLING if (v := one(opts, k)) is not None})
    if extra:
        c.keys["extra-body"] = json.dumps(extra)
    if opts.get("goodput"):
        ms_objectives(opts["goodput"], {"ttft": "ttft", "tpot": "tpot", "e2el": "e2e"}, ":", c, "--goodput")
    if opts.get("header"):
        c.keys["header"] = [f"{k}: {v}" for k, _, v in (h.partition("=") for h in opts["header"])]
    if "insecure" in opts:
        c.keys["insecure"] = True
    if one(opts, "seed") is not None:
        c.keys["seed"] = as_int(one(opts, "seed"))
    c.note("vLLM's ITL is one sample per chunk (loadtest's itl_chunk_s); loadtest's itl_s shares a chunk's gap over "
           "its tokens. TPOT and TTFT are defined alike; loadtest's TTFT ends only at a chunk with text")
    leftover(opts, handled, c, _VLLM_WHY)
    return c


def _vllm_dataset(opts: Options, c: Conversion) -> None:
    name = one(opts, "dataset-name", "random")
    out_len = one(opts, "output-len")
    if name == "random":
        prefix = as_int(one(opts, "random-prefix-len", "0")) or 0
        inputs = as_int(one(opts, "input-len") or one(opts, "random-input-len", "1024")) or 1024
        outputs = as_int(out_len or one(opts, "random-output-len", "128"))
        ratio = as_float(one(opts, "random-range-ratio", "0")) or 0.0
        c.keys.update({"dataset": "synthetic", "prompt-tokens": inputs + prefix, "max-tokens": outputs,
                       "ignore-eos": True})
        if prefix:
            c.keys["shared-prefix-tokens"] = prefix
        c.note("vLLM's random dataset counts --random-input-len without the tokenizer's special tokens and "
               "without the chat template; loadtest's prompt-tokens are the server's count of the user text")
        c.note("vLLM sends ignore_eos with the random dataset: so does loadtest (ignore-eos = true)")
        if ratio:
            c.keys["prompt-tokens-stddev"] = round(inputs * ratio / math.sqrt(3), 1)
            c.note(f"--random-range-ratio {ratio:g}: vLLM draws lengths uniformly within +/-{ratio:.0%}; loadtest "
                   "draws prompt lengths from a normal law of the same standard deviation, and asks every request "
                   "the same max-tokens (vLLM varies the output length too)")
        return
    path = one(opts, "dataset-path")
    if name in ("sharegpt", "custom") and path:
        c.keys["dataset"] = path
        c.note(f"--dataset-name {name}: loadtest sends each row's first user turn, as vLLM does")
    else:
        c.note(f"--dataset-name {name}: no loadtest equivalent (loadtest reads JSONL/JSON/Parquet files, the "
               "builtin prompts and synthetic ones); the builtin prompts are used")
    length = out_len or one(opts, "sharegpt-output-len")
    if length:
        c.keys["max-tokens"] = as_int(length)
    else:
        c.note("vLLM asks each ShareGPT row's recorded reply length; loadtest asks max-tokens (256) of every prompt")
