"""Command line: ``loadtest single``, ``loadtest throughput`` and ``loadtest serve``.

Errors meant for the user become one line on stderr and exit code 2; Ctrl-C stops gracefully
once (summary of what completed is written, exit 130) and at once the second time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from loadtest import __version__
from loadtest.launch import ENGINES
from loadtest.config import RunConfig
from loadtest.errors import ConfigError, LoadtestError
from loadtest.series.levels import add_level_arguments
from loadtest.cli.loadargs import add_load_arguments, load_fields, parse_warmup
from loadtest.cli import run as benchmark
from loadtest.cli.argtypes import finite_float as _finite_float, non_negative_int as _non_negative_int
from loadtest.cli.argtypes import positive_float as _positive_float, positive_int as _positive_int
from loadtest.cli.run import launch_spec, maybe_launch
from loadtest.run.output import default_output_dir, render_rows
from loadtest.redact import redact
from loadtest.transport import normalize_base_url



class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line that matters plus where to look, not a screen
    of usage first."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(2, f"loadtest: error: {message} (see {self.prog} --help)\n")


def _add_launch_args(p: argparse.ArgumentParser, *, required_engine: bool) -> None:
    g = p.add_argument_group("engine launch (see servers/README.md)")
    if not required_engine:
        g.add_argument("--launch", choices=ENGINES, metavar="ENGINE",
                       help=f"start this engine first ({', '.join(ENGINES)}), run against it, then stop it")
    g.add_argument("--threads", type=_positive_int, help="engine CPU threads (default: all cores)")
    g.add_argument("--slots", type=_positive_int, help="llama.cpp parallel slots (default 4)")
    g.add_argument("--ctx-size", type=_positive_int, default=2048, help="context per slot (default 2048)")
    g.add_argument("--gpu-layers", type=int, help="llama.cpp -ngl")
    g.add_argument("--dtype", help="transformers/vLLM dtype (e.g. float32, bfloat16)")
    g.add_argument("--attn-implementation", help="transformers attention implementation (eager, sdpa, ...)")
    g.add_argument("--compile", action="store_true", help="transformers: torch.compile the forward")
    g.add_argument("--tensor-parallel-size", type=_positive_int, help="vLLM")
    g.add_argument("--max-model-len", type=_positive_int, help="vLLM")
    g.add_argument("--gpu-memory-utilization", type=_finite_float, help="vLLM")
    g.add_argument("--port", type=int, help="engine port (default: a free one)")
    g.add_argument("--ready-timeout", type=_positive_float,
                   help="seconds to wait for the engine to be ready (default: 60 + 30 per GB of weights; vLLM 300)")
    g.add_argument("--engine-arg", action="append", default=[], metavar="ARG",
                   help="extra argument passed to the engine verbatim (repeatable)")


def _add_run_args(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--endpoint", help="OpenAI base URL, e.g. http://127.0.0.1:8080/v1 (/v1 added to a bare host)")
    p.add_argument("--model", help="model name to send (default: the first one /v1/models lists)")
    p.add_argument("--api", choices=("chat", "completions", "responses"), default="chat",
                   help="/chat/completions (default), /completions or /responses (the Responses API)")
    p.add_argument("--no-stream", dest="stream", action="store_false",
                   help="non-streaming requests (TTFT then not measured)")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                   help="bearer token (default: $OPENAI_API_KEY)")
    p.add_argument("--dataset", default="builtin", help="builtin (default), lima, synthetic (--prompt-tokens), or a JSONL/JSON/Parquet file")
    if command == "throughput":
        p.add_argument("--concurrency", type=_positive_int, help="requests kept in flight (or --request-rate)")
        amount = p.add_mutually_exclusive_group()
        amount.add_argument("--num-prompts", type=_positive_int,
                            help="measured requests (default: max(100, 4 x concurrency))")
        amount.add_argument("--duration", type=_positive_float, help="measure for this many seconds instead")
        from loadtest.scaleout.coordinator import add_arguments as add_worker_arguments

        add_worker_arguments(p)
    elif command in ("sweep", "capacity"):
        add_level_arguments(p, command)
    else:
        p.add_argument("--num-prompts", type=_positive_int, default=100, help="measured requests (default 100)")
    p.add_argument("--max-tokens", type=_positive_int, default=256, help="max_tokens per request (default 256)")
    p.add_argument("--temperature", type=_finite_float, help="sent only when given")
    p.add_argument("--top-p", type=_finite_float, help="sent only when given")
    p.add_argument("--ignore-eos", action="store_true", help="send ignore_eos=true (vLLM, llama.cpp accept it)")
    p.add_argument("--extra-body", default="{}", help="JSON object merged into every request body")
    p.add_argument("--warmup", type=parse_warmup, default=0,
                   help="requests sent first and left out of the statistics (10), or a time with --duration (5s)")
    p.add_argument("--seed", type=int, default=0, help="prompt sampling seed (default 0)")
    p.add_argument("--tokenizer", help="count tokens when the server sends no usage: a local HF tokenizer dir or a "
                                       "tiktoken encoding (cl100k_base works offline), or 'model': the --model's "
                                       "encoding (o200k_base for GPT-4o and later, else cl100k_base)")
    p.add_argument("--timeout", type=_positive_float, default=600.0, help="per-request timeout in seconds (default 600)")
    p.add_argument("--transport", choices=("fast", "httpx", "openai"), default="fast",
                   help="HTTP client: fast (asyncio + httptools, default), httpx, or openai (the official SDK)")
    p.add_argument("--no-preconnect", dest="preconnect", action="store_false",
                   help="do not open keep-alive connections before the measured window")
    p.add_argument("--output", type=Path, help="results directory (default results/<time>-<command>/)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the interrupted or crashed run in DIR (same options; done prompts are skipped)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--wandb", metavar="PROJECT", help="also log the run to Weights & Biases (needs wandb)")
    if command != "single":
        add_load_arguments(p, command=command)
    _add_launch_args(p, required_engine=False)
    from loadtest.run.synthetic import add_arguments as add_synthetic_arguments

    add_synthetic_arguments(p)

    from loadtest.client.auth import add_arguments as add_hosted_arguments

    add_hosted_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loadtest", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"loadtest {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_args(sub.add_parser("single", help="requests one at a time: per-request tokens/s, TTFT, decode rate"), "single")
    _add_run_args(sub.add_parser("throughput", help="N requests in flight: requests/min, output tokens/s"), "throughput")
    _add_run_args(sub.add_parser("sweep", help="one throughput run per concurrency or rate level, one table"), "sweep")
    capacity_parser = sub.add_parser("capacity", help="the highest load that meets the SLOs (bracket + bisection)")
    _add_run_args(capacity_parser, "capacity")
    from loadtest.series import capacity

    capacity.add_arguments(capacity_parser)
    serve = sub.add_parser("serve", help="run the test server (sim) or start an engine and print its endpoint")
    serve_sub = serve.add_subparsers(dest="engine", required=True, metavar="ENGINE")
    from loadtest.sim.config import add_arguments as add_sim_arguments

    add_sim_arguments(serve_sub.add_parser("sim", help="deterministic OpenAI-compatible test server"))
    for engine in ENGINES:
        ep = serve_sub.add_parser(engine, help=f"start {engine} and print its endpoint until Ctrl-C")
        ep.add_argument("--model", help="model path or id (default: the embedded SmolLM2 GGUF)")
        ep.add_argument("--log-dir", type=Path, default=Path("results") / "servers", help="where the engine log goes")
        _add_launch_args(ep, required_engine=True)
    engine = sub.add_parser("engine", help="install engines into their own environments, or list them")
    engine_sub = engine.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = engine_sub.add_parser("install", help="create ENGINE's own virtualenv (llamacpp, transformers, vllm)")
    inst.add_argument("engines", nargs="+", metavar="ENGINE", choices=("llamacpp", "transformers", "vllm"))
    inst.add_argument("--dir", type=Path, help="where the environments go (default: $LOADTEST_HOME/engines, else "
                                               "the per-user data directory)")
    inst.add_argument("--force", action="store_true", help="reinstall even if already installed")
    inst.add_argument("--latest", action="store_true",
                      help="install the newest releases instead of the pinned known-good versions (reinstalls)")
    engine_sub.add_parser("list", help="which engines are installed, where, which version, and their pins")
    from loadtest.series import matrix
    from loadtest.launch import memory
    from loadtest.cli import models as models_command
    from loadtest.series import prefill_decode as tokens_sweep
    from loadtest.report import command as report

    tokens = sub.add_parser("tokens", help="prefill/decode sweep: prompt processing and generation tokens/s by length")
    tokens_sweep.add_arguments(tokens)
    _add_launch_args(tokens, required_engine=False)
    tokens.set_defaults(slots=1, ctx_size=None)  # one request at a time; the context fits the longest scenario
    report.add_arguments(sub.add_parser("report", help="compare saved runs: tables, plots, an HTML page"))
    matrix.add_arguments(sub.add_parser("matrix", help="every engine x model: launch, single + throughput, report"))
    memory.add_arguments(sub.add_parser("memory", help="memory needed to serve a model, per precision"))
    models_command.add_arguments(sub.add_parser("models", help="list the models an endpoint serves (its /models)"))
    return parser


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def config_from_args(ns: argparse.Namespace) -> RunConfig:
    if not ns.endpoint and not getattr(ns, "launch", None):
        raise ConfigError("--endpoint is required (or --launch ENGINE to start one)")
    try:
        extra = json.loads(ns.extra_body, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"--extra-body is not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise ConfigError("--extra-body must be a JSON object")
    throughput = ns.command == "throughput"
    if throughput and ns.concurrency is None and getattr(ns, "request_rate", None) is None:
        raise ConfigError("throughput needs --concurrency N (closed loop) or --request-rate R (open loop)")
    concurrency = (ns.concurrency or 1) if throughput else 1
    duration = ns.duration if throughput else None
    load = load_fields(ns, duration_s=duration)
    num = ns.num_prompts if ns.num_prompts is not None else max(100, 4 * concurrency)
    from loadtest.client.auth import hosted_options

    fields: dict[str, Any] = dict(
        command=ns.command, base_url=normalize_base_url(ns.endpoint) if ns.endpoint else "", model=ns.model,
        api=ns.api, stream=ns.stream, api_key=ns.api_key, dataset=ns.dataset,
        num_prompts=None if duration else num, duration_s=duration, concurrency=concurrency,
        seed=ns.seed, max_tokens=ns.max_tokens, temperature=ns.temperature, top_p=ns.top_p, ignore_eos=ns.ignore_eos,
        extra_body=extra, tokenizer=ns.tokenizer, timeout_s=ns.timeout, transport=ns.transport,
        preconnect=ns.preconnect, output_dir=ns.resume or ns.output or default_output_dir(ns.command), quiet=ns.quiet,
        **load)
    return RunConfig(**{**fields, **hosted_options(ns)})  # key, headers, Azure, retries, limits


def _serve(ns: argparse.Namespace) -> int:
    if ns.engine == "sim":
        from loadtest.sim.__main__ import announce
        from loadtest.sim.config import config_from_args as sim_config
        from loadtest.sim.server import run as run_sim

        try:
            run_sim(sim_config(ns), announce=announce)
        except OSError as exc:
            raise ConfigError(f"cannot start the test server: {exc}") from None
        return 0
    from loadtest.launch.launcher import launch

    with launch(launch_spec(ns, ns.engine, ns.model, ns.log_dir)) as server:
        print(f"{ns.engine} ready at {server.base_url} (model name: {server.model_name}); Ctrl-C to stop", flush=True)
        print(f"launch command: {server.info['launch_command']['shell']}", flush=True)
        print(f"log: {server.info['log_path']}", flush=True)
        try:
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            signal.pause()
        except KeyboardInterrupt:
            print(f"\nstopping {ns.engine}", file=sys.stderr)
    return 0


def _engine(ns: argparse.Namespace) -> int:
    from loadtest.launch.install import engine_table, install

    if ns.action == "install":
        for name in ns.engines:
            install(name, ns.dir, force=ns.force, latest=ns.latest)
        return 0
    rows, notes = engine_table()
    print(render_rows(rows, ["engine", "status", "installed", "pinned", "where"]))
    for note in notes:
        print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    debug = getattr(ns, "debug", False)
    try:
        if ns.command == "serve":
            return _serve(ns)
        if ns.command == "engine":
            return _engine(ns)
        if ns.command == "tokens":
            from loadtest.series import prefill_decode as tokens_sweep

            return tokens_sweep.run(ns, maybe_launch)
        if ns.command in ("report", "matrix", "memory", "models"):
            from loadtest.series import matrix
            from loadtest.launch import memory
            from loadtest.cli import models as models_command
            from loadtest.report import command as report

            return {"report": report, "matrix": matrix, "memory": memory, "models": models_command}[ns.command].run(ns)
        if ns.command in ("sweep", "capacity"):
            from loadtest.series import capacity
            from loadtest.series import sweep

            driver = sweep if ns.command == "sweep" else capacity
            return driver.run(ns, make_config=config_from_args, maybe_launch=maybe_launch)
        return benchmark.run(ns, config_from_args(ns))
    except LoadtestError as exc:
        if debug:
            raise
        print(f"loadtest: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("loadtest: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or an OS failure nothing above expected: still one line
        if debug:
            raise
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"loadtest: error: {type(exc).__name__}: {redact(text)}{where} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
