"""``loadtest serve sim`` (also ``python -m loadtest.sim``): the deterministic test server in the
foreground; ``loadtest serve ENGINE``: start an engine and print its endpoint until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from loadtest.cli import argtypes, configs, options
from loadtest.errors import ConfigError
from loadtest.launch import ENGINES
from loadtest.sim.config import HOSTED, TRANSCRIPTION_DIALECTS, SimConfig


def add_parsers(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the test server (sim) or start an engine and print its endpoint",
                           description="Run the deterministic test server, or start an engine and leave it running.")
    serve_sub = serve.add_subparsers(dest="engine", required=True, metavar="ENGINE")
    sim = serve_sub.add_parser("sim", help="deterministic OpenAI-compatible test server",
                               description="Deterministic OpenAI-compatible streaming server for checking a "
                                           "load-testing client (docs/test-server.md).")
    sim_options(sim)
    # Internal: set by SimProcess so the server dies with its parent even if the parent is killed.
    sim.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    sim.set_defaults(run=serve_sim, own_signals=True)  # a server: Ctrl-C stops it, exit 0
    for engine in ENGINES:
        ep = serve_sub.add_parser(engine, help=f"start {engine} and print its endpoint until Ctrl-C")
        options.model(ep, "model path or id (default: the embedded SmolLM2 GGUF)")
        ep.add_argument("--log-dir", type=argtypes.input_path, default=Path("results") / "servers", help="where the engine log goes")
        options.launch(ep, engine_option=False)
        ep.set_defaults(run=serve_engine, own_signals=True)


def serve_sim(ns: argparse.Namespace) -> int:
    from loadtest.sim.process import announce
    from loadtest.sim.server import run as run_sim  # needs httptools: imported when it runs

    config = sim_config(ns)
    try:
        run_sim(config, announce=announce, exit_on_stdin_eof=ns.exit_on_stdin_eof)
    except OSError as exc:  # typically the port is taken
        raise ConfigError(f"test server: cannot listen on {config.host}:{config.port}: {exc}") from None
    except UnicodeError:  # the resolver's IDNA codec on 'bad..host'
        raise ConfigError(f"test server: --host {config.host!r} is not a host name or address") from None
    return 0


def serve_engine(ns: argparse.Namespace) -> int:
    from dataclasses import replace

    from loadtest.launch.launcher import launch

    spec = replace(configs.launch_spec(ns, ns.engine), log_dir=ns.log_dir)
    with launch(spec) as server:
        print(f"{ns.engine} ready at {server.base_url} (model name: {server.model_name}); Ctrl-C to stop", flush=True)
        print(f"launch command: {server.info['launch_command']['shell']}", flush=True)
        print(f"log: {server.info['log_path']}", flush=True)
        try:
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            signal.pause()
        except KeyboardInterrupt:
            print(f"\nstopping {ns.engine}", file=sys.stderr)
    return 0


def sim_options(parser: argparse.ArgumentParser) -> None:
    """The test server's flags; dests equal SimConfig field names so ``sim_config`` is mechanical."""
    d = SimConfig()
    g = parser.add_argument_group("simulated server")
    g.add_argument("--host", default=d.host, help="address to bind (default %(default)s)")
    g.add_argument("--port", type=argtypes.integer, default=8000, help="port to bind; 0 picks a free one (default %(default)s)")
    g.add_argument("--model", default=d.model, help="the one model name served (default %(default)s)")
    g.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 endpoints (also taken "
                                                   "as 'api-key: KEY' or, as /v1/messages wants it, 'x-api-key: KEY')")

    t = parser.add_argument_group("timing (absolute schedule: token i is due at receipt + ttft + i*tpot)")
    t.add_argument("--ttft-ms", type=float, default=d.ttft_ms, help="time to first token (default %(default)s)")
    t.add_argument("--tpot-ms", type=float, default=d.tpot_ms, help="delay per token after the first (default %(default)s)")
    t.add_argument("--jitter", type=float, default=d.jitter, metavar="SIGMA",
                   help="server noise: each reply's TTFT and TPOT times a seeded lognormal factor exp(N(0, SIGMA)), "
                        "median 1 (default 0: exact)")
    t.add_argument("--jitter-seed", type=argtypes.integer, default=d.jitter_seed, help="seed of --jitter's draws (default 0)")
    t.add_argument("--output-tokens", type=argtypes.integer, default=None,
                   help="tokens per reply, capped by max_tokens (default: the request's max_tokens, or 16)")
    t.add_argument("--max-concurrency", type=argtypes.integer, default=None,
                   help="replies generated at once; more wait for a slot, their clock starting then (default: no limit)")

    s = parser.add_argument_group("stream shape")
    s.add_argument("--tokens-per-chunk", type=argtypes.integer, default=d.tokens_per_chunk, help="tokens per SSE content chunk")
    s.add_argument("--empty-chunks", action="store_true", help='follow every content chunk with a {"content":""} chunk')
    s.add_argument("--role-chunk", action=argparse.BooleanOptionalAction, default=d.role_chunk,
                   help="send a role-only chunk immediately on receipt (chat)")
    s.add_argument("--reasoning-tokens", type=argtypes.integer, default=d.reasoning_tokens,
                   help="the first N tokens go to delta.reasoning_content (chat)")
    s.add_argument("--usage", action=argparse.BooleanOptionalAction, default=d.usage,
                   help="report usage (final chunk when stream_options.include_usage; non-stream body)")
    s.add_argument("--usage-always", action="store_true",
                   help="streams end with a usage chunk even when stream_options.include_usage is not asked "
                        "(as transformers serve <= 5.23; by default only when asked, as OpenAI and vLLM)")
    s.add_argument("--usage-per-chunk", action="store_true", help="every content chunk carries cumulative usage")
    s.add_argument("--chunk-tokens-max", type=argtypes.integer, default=None,
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
    s.add_argument("--log-header", default=None, metavar="NAME",
                   help="with --log-chunks: log this request header's value (e.g. a session id) in each line")
    s.add_argument("--replies-from-prompt", action="store_true",
                   help="reply words depend on the whole chat prompt (w<hash><i> instead of tok<i>), so replies "
                        "differ per conversation; with --log-chunks the word is logged")
    s.add_argument("--done", action=argparse.BooleanOptionalAction, default=d.done, help="end streams with data: [DONE]")
    s.add_argument("--crlf", action="store_true", help="use CRLF line endings in SSE")

    f = parser.add_argument_group("failures (--fail-every N applies the chosen one to every Nth request only)")
    f.add_argument("--reject-stream-options", action="store_true", help="answer 400 to any request with stream_options")
    f.add_argument("--fail-status", type=argtypes.integer, default=None, help="answer generation requests with this HTTP status")
    f.add_argument("--fail-every", type=argtypes.integer, default=None, help="only every Nth generation request fails")
    f.add_argument("--disconnect-after-tokens", type=argtypes.integer, default=None, help="drop the connection after N tokens")
    f.add_argument("--stream-error-after-tokens", type=argtypes.integer, default=None,
                   help="after N tokens send an SSE error event, then end the stream")
    f.add_argument("--malformed-after-tokens", type=argtypes.integer, default=None,
                   help="after N tokens send an unparsable data line, then end the stream")
    p = parser.add_argument_group("prompt side")
    p.add_argument("--prompt-tokenizer", default=None,
                   help="count prompt tokens with this tokenizer (as loadtest --tokenizer) instead of whitespace words")
    p.add_argument("--template-tokens", type=argtypes.integer, default=0,
                   help="chat requests: tokens a chat template adds; embeddings and rerank: tokens added to each "
                        "input or (query, document) pair")
    p.add_argument("--prefill-tokens-per-s", type=float, default=None,
                   help="prompt processing speed: the first token is delayed by prompt tokens / this")
    p.add_argument("--n-ctx", type=argtypes.integer, default=None,
                   help="context size: served by GET /props; prompt + max_tokens beyond it is refused (400)")
    p.add_argument("--timings", action="store_true",
                   help="llama.cpp-style timings (prompt_per_second, predicted_per_second) on the usage chunk")
    p.add_argument("--prefix-cache-tokens", type=argtypes.integer, default=None, metavar="N",
                   help="a prefix cache of N tokens (LRU over whole blocks of the prompt's tokens): cached tokens "
                        "skip prefill and are reported in usage, timings and /metrics (default: off)")
    p.add_argument("--prefix-block-tokens", type=argtypes.integer, default=d.prefix_block_tokens, metavar="B",
                   help="the prefix cache's block size: only whole blocks of a shared prefix hit (default %(default)s)")


    tc = parser.add_argument_group("tool calls (docs/test-server.md \"Tool calls\")")
    tc.add_argument("--tool-call-rounds", type=argtypes.integer, default=d.tool_call_rounds, metavar="R",
                    help="a request offering tools gets tool calls instead of text in its first R replies after a "
                         "user message (finish_reason tool_calls; default 0: never)")
    tc.add_argument("--tool-calls-per-round", type=argtypes.integer, default=d.tool_calls_per_round, metavar="M",
                    help="tool calls per such reply, seeded JSON arguments streamed in pieces (default 1)")

    m = parser.add_argument_group("server-side metrics (GET /metrics, Prometheus text; docs/test-server.md)")
    m.add_argument("--metrics", type=_names, default=d.metrics, metavar="NAMES",
                   help="families GET /metrics serves, a comma list of vllm, llamacpp, dcgm (default: none, "
                        "/metrics answers 404)")
    m.add_argument("--kv-cache-tokens", type=argtypes.integer, default=d.kv_cache_tokens, metavar="N",
                   help="KV-cache capacity: usage = (prompt + generated tokens of running requests) / N "
                        "(default %(default)s)")
    m.add_argument("--keep-generating-on-disconnect", action="store_true",
                   help="a request whose client went away keeps its slot and KV and generates to its end, "
                        "queued ones still run (an engine bug); default: aborted at once")
    m.add_argument("--metrics-delay-ms", type=float, default=d.metrics_delay_ms, metavar="MS",
                   help="each /metrics answer waits MS first; generation goes on meanwhile")
    m.add_argument("--metrics-malformed", action="store_true",
                   help="/metrics answers 200 with a page the Prometheus text parser rejects")
    m.add_argument("--metrics-extra-series", type=argtypes.integer, default=d.metrics_extra_series, metavar="N",
                   help="N extra gauge series on the page, to make it large")

    e = parser.add_argument_group("embeddings and rerank (POST /v1/embeddings, /v1/rerank, /v2/rerank)")
    e.add_argument("--embedding-dim", type=argtypes.integer, default=d.embedding_dim, metavar="N",
                   help="floats per embedding, seeded from the input (a request's dimensions overrides it; "
                        "default %(default)s); latency: --ttft-ms + prompt tokens / --prefill-tokens-per-s")
    e.add_argument("--embeddings", action=argparse.BooleanOptionalAction, default=d.embeddings,
                   help="serve them (--no-embeddings: answer 501 as llama.cpp started without --embeddings)")
    a = parser.add_argument_group("images and audio (docs/test-server.md \"Images and audio\")")
    a.add_argument("--image-tokens", type=argtypes.integer, default=d.image_tokens, metavar="N",
                   help="prompt tokens charged per image part of a chat request: in usage (prompt_tokens_details."
                        "image_tokens), in the prefill time and in --log-chunks (default %(default)s)")
    a.add_argument("--audio-tokens-per-s", type=float, default=d.audio_tokens_per_s, metavar="T",
                   help="a transcription's prompt tokens per second of its WAV: its prefill at "
                        "--prefill-tokens-per-s (default %(default)s, as Whisper's encoder)")
    a.add_argument("--transcript-words-per-s", type=float, default=d.transcript_words_per_s, metavar="W",
                   help="transcript words (one token each) per second of audio (default %(default)s)")
    a.add_argument("--transcription-dialect", choices=TRANSCRIPTION_DIALECTS, default=d.transcription_dialect,
                   help="POST /v1/audio/transcriptions answers as vLLM (chat-shaped chunks, duration usage), as "
                        "OpenAI (transcript.text.* events, token usage), or not at all (404) (default %(default)s)")

    h = parser.add_argument_group("hosted API (--hosted: key sk-sim unless --api-key, 600 RPM, 200k TPM, "
                                  "SSE comments, choices:[] chunks, max_tokens rejected, 8 reasoning tokens)")
    h.add_argument("--hosted", action="store_true", help="behave like a hosted API (the mix above)")
    h.add_argument("--rpm-limit", type=argtypes.integer, default=None, metavar="N", help="answer 429 past N requests per minute")
    h.add_argument("--tpm-limit", type=argtypes.integer, default=None, metavar="N",
                   help="answer 429 past N tokens per minute (prompt words + max tokens)")
    h.add_argument("--rate-limit-every", type=argtypes.integer, default=None, metavar="N", help="answer 429 to every Nth generation request")
    h.add_argument("--retry-after-s", type=float, default=None, metavar="S",
                   help="Retry-After sent with a 429 (default: the time until the limit allows; 1 s for --rate-limit-every)")
    h.add_argument("--sse-comments", action="store_true", help="send ': keep-alive' / ': PROCESSING' comment lines")
    h.add_argument("--empty-choices-chunks", action="store_true",
                   help='open each stream with a "choices": [] chunk (as Azure does)')
    h.add_argument("--data-no-space", action="store_true", help="write 'data:{...}' without the space")
    h.add_argument("--reject-max-tokens", action="store_true",
                   help="answer 400 to max_tokens (chat): only max_completion_tokens is accepted, as o-series models")
    h.add_argument("--overload-every", type=argtypes.integer, default=None, metavar="N",
                   help="/v1/messages: answer 529 overloaded_error to every Nth valid request (with Retry-After "
                        "when --retry-after-s is given), as Anthropic's API does when overloaded")


def _names(text: str) -> tuple[str, ...]:
    """A comma list as a tuple; SimConfig says which names are allowed."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def sim_config(ns: argparse.Namespace) -> SimConfig:
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
