"""The report assembled: every table, from the loaded runs.

The runs table comes first (CSV output holds only it); the others appear when they have rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadtest.report.cost import Prices, cost_summary, describe
from loadtest.report.fit import fit_records
from loadtest.report.load import SavedRun, load_runs
from loadtest.report.tables import Column, Table, comparison_table, method_table, num, pivot_table

__all__ = ["Prices", "SavedRun", "build_report", "load_runs"]


def fit_table(runs: Sequence[SavedRun]) -> Table | None:
    rows = []
    for r in runs:
        f = fit_records(r.ok_records)
        if f is None:
            continue
        rows.append({"run": r.label, "engine": r.engine, "model": r.model, "requests": f.n,
                     "decode_tokens_per_s": f.decode_tokens_per_s,
                     "rate_ci": "-" if f.rate_ci is None else f"{f.rate_ci[0]:.1f} - {f.rate_ci[1]:.1f}",
                     "overhead_s": f.intercept_s,
                     "overhead_ci": "-" if f.intercept_ci is None else
                     f"{f.intercept_ci[0] * 1e3:.0f} - {f.intercept_ci[1] * 1e3:.0f}"})
    if not rows:
        return None
    cols = [Column("run", "run"), Column("engine", "engine"), Column("model", "model"),
            Column("requests", "requests"), Column("decode_tokens_per_s", "decode tok/s", num(1)),
            Column("rate_ci", "95% CI"), Column("overhead_s", "overhead ms", num(0, 1e3)),
            Column("overhead_ci", "95% CI ms")]
    return Table("Steady state: e2e = overhead + tokens / decode rate", cols, rows, name="fit",
                 notes=["Huber regression of each request's end-to-end time on its output tokens; 95% intervals "
                        "from 200 bootstrap resamples of the requests (seed 0)"])


def cost_table(runs: Sequence[SavedRun], prices: Prices) -> Table:
    cols = [Column("run", "run"), Column("engine", "engine"), Column("model", "model"), Column("command", "command"),
            Column("usd_per_1m_output_tokens", "$ per 1M output tokens", num(3)),
            Column("usd_per_1k_requests", "$ per 1k requests", num(4))]
    return Table("Cost", cols, cost_summary(list(runs), prices), notes=[describe(prices)], name="cost")


def failure_table(failures: Sequence[dict[str, Any]]) -> Table | None:
    if not failures:
        return None
    cols = [Column("engine", "engine"), Column("model", "model"), Column("error", "why")]
    return Table("Failed", cols, list(failures), name="failed")


def build_report(runs: Sequence[SavedRun], by: Sequence[str] = ("engine", "model"),
                 prices: Prices | None = None, failures: Sequence[dict[str, Any]] = ()) -> list[Table]:
    """Every table of the report, the runs table first (the one CSV output holds)."""
    main, groups = comparison_table(runs, by)
    tables: list[Table | None] = [
        main,
        pivot_table(groups, by, command="single", stat="tokens_per_s_mean", name="tokens_per_s",
                    title=f"tokens/s per request (single, mean): {by[1] if len(by) == 2 else ''} x "
                          f"{by[0] if by else ''}"),
        pivot_table(groups, by, command="throughput", stat="requests_per_min", name="requests_per_min",
                    title=f"requests/min (throughput): {by[1] if len(by) == 2 else ''} x {by[0] if by else ''}"),
        method_table(groups),
        fit_table(runs),
        cost_table(runs, prices) if prices is not None and prices.given else None,
        failure_table(failures),
    ]
    return [t for t in tables if t is not None]


def run_configs(runs: Sequence[SavedRun]) -> list[dict[str, Any]]:
    """What each run was: for the HTML page and JSON output."""
    return [{"run": r.label, "path": str(r.path), "command": r.command, "engine": r.engine, "model": r.model,
             "config": r.summary.get("config"), "client": r.summary.get("client"),
             "launch_command": (r.summary.get("server") or {}).get("launch_command", {}).get("shell")
             if isinstance(r.summary.get("server"), dict) else None}
            for r in runs]
