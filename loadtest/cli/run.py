"""``loadtest single`` and ``loadtest throughput``: one run (in one process, or scaled out over
workers), its table, the post-run judgements, and the files it leaves."""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadtest.cli import argtypes, configs, options, workloads
from loadtest.config import RunConfig
from loadtest.errors import ConfigError


def _single_amount(p: Any) -> None:
    options.amount(p, num_help="measured requests (default 100)", num_default=100, duration=False)


def _throughput_amount(p: Any) -> None:
    p.add_argument("--concurrency", type=argtypes.positive_int, help="requests kept in flight (or --request-rate)")
    options.amount(p, num_help="measured requests (default: max(100, 4 x concurrency))")


COMMANDS = (("single", "requests one at a time: per-request tokens/s, TTFT, decode rate", _single_amount),
            ("throughput", "N requests in flight, or a request rate: requests/min, output tokens/s", _throughput_amount))


def add_parsers(sub: Any) -> None:
    for command, help_text, amount in COMMANDS:
        p = sub.add_parser(command, help=help_text, description=help_text)
        options.run_options(p, command=command, amount_options=amount)
        workloads.sessions(p, command=command)
        workloads.tools(p)
        p.add_argument("--resume", type=argtypes.input_path, metavar="DIR",
                       help="continue the interrupted or crashed run in DIR (same options; done prompts are skipped)")
        options.repeat(p, command=command)
        if command == "throughput":
            options.workers(p)
            workloads.trace(p)
        p.set_defaults(run=main, check=configure)  # check: what a scenario file's validation runs


@dataclass(frozen=True)
class Invocation:
    """What a single/throughput command line asks beyond the run's own configuration."""

    launch: Any = None              # LaunchSpec | None
    resume: bool = False
    overwrite: bool = False
    objectives: tuple[Any, ...] = ()
    attainment: float = 0.9
    workers: int = 1
    ray_address: str | None = None
    on_worker_failure: str = "stop"
    wandb: str | None = None
    repeat: Any = None              # RepeatSettings | None (--repeat N: series/repeat.py)


def configure(ns: argparse.Namespace) -> tuple[RunConfig, Invocation]:
    throughput = ns.command == "throughput"
    if ns.resume is not None and ns.output is not None and ns.output != ns.resume:
        raise ConfigError("--resume DIR continues the run in DIR; leave out --output (or give the same directory)")
    configs.session_conflicts(ns)
    configs.tool_conflicts(ns)
    rate = getattr(ns, "request_rate", None)
    if getattr(ns, "session_rate", None) is not None:
        rate = ns.session_rate  # sessions are the scheduler's jobs: their rate is its rate
    concurrency = getattr(ns, "concurrency", None)
    configs.trace_conflicts(ns)
    if throughput and concurrency is None and rate is None and getattr(ns, "trace", None) is None:
        raise ConfigError("throughput needs --concurrency N (closed loop) or --request-rate R (open loop)"
                          + (" (with sessions: --concurrency N users or --session-rate R)"
                             if getattr(ns, "turns", None) or getattr(ns, "multi_turn", False) else ""))
    concurrency = concurrency or 1
    duration = getattr(ns, "duration", None)
    num = ns.num_prompts if ns.num_prompts is not None else max(100, 4 * concurrency)
    cfg = configs.run_config(ns, command=ns.command, concurrency=concurrency, request_rate=rate, num_prompts=num,
                             duration_s=duration, output_dir=ns.resume or configs.output_dir(ns, ns.command))
    objectives, attainment = configs.objectives(ns)
    workers, ray = getattr(ns, "workers", 1), getattr(ns, "ray_address", None)
    if (workers > 1 or ray) and ns.resume is not None:
        raise ConfigError("--resume does not combine with --workers / --ray-address")
    if workers > 1 or ray:  # the share each worker gets, checked before a run directory is made
        from loadtest.scaleout.share import check

        try:
            check(cfg, workers)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return cfg, Invocation(launch=configs.launch_spec(ns), resume=ns.resume is not None, overwrite=ns.overwrite,
                           objectives=tuple(objectives), attainment=attainment, workers=workers, ray_address=ray,
                           on_worker_failure=getattr(ns, "on_worker_failure", "stop"), wandb=ns.wandb,
                           repeat=configs.repeat_settings(ns))


