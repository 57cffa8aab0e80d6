"""Every option group, defined once; each command picks the groups it takes (cli/<command>.py), and
cli/configs.py turns the parsed options into the config objects domain code takes. Nothing here
imports more than argparse and light modules, so that ``loadtest X --help`` stays cheap."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.cli import argtypes, workloads
from loadtest.client import AZURE_API_VERSION
from loadtest.launch import ENGINES
from loadtest.scheduler import ARRIVALS

APIS = ("chat", "completions", "responses", "messages", "embeddings", "rerank", "transcriptions")
TRANSPORTS = ("fast", "httpx", "openai")
SYNTHETIC = "synthetic"


# -- where the requests go, and who the client says it is --------------------------------------------
def endpoint(p: argparse.ArgumentParser, *, required: bool = False, timeout_s: float | None = 600.0,
             limits: bool = True) -> None:
    """--endpoint, --model, --api-key, --transport, --timeout, and the hosted-API group (auth,
    Azure, TLS; with ``limits`` the retry and budget options, which only a run has)."""
    p.add_argument("--endpoint", required=required,
                   help="OpenAI base URL, e.g. http://127.0.0.1:8080/v1 (/v1 added to a bare host)")
    model(p, "model name to send (default: the first one /v1/models lists)")
    p.add_argument("--api-key", help="the API key (default: $OPENAI_API_KEY; with --api messages $ANTHROPIC_API_KEY)")
    p.add_argument("--transport", choices=TRANSPORTS, default="fast",
                   help="HTTP client: fast (asyncio + httptools, default), httpx, or openai (the official SDK)")
    if timeout_s is not None:
        timeout(p, timeout_s)
    g = p.add_argument_group("hosted APIs (auth, Azure" + (", rate limits, retries)" if limits else ")"))
    g.add_argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    g.add_argument("--header", dest="headers", action="append", type=argtypes.header, default=[], metavar="'K: V'",
                   help="extra request header (repeatable); values of auth-like names are redacted")
    g.add_argument("--azure", action="store_true",
                   help="Azure OpenAI: api-key header and api-version query (detected from *.openai.azure.com)")
    g.add_argument("--api-version", help=f"Azure api-version query (default: the URL's, else {AZURE_API_VERSION} "
                                         "for a deployment URL)")
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (self-signed gateways)")
    if not limits:
        p.set_defaults(max_retries=0, rpm_limit=None, tpm_limit=None)
        return
    g.add_argument("--max-retries", type=argtypes.integer, default=5, metavar="N",
                   help="retries of a rate-limited request (429, or 503 with Retry-After); default 5")
    g.add_argument("--no-retry", dest="max_retries", action="store_const", const=0,
                   help="record a 429 as a failed request (same as --max-retries 0)")
    g.add_argument("--rpm-limit", type=float, metavar="N",
                   help="send at most N requests in any 60 s, paced one per 60/N s (client-side)")
    g.add_argument("--tpm-limit", type=float, metavar="N",
                   help="send at most N tokens in any 60 s, paced, a request costing its prompt tokens + max tokens "
                        "(client-side; refused when one request costs more)")


def model(p: Any, help_text: str) -> None:
    """--model: the name to send, and with --launch (or ``serve ENGINE``) the model to start."""
    p.add_argument("--model", help=help_text)


def timeout(p: Any, default_s: float) -> None:
    p.add_argument("--timeout", type=argtypes.positive_float, default=default_s,
                   help=f"per-request timeout in seconds (default {default_s:g})")


# -- what each request asks -------------------------------------------------------------------------
def api(p: Any, *, choices: tuple[str, ...] = APIS, default: str = "chat") -> None:
    helps = {"chat": "/chat/completions", "completions": "/completions (the raw prompt, no chat template)",
             "responses": "/responses (the Responses API)", "embeddings": "/embeddings (--batch-size inputs each)",
             "rerank": "/rerank (one query, --documents each; --endpoint .../v2 for /v2/rerank)",
             "transcriptions": "/audio/transcriptions (speech to text: an audio upload per request, docs/media.md)",
             "messages": "/messages (Anthropic's Messages API)"}
    p.add_argument("--api", choices=choices, default=default,
                   help=", ".join(helps[c] for c in choices) + f" (default {default})")


def prompt_source(p: Any, *, dataset: bool = True) -> None:
    """--dataset, --seed, --tokenizer."""
    if dataset:
        p.add_argument("--dataset", default="builtin",
                       help="builtin (default), lima, synthetic (--prompt-tokens), or a JSONL/JSON/Parquet file")
    p.add_argument("--seed", type=argtypes.integer, default=0, help="prompt sampling seed (default 0)")
    p.add_argument("--tokenizer", help="count tokens when the server sends no usage (and, for synthetic prompts, when "
                                       "it has no /tokenize): a local HF tokenizer dir or a tiktoken encoding "
                                       "(cl100k_base works offline), or 'model': the --model's encoding (o200k_base "
                                       "for GPT-4o and later, else cl100k_base)")


def sampling(p: Any, *, max_tokens: int = 256) -> None:
    """--max-tokens, --temperature, --top-p, --extra-body."""
    p.add_argument("--max-tokens", type=argtypes.positive_int, default=max_tokens,
                   help=f"max_tokens per request (default {max_tokens})")
    p.add_argument("--temperature", type=argtypes.finite_float, help="sent only when given")
    p.add_argument("--top-p", type=argtypes.finite_float, help="sent only when given")
    p.add_argument("--extra-body", default="{}", help="JSON object merged into every request body")


def ignore_eos(p: Any, *, default: bool = False) -> None:
    """--ignore-eos, or --no-ignore-eos where sending it is the default (the tokens command)."""
    if default:
        p.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                       help="do not send ignore_eos (for servers that refuse it; generation may then stop early)")
    else:
        p.add_argument("--ignore-eos", action="store_true", help="send ignore_eos=true (vLLM, llama.cpp accept it)")


def warmup(p: Any, *, default: int = 0, timed: bool = True) -> None:
    p.add_argument("--warmup", type=argtypes.warmup if timed else argtypes.non_negative_int, default=default,
                   help="requests sent first and left out of the statistics" + (
                       " (10), or a time with --duration (5s)" if timed else f" (default {default})"))


def streaming(p: Any) -> None:
    p.add_argument("--no-stream", dest="stream", action="store_false",
                   help="non-streaming requests (TTFT then not measured)")
    p.add_argument("--no-preconnect", dest="preconnect", action="store_false",
                   help="do not open keep-alive connections before the measured window")


def abandonment(p: argparse.ArgumentParser) -> None:
    """--cancel-rate, --cancel-after: users who close the tab (loadtest/client/abandon.py)."""
    g = p.add_argument_group("abandoned requests (users who close the tab)")
    g.add_argument("--cancel-rate", type=argtypes.probability, metavar="P",
                   help="abandon a seeded share P (0..1) of the requests: the client closes the connection, the "
                        "server sees a disconnect; recorded as 'abandoned', outside every statistic")
    g.add_argument("--cancel-after", type=argtypes.seconds, metavar="S",
                   help="with --cancel-rate: let go S seconds after the request was sent (default 0: at once, "
                        "during prefill; e.g. 2s: mid-decode)")


def synthetic(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("synthetic prompts (--dataset synthetic)")
    g.add_argument("--prompt-tokens", type=argtypes.integer, help="prompt length in tokens of the served model's tokenizer")
    g.add_argument("--prompt-tokens-stddev", type=float, default=0.0,
                   help="vary the length per prompt (normal, seeded; default 0: every prompt exactly --prompt-tokens)")
    g.add_argument("--shared-prefix-tokens", type=argtypes.integer, default=0,
                   help="K leading tokens shared by every prompt (default 0: each prompt starts differently)")


def prefix_caching(p: argparse.ArgumentParser) -> None:
    """--prefix-groups, --cache-bust: prompts for measuring a server's prefix cache."""
    g = p.add_argument_group("prefix caching (--dataset synthetic; docs/prefill-decode.md)")
    g.add_argument("--prefix-groups", type=argtypes.integer, metavar="G",
                   help="with --shared-prefix-tokens K: G groups of prompts, K leading tokens shared within a "
                        "group and different between groups from the first token (prompt i in group i %% G)")
    g.add_argument("--cache-bust", action="store_true",
                   help="a unique first token in every prompt, so no prefix cache can hit (the no-cache baseline)")


