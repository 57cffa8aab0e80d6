"""The ``single`` and ``throughput`` commands: launch an engine when asked, build the prompts, run,
print the table and the post-run verdicts. Also the engine-launch context other drivers share
(``maybe_launch``: tokens, sweep, capacity)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.run.output import prepare_output_dir, render_table
from loadtest.run.postrun import after_run
from loadtest.redact import redact
from loadtest.eventloop import loop_factory


def launch_spec(ns: argparse.Namespace, engine: str, model: str | None, log_dir: Path) -> Any:
    from loadtest.launch.launcher import LaunchSpec

    return LaunchSpec(engine=engine, model=model, port=ns.port, threads=ns.threads, slots=ns.slots,
                      ctx_size=ns.ctx_size, gpu_layers=ns.gpu_layers, dtype=ns.dtype,
                      attn_implementation=ns.attn_implementation, compile=ns.compile,
                      tensor_parallel_size=ns.tensor_parallel_size, max_model_len=ns.max_model_len,
                      gpu_memory_utilization=ns.gpu_memory_utilization, extra_args=list(ns.engine_arg),
                      log_dir=log_dir, ready_timeout_s=ns.ready_timeout)


@contextlib.contextmanager
def maybe_launch(ns: argparse.Namespace, cfg: RunConfig) -> Iterator[tuple[RunConfig, Any]]:
    if not getattr(ns, "launch", None):
        yield cfg, None
        return
    from loadtest.launch.launcher import launch

    assert cfg.output_dir is not None
    with launch(launch_spec(ns, ns.launch, cfg.model, cfg.output_dir)) as server:
        ignore_eos = cfg.ignore_eos and "ignore_eos" in server.accepted_fields
        if cfg.ignore_eos and not ignore_eos:
            print(f"loadtest: {ns.launch} does not accept ignore_eos; not sending it", file=sys.stderr)
        yield replace(cfg, base_url=server.base_url, model=server.model_name, ignore_eos=ignore_eos), server


def run(ns: argparse.Namespace, cfg: RunConfig) -> int:
    """Run ``single`` or ``throughput`` (cfg built from ns by cli.config_from_args)."""
    from loadtest.prompts.sources import load_prompts
    from loadtest.run.runner import Run
    from loadtest.tokens import launched_tokenizer, load_tokenizer

    from loadtest.run import synthetic as synthetic_run

    cfg = synthetic_run.configure(cfg, ns)
    if ns.resume is not None and ns.output is not None and ns.output != ns.resume:
        raise ConfigError("--resume DIR continues the run in DIR; leave out --output (or give the same directory)")
    assert cfg.output_dir is not None
    prepare_output_dir(cfg.output_dir, overwrite=ns.overwrite, resume=ns.resume is not None)
    if cfg.dataset == "lima":
        print("loadtest: loading GAIR/lima from the Hugging Face hub (gated; retries take ~25 s when it is "
              "unreachable)", file=sys.stderr, flush=True)
    synthetic = cfg.dataset == synthetic_run.DATASET
    prompts = [] if synthetic else load_prompts(cfg.dataset)
    tokenizer = load_tokenizer(cfg.tokenizer, cfg.model) if cfg.tokenizer else None
    with maybe_launch(ns, cfg) as (cfg, server):
        if tokenizer is None and server is not None:  # the launched model's own, when it has one
            tokenizer = launched_tokenizer(server.info.get("model") or {})

        def server_info() -> dict[str, Any] | None:
            if server is None:
                return None
            return {**server.info, "resources": server.resources()}

        assert cfg.output_dir is not None
        plan = synthetic_run.plan_for(cfg, server) if synthetic else None  # counted with the server's tokenizer
        prompts = plan.prompts if plan else prompts
        if getattr(ns, "workers", 1) > 1 or getattr(ns, "ray_address", None):
            from loadtest.scaleout.coordinator import coordinator

            run = coordinator(ns, cfg, prompts, server_info)  # scale-out: same interface as Run
        else:
            run = Run(cfg, prompts, directory=cfg.output_dir, tokenizer=tokenizer, server_info=server_info,
                      resume=ns.resume is not None)
        terminated = False

        async def main() -> Any:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()

            def on_signal(sig: signal.Signals) -> None:
                nonlocal terminated
                if not run.stop.is_set():
                    run.interrupted = True
                    terminated = sig == signal.SIGTERM
                    run.stop.set()
                    hint = "" if terminated else " (Ctrl-C again to quit now)"
                    print(f"\nloadtest: stopping ({sig.name}); writing the summary of what completed{hint}",
                          file=sys.stderr, flush=True)
                elif task is not None:
                    task.cancel()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal, sig)
            return await run.execute()

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            try:
                outcome = runner.run(main())
            except asyncio.CancelledError:
                print(f"loadtest: interrupted; records so far are in {cfg.output_dir / 'requests.jsonl'}", file=sys.stderr)
                return 143 if terminated else 130
    if synthetic or cfg.ignore_eos:
        synthetic_run.annotate(outcome.directory, outcome.summary, plan, cfg, quiet=cfg.quiet)
    print(render_table(outcome.summary))
    after_run(ns, outcome)
    print(f"\nresults: {outcome.directory}/summary.json, {outcome.directory}/requests.jsonl")
    if outcome.message:
        print(f"loadtest: error: {redact(outcome.message)}", file=sys.stderr)
    if ns.wandb:
        from loadtest.report.load import load_run
        from loadtest.report.wandb_sink import log_runs

        log_runs([load_run(outcome.directory)], ns.wandb)
    if terminated and outcome.exit_code == 130:
        return 143  # 128 + SIGTERM, as a process killed by it would report
    return outcome.exit_code
