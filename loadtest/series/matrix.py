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

import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import ConfigError, LoadtestError
from loadtest.launch.spec import LaunchSpec
from loadtest.run.execute import Interrupted, NothingMeasured, Signals, command_signals, execute


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


@dataclass(frozen=True)
class MatrixConfig:
    """A matrix: every variant x every model, each launched from ``launch`` (the engine options;
    a variant's tags override them) and measured with the ``base`` request options."""

    base: RunConfig               # dataset, seed, max tokens, warm-up, timeout, quiet, sampling
    variants: tuple[EngineVariant, ...]
    models: tuple[str, ...]
    launch: LaunchSpec            # threads, slots, ctx size, ready timeout...
    output: Path
    single: int = 20              # prompts of the single run (0: none)
    throughput: int = 4           # concurrency of the throughput run (0: none)
    num_prompts: int | None = None
    wandb: str | None = None


def _configs(mc: MatrixConfig, base_url: str, model: str, pair_dir: Path) -> list[RunConfig]:
    common = dict(base_url=base_url, model=model)
    out = []
    if mc.single > 0:
        out.append(replace(mc.base, command="single", num_prompts=mc.single, concurrency=1,
                           output_dir=pair_dir / "single", **common))
    if mc.throughput > 0:
        out.append(replace(mc.base, command="throughput", num_prompts=mc.num_prompts or 4 * mc.throughput,
                           concurrency=mc.throughput, output_dir=pair_dir / "throughput", **common))
    return out


def _done(mc: MatrixConfig, pair_dir: Path) -> bool:
    wanted = [c for c, n in (("single", mc.single), ("throughput", mc.throughput)) if n > 0]
    return all((pair_dir / c / "summary.json").is_file() for c in wanted)


def run_pair(mc: MatrixConfig, variant: EngineVariant, model: str, pair_dir: Path, prompts: list[Any],
             signals: Signals) -> str:
    """Launch, run single then throughput into pair_dir, stop. Returns a one-line result."""
    from loadtest.launch.launcher import launch
    from loadtest.run.output import prepare_output_dir
    from loadtest.run.runner import Run

    t = mc.launch
    spec = replace(t, engine=variant.engine, model=model,
                   slots=t.slots or (max(mc.throughput, 1) if variant.engine == "llamacpp" else None),
                   dtype=variant.dtype or t.dtype, attn_implementation=variant.attn_implementation or t.attn_implementation,
                   compile=variant.compile or t.compile, log_dir=pair_dir)
    results = []
    with contextlib.ExitStack() as stack:
        with signals.abortable():  # a signal while this pair's engine starts: stopped at once
            server = stack.enter_context(launch(spec))
        for cfg in _configs(mc, server.base_url, server.model_name, pair_dir):
            assert cfg.output_dir is not None
            prepare_output_dir(cfg.output_dir, overwrite=True)  # an interrupted earlier attempt: start afresh
            run = Run(cfg, prompts, directory=cfg.output_dir,
                      server_info=lambda: {**server.info, "resources": server.resources()})
            outcome = execute(run, signals)
            if outcome.exit_code != 0:
                (cfg.output_dir / "summary.json").unlink(missing_ok=True)  # the pair is run again next time
                if signals.received is not None:
                    return f"interrupted ({signals.received.name}) in {cfg.command}"
                raise LoadtestError(f"{cfg.command} failed: {outcome.message or 'exit ' + str(outcome.exit_code)}")
            m = outcome.summary["metrics"]
            stat = (f"{m['tokens_per_s']['mean']:.1f} tok/s per request" if cfg.command == "single"
                    and m["tokens_per_s"]["mean"] is not None else f"{(m['requests_per_min'] or 0):.1f} req/min")
            results.append(f"{cfg.command} {stat}")
    return "; ".join(results)


def run_matrix(mc: MatrixConfig) -> int:
    from loadtest.prompts.sources import load_prompts
    from loadtest.report.make import make_report
    from loadtest.run.output import writable_dir

    if not mc.variants or not mc.models:
        raise ConfigError("--engines and --models each need at least one entry")
    if mc.single < 0 or mc.throughput < 0 or mc.single == mc.throughput == 0:
        raise ConfigError("--single N and --throughput C must be >= 0, and not both 0")
    out = mc.output
    writable_dir(out)  # checked before anything runs, not when the last file is written
    prompts = load_prompts(mc.base.dataset)
    signals = command_signals()
    failures = 0
    for model in mc.models:
        for variant in mc.variants:
            if signals.received is not None:
                break
            pair_dir = out / f"{variant.label}-{model_label(model)}"
            name = f"{variant.label} x {model}"
            failed_file = pair_dir / "failed.json"
            if _done(mc, pair_dir):
                print(f"matrix: {name}: already done in {pair_dir}, skipped", file=sys.stderr, flush=True)
                continue
            failed_file.unlink(missing_ok=True)
            pair_dir.mkdir(parents=True, exist_ok=True)
            print(f"matrix: {name}: starting", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                line = run_pair(mc, variant, model, pair_dir, prompts, signals)
                print(f"matrix: {name}: {line} ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
            except Interrupted as exc:  # a signal while its engine started, or before its first request
                why = "while its engine started" if not isinstance(exc, NothingMeasured) else "before it sent a request"
                print(f"matrix: {name}: interrupted {why}", file=sys.stderr, flush=True)  # the pairs done: reported
                break
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
    if mc.wandb:
        from loadtest.report.load import load_runs
        from loadtest.report.wandb_sink import log_runs

        log_runs(load_runs([out]), mc.wandb)
    if signals.exit_code is not None:
        return signals.exit_code
    return 0 if failures == 0 else 2
