"""``loadtest capacity --slo ...``: the highest load that meets the SLOs (series/capacity.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import argtypes, configs, options
from loadtest.cli.sweep import base_config, level_settings


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("capacity", help="the highest load that meets the SLOs (bracket + bisection)",
                       description="The highest request rate (or concurrency) at which the server still meets "
                                   "the SLOs: bracket by doubling, bisect, then repeat the boundary level.")
    options.run_options(p, command="capacity", amount_options=lambda q: options.levels(q, command="capacity"))
    g = p.add_argument_group("capacity search")
    g.add_argument("--start", type=argtypes.positive_float, default=1.0, help="first level tried (default 1)")
    g.add_argument("--precision", type=argtypes.positive_float, default=0.05,
                   help="stop when the bracket is within this fraction of the answer (default 0.05; "
                        "concurrency: within 1)")
    g.add_argument("--max-levels", type=argtypes.positive_int, default=16, help="runs at most (default 16)")
    g.add_argument("--no-repeat", dest="repeat_boundary", action="store_false",
                   help="do not run the boundary level a second time")
    p.set_defaults(run=main)


def main(ns: argparse.Namespace) -> int:
    from loadtest.series.capacity import CapacityConfig, run_capacity
    from loadtest.series.levels import CONCURRENCY, RATE

    by = RATE if ns.by == "rate" else CONCURRENCY
    start = max(1.0, float(int(ns.start))) if by == CONCURRENCY else ns.start
    base = base_config(ns, by=by, first=start, command="capacity")
    return run_capacity(CapacityConfig(base=base, settings=level_settings(ns, by), start=ns.start,
                                       precision=ns.precision, max_levels=ns.max_levels, repeat=ns.repeat_boundary,
                                       launch=configs.launch_spec(ns), overwrite=ns.overwrite))
