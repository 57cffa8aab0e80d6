"""``loadtest sweep``: one throughput run per load level, a sub-directory each, one table
(series/sweep.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import configs, options


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("sweep", help="one throughput run per concurrency or rate level, one table",
                       description="One throughput run per load level (concurrencies, rates, or automatic rates), "
                                   "stopping early at saturation, errors or a broken SLO.")
    options.run_options(p, command="sweep", amount_options=lambda q: options.levels(q, command="sweep"))
    options.repeat(p, command="sweep")
    p.set_defaults(run=main, check=configure)


def level_settings(ns: argparse.Namespace, by: str) -> Any:
    from loadtest.series.levels import LevelSettings

    objectives, attainment = configs.objectives(ns)
    return LevelSettings(by=by, objectives=tuple(objectives), attainment=attainment, num_prompts=ns.num_prompts,
                         max_error_rate=ns.max_error_rate, allow_client_bound=ns.allow_client_bound,
                         repeat=configs.repeat_settings(ns))


def base_config(ns: argparse.Namespace, *, by: str, first: float, command: str) -> Any:
    """The run's config at the first level (series/levels.py moves it level by level)."""
    from loadtest.series.levels import RATE

    rate = first if by == RATE else None
    concurrency = int(first) if rate is None else (getattr(ns, "max_concurrency", None) or 1)
    return configs.run_config(ns, command="throughput", concurrency=concurrency, request_rate=rate,
                              num_prompts=ns.num_prompts, duration_s=ns.duration,
                              output_dir=configs.output_dir(ns, command))


def main(ns: argparse.Namespace) -> int:
    import sys
    from dataclasses import replace

    from loadtest.run.openfiles import ensure_open_files
    from loadtest.series.levels import CONCURRENCY
    from loadtest.series.sweep import run_sweep

    sweep = configure(ns)
    top = sweep.base  # the open files the highest level holds, checked (or the limit raised) before any level
    if sweep.settings.by == CONCURRENCY and sweep.levels:
        top = replace(top, concurrency=int(max(sweep.levels)))
    raised = ensure_open_files(top)
    if raised and not top.quiet:
        print(f"loadtest: {raised}", file=sys.stderr, flush=True)
    return run_sweep(sweep)


def configure(ns: argparse.Namespace) -> Any:
    """The SweepConfig of the options; ConfigError (one line) before anything runs."""
    from loadtest.series.levels import CONCURRENCY, RATE, parse_levels
    from loadtest.series.sweep import SweepConfig

    by = RATE if ns.request_rate is not None else CONCURRENCY
    auto = by == RATE and ns.request_rate.strip().lower() == "auto"
    levels = None if auto else parse_levels(ns.request_rate if by == RATE else ns.concurrency,
                                            integer=by == CONCURRENCY, flag=f"--{by.replace('rate', 'request-rate')}")
    base = base_config(ns, by=by, first=levels[0] if levels else 1.0, command="sweep")
    return SweepConfig(base=base, settings=level_settings(ns, by), levels=tuple(levels) if levels else None,
                       early_stop=not ns.no_early_stop, launch=configs.launch_spec(ns), overwrite=ns.overwrite)