def config_from_args(ns: argparse.Namespace) -> RunConfig:
    """The run's configuration alone (what a test of the options needs)."""
    return configure(ns)[0]


def main(ns: argparse.Namespace) -> int:
    cfg, how = configure(ns)
    return run_command(cfg, how)


def run_command(cfg: RunConfig, how: Invocation) -> int:
    """Launch when asked, build the prompts, run (or run N times: --repeat), then the table, the
    judgements and the files."""
    from loadtest.prompts.sessions import load_sessions
    from loadtest.prompts.sources import load_prompts
    from loadtest.redact import redact
    from loadtest.run.console import render_table
    from loadtest.run.execute import Interrupted
    from loadtest.run.launched import launched
    from loadtest.run.output import prepare_output_dir
    from loadtest.run.postrun import judge_and_say
    from loadtest.tokens import launched_tokenizer, load_tokenizer

    from loadtest.run.openfiles import ensure_open_files, worker_warning

    assert cfg.output_dir is not None
    raised = ensure_open_files(cfg, workers=how.workers if not how.ray_address else 1)  # refused: before any file
    crowded = worker_warning(how.workers) if how.workers > 1 and not how.ray_address else None
    if crowded:  # warn only about a run that will start: its shares are checked first
        from loadtest.scaleout.share import deal

        try:
            deal(cfg, how.workers)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    for line in (raised, crowded):
        if line and not cfg.quiet:
            print(f"loadtest: {'warning: ' if line is crowded else ''}{line}", file=sys.stderr, flush=True)
    prepare_output_dir(cfg.output_dir, overwrite=how.overwrite, resume=how.resume)
    if cfg.dataset == "lima":
        print("loadtest: loading GAIR/lima from the Hugging Face hub (gated; retries take ~25 s when it is "
              "unreachable)", file=sys.stderr, flush=True)
    synthetic = cfg.dataset == options.SYNTHETIC
    prompts = ([] if synthetic else load_sessions(cfg.dataset, recorded=cfg.history == "recorded") if cfg.multi_turn
               else load_prompts(cfg.dataset))
    tokenizer = load_tokenizer(cfg.tokenizer, cfg.model) if cfg.tokenizer else None
    try:
        with launched(how.launch, cfg) as (cfg, server):
            if tokenizer is None and server is not None:  # the launched model's own, when it has one
                tokenizer = launched_tokenizer(server.info.get("model") or {})
            if how.repeat is not None:
                return _repeat(cfg, how, prompts, tokenizer, server)
            outcome = measure(cfg, how, prompts, tokenizer, server)
    except Interrupted:  # stopped before a run began (an engine starting): the directory made for it goes
        with contextlib.suppress(OSError):  # when empty (never a record: a second signal's stay; an engine's log)
            cfg.output_dir.rmdir()
        raise
    print(render_table(outcome.summary))
    judge_and_say(outcome.directory, outcome.summary, list(how.objectives), how.attainment)
    print(f"\nresults: {outcome.directory}/summary.json, {outcome.directory}/requests.jsonl")
    if outcome.message:
        print(f"loadtest: error: {redact(outcome.message)}", file=sys.stderr)
    if how.wandb:
        _wandb([outcome.directory], how.wandb)
    return outcome.exit_code


