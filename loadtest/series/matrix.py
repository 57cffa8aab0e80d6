"""``loadtest matrix``: every engine (and variant) x every model, launched in turn, measured with
``single`` and ``throughput``, stopped, and compared in one report.

Layout of the output directory (what makes it resumable, and what ``loadtest report DIR`` reads):

    DIR/<engine>[-<variant>]-<model>/single/       summary.json, requests.jsonl
    DIR/<engine>[-<variant>]-<model>/throughput/
    DIR/<engine>[-<variant>]-<model>/failed.json   when the pair failed: engine, model, why
    DIR/report.md                                  the tables

A pair with both summaries is not run again; a failed pair is retried. A failing engine never
stops the others: it becomes a row that says why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import ConfigError, LoadtestError
from loadtest.eventloop import loop_factory

COMMANDS = ("single", "throughput")


@dataclass(frozen=True)
class EngineVariant:
    """An engine and how to start it: `transformers:compile`, `transformers:dtype=bfloat16:attn=eager`."""

    engine: str
    compile: bool = False
    dtype: str | None = None
    attn_implementation: str | None = None

    @property
    def label(self) -> str:
        parts = [self.engine] + (["compile"] if self.compile else []) + ([self.dtype] if self.dtype else []) \
            + ([self.attn_implementation] if self.attn_implementation else [])
        return "-".join(parts)

    @property
    def name(self) -> str:
        """As reports name it (`transformers:compile`)."""
        return self.label.replace("-", ":")


def parse_engine(text: str) -> EngineVariant:
    from loadtest.launch import ENGINES

    engine, *tags = [t.strip() for t in text.split(":")]
    if engine not in ENGINES:
        raise ConfigError(f"--engines: unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    v = EngineVariant(engine)
    for tag in tags:
        key, _, value = tag.partition("=")
        if tag == "compile":
            v = replace(v, compile=True)
        elif key == "dtype" and value or tag in ("float32", "float16", "bfloat16"):
            v = replace(v, dtype=value or tag)
        elif key == "attn" and value or tag in ("eager", "sdpa", "flash_attention_2"):
            v = replace(v, attn_implementation=value or tag)
        else:
            raise ConfigError(f"--engines: unknown variant {tag!r} in {text!r} "
                              "(compile, dtype=X, attn=X, float32, bfloat16, eager, sdpa)")
    return v


def model_label(model: str) -> str:
    name = Path(model).stem if model.lower().endswith(".gguf") else Path(model).name or model
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", required=True,
                   help="comma-separated: llamacpp, transformers, transformers:compile, vllm, tgi "
                        "(variants: :compile, :dtype=X, :attn=X)")
    p.add_argument("--models", default="smollm2", help="comma-separated: smollm2 (embedded) or model paths/ids")
    p.add_argument("--single", type=int, default=20, metavar="N", help="single: N prompts (default 20; 0 skips)")
    p.add_argument("--throughput", type=int, default=4, metavar="C",
                   help="throughput: C requests in flight (default 4; 0 skips)")
    p.add_argument("--num-prompts", type=int, help="throughput: measured requests (default 4 x C)")
    p.add_argument("--max-tokens", type=int, default=128, help="max_tokens per request (default 128)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up requests before each run (default 1)")
    p.add_argument("--dataset", default="builtin", help="prompts (default builtin)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds")
    p.add_argument("--threads", type=int, help="engine CPU threads")
    p.add_argument("--slots", type=int, help="llama.cpp parallel slots (default: the throughput concurrency)")
    p.add_argument("--ctx-size", type=int, default=2048, help="context per slot (default 2048)")
    p.add_argument("--ready-timeout", type=float, help="seconds to wait for each engine to be ready")
    p.add_argument("--output", type=Path, required=True, help="matrix directory (resumable)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--wandb", metavar="PROJECT", help="also log every run to Weights & Biases (needs wandb)")


def _configs(ns: argparse.Namespace, base_url: str, model: str, pair_dir: Path) -> list[RunConfig]:
    common = dict(base_url=base_url, model=model, dataset=ns.dataset, seed=ns.seed, max_tokens=ns.max_tokens,
                  warmup=ns.warmup, timeout_s=ns.timeout, quiet=ns.quiet)
    out = []
    if ns.single > 0:
        out.append(RunConfig(command="single", num_prompts=ns.single, concurrency=1,
                             output_dir=pair_dir / "single", **common))  # type: ignore[arg-type]
    if ns.throughput > 0:
        out.append(RunConfig(command="throughput", num_prompts=ns.num_prompts or 4 * ns.throughput,
                             concurrency=ns.throughput, output_dir=pair_dir / "throughput", **common))  # type: ignore[arg-type]
    return out


def _done(ns: argparse.Namespace, pair_dir: Path) -> bool:
    wanted = [c for c, n in (("single", ns.single), ("throughput", ns.throughput)) if n > 0]
    return all((pair_dir / c / "summary.json").is_file() for c in wanted)


def run_pair(ns: argparse.Namespace, variant: EngineVariant, model: str, pair_dir: Path, prompts: list[Any]) -> str:
    """Launch, run single then throughput into pair_dir, stop. Returns a one-line result."""
    from loadtest.launch.launcher import LaunchSpec, launch
    from loadtest.run.output import prepare_output_dir
    from loadtest.run.runner import Run

    spec = LaunchSpec(engine=variant.engine, model=model, threads=ns.threads,
                      slots=ns.slots or (max(ns.throughput, 1) if variant.engine == "llamacpp" else None),
                      ctx_size=ns.ctx_size, dtype=variant.dtype, attn_implementation=variant.attn_implementation,
                      compile=variant.compile, log_dir=pair_dir, ready_timeout_s=ns.ready_timeout)
    results = []
    with launch(spec) as server:
        for cfg in _configs(ns, server.base_url, server.model_name, pair_dir):
            assert cfg.output_dir is not None
            prepare_output_dir(cfg.output_dir, overwrite=True)  # an interrupted earlier attempt: start afresh
            run = Run(cfg, prompts, directory=cfg.output_dir,
                      server_info=lambda: {**server.info, "resources": server.resources()})
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                outcome = runner.run(run.execute())
            if outcome.exit_code != 0:
                (cfg.output_dir / "summary.json").unlink(missing_ok=True)
                raise LoadtestError(f"{cfg.command} failed: {outcome.message or 'exit ' + str(outcome.exit_code)}")
            m = outcome.summary["metrics"]
            stat = (f"{m['tokens_per_s']['mean']:.1f} tok/s per request" if cfg.command == "single"
                    and m["tokens_per_s"]["mean"] is not None else f"{(m['requests_per_min'] or 0):.1f} req/min")
            results.append(f"{cfg.command} {stat}")
    return "; ".join(results)


def run(ns: argparse.Namespace) -> int:
    from loadtest.prompts.sources import load_prompts
    from loadtest.report.command import make_report

    variants = [parse_engine(e) for e in ns.engines.split(",") if e.strip()]
    models = [m.strip() for m in ns.models.split(",") if m.strip()]
    if not variants or not models:
        raise ConfigError("--engines and --models each need at least one entry")
    if ns.single < 0 or ns.throughput < 0 or ns.single == ns.throughput == 0:
        raise ConfigError("--single N and --throughput C must be >= 0, and not both 0")
    out: Path = ns.output
    out.mkdir(parents=True, exist_ok=True)
    prompts = load_prompts(ns.dataset)
    failures = 0
    for model in models:
        for variant in variants:
            pair_dir = out / f"{variant.label}-{model_label(model)}"
            name = f"{variant.label} x {model}"
            failed_file = pair_dir / "failed.json"
            if _done(ns, pair_dir):
                print(f"matrix: {name}: already done in {pair_dir}, skipped", file=sys.stderr, flush=True)
                continue
            failed_file.unlink(missing_ok=True)
            pair_dir.mkdir(parents=True, exist_ok=True)
            print(f"matrix: {name}: starting", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                line = run_pair(ns, variant, model, pair_dir, prompts)
                print(f"matrix: {name}: {line} ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
            except (LoadtestError, OSError) as exc:
                failures += 1
                failed_file.write_text(json.dumps({"engine": variant.name, "model": model_label(model),
                                                   "error": str(exc).splitlines()[0] if str(exc) else repr(exc)},
                                                  indent=2))
                print(f"matrix: {name}: FAILED: {exc}", file=sys.stderr, flush=True)
    report = out / "report.md"
    make_report([out], by=["engine", "model"], fmt="markdown", output=report, plots=None, title="loadtest matrix")
    print(make_report([out], by=["engine", "model"], fmt="table", output=None, plots=None), end="")
    print(f"\nreport: {report}", file=sys.stderr)
    if ns.wandb:
        from loadtest.report.load import load_runs
        from loadtest.report.wandb_sink import log_runs

        log_runs(load_runs([out]), ns.wandb)
    return 0 if failures == 0 else 2