# -- how much, and how the load is shaped ----------------------------------------------------------
def amount(p: argparse.ArgumentParser, *, num_help: str, num_default: int | None = None,
           duration: bool = True) -> None:
    """--num-prompts, or (mutually exclusive) --duration."""
    g = p.add_mutually_exclusive_group() if duration else p
    g.add_argument("--num-prompts", type=argtypes.positive_int, default=num_default, help=num_help)
    if duration:
        g.add_argument("--duration", type=argtypes.duration, help="measure for this many seconds instead")


def load(p: argparse.ArgumentParser, *, command: str) -> None:
    g = p.add_argument_group("load shape (open loop: requests start at a rate, whatever is in flight)")
    if command == "throughput":
        g.add_argument("--request-rate", type=argtypes.rate, metavar="R",
                       help="requests/s (inf: all at once); replaces --concurrency's closed loop")
    g.add_argument("--arrival", choices=ARRIVALS, default="poisson",
                   help="gaps between starts under --request-rate: poisson (default), constant, gamma")
    g.add_argument("--burstiness", type=argtypes.positive_float, default=1.0,
                   help="gamma shape k, the rate kept (vLLM's): CV = 1/sqrt(k); 1 = Poisson, < 1 burstier")
    g.add_argument("--max-concurrency", type=argtypes.positive_int, metavar="N",
                   help="cap on requests in flight under --request-rate; a request waiting for a slot records queue_s; "
                        "at most max(N, 1 s of the rate, 10,000) wait, starts beyond are dropped and counted "
                        "(--request-rate inf: all at once up to N, none dropped)")
    g.add_argument("--ramp-up", type=argtypes.seconds, default=0.0, metavar="S",
                   help="rise linearly to the rate (or concurrency) over S seconds")
    g.add_argument("--cooldown", type=argtypes.seconds, default=0.0, metavar="S",
                   help="with --duration: keep the load S more seconds, requests started then left out")
    g.add_argument("--slo", action="append", metavar="SPEC",
                   help="objective, repeatable or comma-separated: ttft=0.5 (per request, seconds), tpot=50ms, "
                        "ttft:p99=0.5 (run-level); adds goodput to the summary")
    g.add_argument("--slo-attainment", type=argtypes.fraction, default=0.9, metavar="F",
                   help="share of requests that must meet the per-request objectives (default 0.9)")
    g.add_argument("--allow-client-bound", action="store_true",
                   help="sweep: go on when the verdict says the client limited the load (a run only reports it)")
    if command == "sweep":
        g.add_argument("--no-early-stop", action="store_true", help="run every level, even past saturation")