def measure(cfg: RunConfig, how: Invocation, prompts: list[Any], tokenizer: Any, server: Any,
            signals: Any = None) -> Any:
    """One run against the (launched) server, its prompts planned, and the blocks written after it
    (trace, sessions, tools, synthetic prompts): the RunOutcome. ``signals``: the command's one
    Signals when it runs several (--repeat)."""
    from loadtest.client.sender import check_budgets
    from loadtest.prompts.batches import pooled_prompts
    from loadtest.run.execute import execute
    from loadtest.run.launched import server_info
    from loadtest.run.postrun import annotate_prompts, annotate_sessions, annotate_tools, annotate_trace
    from loadtest.run.runner import Run

    synthetic = cfg.dataset == options.SYNTHETIC
    plan = trace = None
    if synthetic:  # counted with the server's tokenizer (imported only then: it needs httpx)
        from loadtest.client.pooling_prompts import pooled_plan
        from loadtest.client.synthetic import plan_for

        plan = pooled_plan(cfg, server) if cfg.pooled else plan_for(cfg, server)  # embeddings, rerank: their own
    elif cfg.trace is not None:  # the trace's rows, schedule and prompts (client/trace.py)
        from loadtest.client.trace import plan_trace

        trace = plan_trace(cfg, server)
        cfg, plan = trace.configure(cfg), trace.prompts
    prompts = plan.prompts if plan else pooled_prompts(prompts, cfg)  # embeddings, rerank: grouped
    tool_info: dict[str, Any] = {}
    if cfg.tools is not None:  # the canned tool result, counted with the server's tokenizer
        from loadtest.client.synthetic import tool_result_text

        text, tool_info = tool_result_text(cfg, server)
        cfg = replace(cfg, tool_result_text=text)
    try:
        check_budgets(cfg, prompts, tokenizer)  # a --tpm-limit no request fits in: refused before it starts
    except ConfigError:
        if cfg.output_dir is not None and not how.resume:
            with contextlib.suppress(OSError):
                cfg.output_dir.rmdir()  # made empty for this run a moment ago (never removed when not empty)
        raise
    if how.workers > 1 or how.ray_address:
        from loadtest.scaleout import make_coordinator

        run: Any = make_coordinator(cfg, prompts, server_info(server), workers=how.workers,
                               on_failure=how.on_worker_failure, ray_address=how.ray_address)
    else:
        run = Run(cfg, prompts, directory=cfg.output_dir, tokenizer=tokenizer, server_info=server_info(server),
                  resume=how.resume)
    outcome = execute(run, signals)
    if trace is not None:
        annotate_trace(outcome.directory, outcome.summary, trace.block(cfg))
    if cfg.multi_turn_sessions or (trace is not None and trace.has_sessions):
        annotate_sessions(outcome.directory, outcome.summary)
    if cfg.tools is not None:
        annotate_tools(outcome.directory, outcome.summary, cfg, tool_info)
    if synthetic or cfg.ignore_eos:
        annotate_prompts(outcome.directory, outcome.summary, plan, cfg.max_tokens, quiet=cfg.quiet)
    return outcome


def _repeat(cfg: RunConfig, how: Invocation, prompts: list[Any], tokenizer: Any, server: Any) -> int:
    """--repeat N: the reps one after another under one Signals (series/repeat.py), each judged,
    then the group's table."""
    from loadtest.redact import redact
    from loadtest.run.execute import command_signals
    from loadtest.run.postrun import judge
    from loadtest.series.repeat import render_group, run_group

    signals = command_signals()

    def one(rep: RunConfig) -> Any:
        outcome = measure(rep, how, prompts, tokenizer, server, signals)
        judge(outcome.directory, outcome.summary, list(how.objectives), how.attainment)
        return outcome

    group = run_group(cfg, how.repeat, one, signals, overwrite=how.overwrite)
    if "repeat" in group.summary:  # the group's summary was written (also when a signal stopped rep 1)
        print(render_group(group.summary))
        reps = [*group.summary["repeat"]["dirs"], *filter(None, [group.summary["repeat"].get("stopped")])]
        print(f"\nresults: {group.directory}/summary.json (the group)"
              + (f", {group.directory}/{reps[0]}" + (f" .. {reps[-1]}" if len(reps) > 1 else "") + " (each run)"
                 if reps else ""))
    if group.message:
        print(f"loadtest: error: {redact(group.message)}", file=sys.stderr)
    if how.wandb and group.runs:
        _wandb([o.directory for o in group.runs], how.wandb)
    return group.exit_code


def _wandb(directories: list[Path], project: str) -> None:
    from loadtest.report.load import load_run
    from loadtest.report.wandb_sink import log_runs

    log_runs([load_run(d) for d in directories], project)
