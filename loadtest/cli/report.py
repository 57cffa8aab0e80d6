"""``loadtest report``: saved runs in, comparison tables, plots and an HTML page out (report/)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadtest.cli import argtypes, options
from loadtest.errors import ConfigError
from loadtest.report.make import FORMATS


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("report", help="compare saved runs: tables, plots, an HTML page",
                       description="Compare saved runs (directories with summary.json, or folders holding them) as "
                                   "tables, Markdown, CSV, JSON or one self-contained HTML page.")
    p.add_argument("runs", nargs="+", type=argtypes.input_path, metavar="RUN_DIR",
                   help="saved runs (directories with summary.json), or folders holding them (a matrix output)")
    p.add_argument("--by", default="engine,model",
                   help="group by these keys: engine, model, command, variant, run, or a config/server field "
                        "(default engine,model; with two keys the pivots have one column per value of the first "
                        "and one row per value of the second)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.add_argument("--output", type=argtypes.output_file, help="write the report to this file instead of stdout")
    p.add_argument("--plots", type=argtypes.output_dir, metavar="DIR", help="also save the plots here (needs loadtest[report])")
    p.add_argument("--slo-ttft-ms", type=argtypes.non_negative_float, help="draw this TTFT objective on the latency plot")
    p.add_argument("--slo-e2e-s", type=argtypes.non_negative_float,
                   help="draw this end-to-end objective on the latency plot")
    p.add_argument("--cost-per-hour", type=argtypes.non_negative_float, metavar="USD",
                   help="the server's price per hour (a GPU's)")
    p.add_argument("--price-per-1m-input", type=argtypes.non_negative_float, metavar="USD",
                   help="hosted API price per 1M input tokens")
    p.add_argument("--price-per-1m-output", type=argtypes.non_negative_float, metavar="USD",
                   help="hosted API price per 1M output tokens")
    p.add_argument("--slice", type=argtypes.seconds, metavar="WIDTH",
                   help="also cut each run into windows of this length (e.g. 10s): TTFT p50, output tokens/s and "
                        "errors per window, and a trend test over them (warm-up, throttling, drift)")
    options.wandb_project(p)
    options.debug(p)
    p.set_defaults(run=main)


def prices(ns: argparse.Namespace) -> Any:
    from loadtest.report.cost import Prices

    given = Prices(ns.cost_per_hour, ns.price_per_1m_input, ns.price_per_1m_output)
    if given.per_hour is not None and (given.per_1m_input is not None or given.per_1m_output is not None):
        raise ConfigError("give either --cost-per-hour or the --price-per-1m-* options, not both")
    return given if given.given else None


def main(ns: argparse.Namespace) -> int:
    from loadtest.report.make import make_report

    by = [b.strip() for b in ns.by.split(",") if b.strip()]
    if not 1 <= len(by) <= 3:
        raise ConfigError("--by takes one to three keys, e.g. engine,model")
    if ns.slice is not None and ns.slice <= 0:
        raise ConfigError(f"--slice must be a duration above 0, got {ns.slice:g}")
    if ns.format == "html" and ns.output is None:
        raise ConfigError("--format html needs --output FILE")
    from loadtest.run.output import writable_dir, writable_file

    if ns.output is not None:
        writable_file(ns.output)
    if ns.plots is not None:
        writable_dir(ns.plots, "--plots")
    text = make_report(list(ns.runs), by=by, fmt=ns.format, output=ns.output, plots=ns.plots, prices=prices(ns),
                       slos={"slo_ttft_s": ns.slo_ttft_ms / 1e3 if ns.slo_ttft_ms is not None else None,
                             "slo_e2e_s": ns.slo_e2e_s}, slice_s=ns.slice)
    if ns.wandb:
        from loadtest.report.load import load_runs
        from loadtest.report.wandb_sink import log_runs

        log_runs(load_runs(list(ns.runs)), ns.wandb)
    if ns.output is None:
        sys.stdout.write(text)
    else:
        print(f"report: {ns.output}", file=sys.stderr)
    return 0
