"""The ``loadtest report`` driver: arguments, then load -> tables -> text / plots / HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from loadtest.cli.argtypes import non_negative_float as _non_negative
from loadtest.errors import ConfigError

if TYPE_CHECKING:
    from loadtest.report.cost import Prices

FORMATS = ("table", "markdown", "csv", "json", "html")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="saved runs (directories with summary.json), or folders holding them (a matrix output)")
    p.add_argument("--by", default="engine,model",
                   help="group by these keys: engine, model, command, variant, run, or a config/server field "
                        "(default engine,model; with two keys the pivots have one column per value of the first "
                        "and one row per value of the second)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.add_argument("--output", type=Path, help="write the report to this file instead of stdout")
    p.add_argument("--plots", type=Path, metavar="DIR", help="also save the plots here (needs loadtest[report])")
    p.add_argument("--slo-ttft-ms", type=_non_negative, help="draw this TTFT objective on the latency plot")
    p.add_argument("--slo-e2e-s", type=_non_negative, help="draw this end-to-end objective on the latency plot")
    p.add_argument("--cost-per-hour", type=_non_negative, metavar="USD", help="the server's price per hour (a GPU's)")
    p.add_argument("--price-per-1m-input", type=_non_negative, metavar="USD",
                   help="hosted API price per 1M input tokens")
    p.add_argument("--price-per-1m-output", type=_non_negative, metavar="USD",
                   help="hosted API price per 1M output tokens")
    p.add_argument("--wandb", metavar="PROJECT", help="also log the runs to Weights & Biases (needs wandb)")


def prices_from_args(ns: argparse.Namespace) -> Prices | None:
    from loadtest.report.cost import Prices

    prices = Prices(ns.cost_per_hour, ns.price_per_1m_input, ns.price_per_1m_output)
    if prices.per_hour is not None and (prices.per_1m_input is not None or prices.per_1m_output is not None):
        raise ConfigError("give either --cost-per-hour or the --price-per-1m-* options, not both")
    return prices if prices.given else None


def make_report(paths: list[Path], *, by: list[str], fmt: str, output: Path | None, plots: Path | None,
                prices: Prices | None = None, title: str = "loadtest report",
                slos: dict[str, float | None] | None = None) -> str:
    """Build the report in `fmt`; write it to `output` when given. Returns the text."""
    from loadtest.report.build import build_report
    from loadtest.report.load import find_failures, load_runs
    from loadtest.report.render import render_text

    runs = load_runs(paths)
    tables = build_report(runs, by, prices, find_failures(paths))
    if fmt == "html":
        from loadtest.report.html import render_html

        text = render_html(runs, tables, title=title, by=by, slos=slos)
    else:
        text = render_text(tables, fmt)
    if plots is not None:
        from loadtest.report.plots import save_plots

        for path in save_plots(runs, plots, by, slos):
            print(f"plot: {path}", file=sys.stderr)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    return text


def run(ns: argparse.Namespace) -> int:
    by = [b.strip() for b in ns.by.split(",") if b.strip()]
    if not 1 <= len(by) <= 3:
        raise ConfigError("--by takes one to three keys, e.g. engine,model")
    if ns.format == "html" and ns.output is None:
        raise ConfigError("--format html needs --output FILE")
    text = make_report(list(ns.runs), by=by, fmt=ns.format, output=ns.output, plots=ns.plots,
                       prices=prices_from_args(ns),
                       slos={"slo_ttft_s": ns.slo_ttft_ms / 1e3 if ns.slo_ttft_ms is not None else None,
                             "slo_e2e_s": ns.slo_e2e_s})
    if ns.wandb:
        from loadtest.report.load import load_runs
        from loadtest.report.wandb_sink import log_runs

        log_runs(load_runs(list(ns.runs)), ns.wandb)
    if ns.output is None:
        sys.stdout.write(text)
    else:
        print(f"report: {ns.output}", file=sys.stderr)
    return 0