def levels(p: argparse.ArgumentParser, *, command: str) -> None:
    """The load levels of sweep (--concurrency LIST | --request-rate LIST|auto) or capacity (--by),
    and how long each level runs."""
    g = p.add_mutually_exclusive_group(required=command == "sweep")
    if command == "sweep":
        g.add_argument("--concurrency", metavar="LIST", help="closed-loop levels, e.g. 1,2,4,8,16,32")
        g.add_argument("--request-rate", metavar="LIST", help="open-loop levels in requests/s, e.g. 1,2,4,8, or auto")
    else:
        g.add_argument("--by", choices=("rate", "concurrency"), default="rate",
                       help="search over the request rate (open loop, default) or the concurrency")
    amount(p, num_help="measured requests per level (default: max(100, 4 x level); rate levels: 10 s worth, "
                       "at least 50)")
    p.add_argument("--max-error-rate", type=argtypes.fraction, default=0.05, metavar="F",
                   help="a level whose failed share exceeds F counts as failing (default 0.05)")


def workers(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out (docs/scale-out.md)")
    g.add_argument("--workers", type=argtypes.worker_count, default=1, metavar="N|auto",
                   help="split the run over N client processes (auto: cores - 1); statistics from all records")
    g.add_argument("--on-worker-failure", choices=("stop", "continue"), default="stop",
                   help="when a worker dies: stop the run cleanly with a summary (default) or go on without it")
    g.add_argument("--ray-address", type=argtypes.ray_address, metavar="auto|ray://HOST:PORT",
                   help="run the workers as Ray actors on this cluster (needs loadtest[ray])")


def repeat(p: argparse.ArgumentParser, *, command: str) -> None:
    """--repeat, --vary-seed, --until-ci, --ci-metric (single, throughput, sweep: series/repeat.py)."""
    each = " at each level" if command == "sweep" else ""
    g = p.add_argument_group("repeats with confidence (docs/repeats.md)")
    g.add_argument("--repeat", type=argtypes.positive_int, metavar="N",
                   help=f"run N identical times{each} into DIR/rep-1..N, plus one summary: per metric the mean over "
                        "runs, its 95%% confidence interval (Student t) and CV; per-request statistics pooled")
    g.add_argument("--vary-seed", action="store_true",
                   help="with --repeat: rep k runs with --seed + k - 1 (a new sample of prompts and arrivals each "
                        "time) instead of identical runs")
    g.add_argument("--until-ci", type=argtypes.positive_float, metavar="PCT",
                   help="with --repeat N: stop once the 95%% interval of --ci-metric is narrower than +/- PCT%% of "
                        "its mean (after 3 runs at least, N at most); the summary says whether it converged")
    g.add_argument("--ci-metric", metavar="NAME",
                   help="the metric --until-ci watches (default output_tokens_per_s; e.g. requests_per_min, "
                        "ttft_s.p99 or ttft:p99)")


def scenario_output(p: argparse.ArgumentParser) -> None:
    """--output FILE and --overwrite of ``convert``: the scenario file it writes."""
    p.add_argument("--output", type=argtypes.output_file, metavar="FILE", help="write the scenario file here (default: stdout)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE when it exists")


# -- the server's side ------------------------------------------------------------------------------
def server_metrics(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server metrics (docs/server-metrics.md)")
    g.add_argument("--server-metrics", action="append", default=None, metavar="URL|auto",
                   help="a Prometheus /metrics to sample through the run (repeatable; replaces the default, "
                        "'auto': the endpoint's own /metrics, sampled when it answers)")
    g.add_argument("--server-metrics-interval", type=argtypes.sample_interval, default=1.0, metavar="S",
                   help="seconds between samples, 0.1 or more (default %(default)s)")
    g.add_argument("--no-server-metrics", action="store_true",
                   help="sample no /metrics and no GPU (NVML)")


# -- engines ---------------------------------------------------------------------------------------
def launch(p: argparse.ArgumentParser, *, engine_option: bool = True, port: bool = True,
           ctx_size: int | None = 2048) -> None:
    g = p.add_argument_group("engine launch (docs/engines.md)")
    if engine_option:
        g.add_argument("--launch", choices=ENGINES, metavar="ENGINE",
                       help=f"start this engine first ({', '.join(ENGINES)}), run against it, then stop it")
    g.add_argument("--threads", type=argtypes.positive_int, help="engine CPU threads (default: all cores)")
    g.add_argument("--slots", type=argtypes.positive_int, help="llama.cpp parallel slots (default 4)")
    g.add_argument("--ctx-size", type=argtypes.positive_int, default=ctx_size,
                   help="context per slot" + (f" (default {ctx_size})" if ctx_size else
                                              " (default: room for the longest scenario)"))
    g.add_argument("--gpu-layers", type=argtypes.integer, help="llama.cpp -ngl")
    g.add_argument("--dtype", help="transformers/vLLM dtype (e.g. float32, bfloat16)")
    g.add_argument("--attn-implementation", help="transformers attention implementation (eager, sdpa, ...)")
    g.add_argument("--compile", action="store_true", help="transformers: torch.compile the forward")
    g.add_argument("--tensor-parallel-size", type=argtypes.positive_int, help="vLLM")
    g.add_argument("--max-model-len", type=argtypes.positive_int, help="vLLM")
    g.add_argument("--gpu-memory-utilization", type=argtypes.finite_float, help="vLLM")
    if port:
        g.add_argument("--port", type=argtypes.integer, help="engine port (default: a free one)")
    g.add_argument("--ready-timeout", type=argtypes.positive_float,
                   help="seconds to wait for the engine to be ready (default: 60 + 30 per GB of weights; vLLM 300)")
    g.add_argument("--engine-arg", action="append", default=[], metavar="ARG",
                   help="extra argument passed to the engine verbatim (repeatable)")
    g.add_argument("--embeddings", action="store_true",
                   help="serve /v1/embeddings and /v1/rerank (llama.cpp --embeddings, vLLM --runner pooling); "
                        "implied by --api embeddings|rerank")
    g.add_argument("--pooling", choices=("mean", "cls", "last", "rank", "none"),
                   help="llama.cpp --pooling with --embeddings (default: rank for --api rerank, else mean)")


# -- where results go ------------------------------------------------------------------------------
def output(p: argparse.ArgumentParser, *, what: str = "results directory", required: bool = False,
           overwrite: bool = True, wandb: bool = False) -> None:
    """--output, --overwrite, --quiet (and --wandb where a command can log to it)."""
    p.add_argument("--output", type=argtypes.output_dir, required=required,
                   help=what + ("" if required else " (default results/<time>-<command>/)"))
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help="replace what --output already holds")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    if wandb:
        wandb_project(p)


def wandb_project(p: Any) -> None:
    p.add_argument("--wandb", type=argtypes.wandb_project, metavar="PROJECT", help="also log to Weights & Biases (needs wandb)")


def debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run_options(p: argparse.ArgumentParser, *, command: str, amount_options: Callable[[Any], None]) -> None:
    """The groups every run command takes (single, throughput, sweep, capacity), in --help's order;
    ``amount_options`` adds the command's own: how many requests, or the load levels."""
    endpoint(p)
    api(p)
    streaming(p)
    prompt_source(p)
    amount_options(p)
    sampling(p)
    ignore_eos(p)
    warmup(p)
    abandonment(p)
    output(p, wandb=command in ("single", "throughput"))
    debug(p)
    if command != "single":
        load(p, command=command)
    launch(p)
    synthetic(p)
    prefix_caching(p)
    workloads.pooling(p)
    workloads.media(p)
    server_metrics(p)
