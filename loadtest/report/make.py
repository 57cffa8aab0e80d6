"""A report from saved runs: load -> tables -> text, Markdown, CSV, JSON or HTML (and plots).
The command's options are in cli/report.py; ``matrix`` calls this too."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadtest.report.cost import Prices
    from loadtest.report.load import SavedRun

FORMATS = ("table", "markdown", "csv", "json", "html")


def make_report(paths: list[Path], *, by: list[str], fmt: str, output: Path | None, plots: Path | None,
                prices: Prices | None = None, title: str = "loadtest report",
                slos: dict[str, float | None] | None = None, slice_s: float | None = None) -> str:
    """Build the report in `fmt`; write it to `output` when given. Returns the text. ``slice_s``
    adds each run's time slices and their trend tests (report/slices.py)."""
    from loadtest.report.build import build_report
    from loadtest.report.load import find_failures, load_runs
    from loadtest.report.render import render_text

    runs = load_runs(paths)
    check_keys(runs, by)
    tables = build_report(runs, by, prices, find_failures(paths))
    if slice_s is not None:
        from loadtest.report.slices import slice_tables

        tables += slice_tables(runs, slice_s)
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


def check_keys(runs: list[SavedRun], by: list[str]) -> None:
    """Each --by key names something a run has: a misspelt key grouped every run under "-" and
    said nothing (ConfigError naming the valid keys otherwise)."""
    from loadtest.errors import ConfigError
    from loadtest.report.load import GROUP_KEYS

    for name in by:
        if not any(r.has_key(name) for r in runs):
            fields = sorted({k for r in runs for k in (r.summary.get("config") or {})
                             if isinstance(r.summary.get("config"), dict)})
            raise ConfigError(f"--by {name}: no run has it; use {', '.join(GROUP_KEYS)}, or a config/server field "
                              f"({', '.join(fields[:12])}{', ...' if len(fields) > 12 else ''})")

