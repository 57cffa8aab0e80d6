"""Comparison tables from saved runs: one row per group of runs, pivots of models x engines, and
the method table. Pure data in, `Table` objects out; `render.py` turns them into text.

Runs are grouped by the ``--by`` keys and the command. Runs whose settings differ (max tokens,
concurrency, dataset, seed, client version, ...) are never merged: a setting that differs among
the runs becomes part of the group key and is shown in a "settings" column, and a note names it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadtest.measure.metrics import summarize
from loadtest.report.load import MISSING, SavedRun, dig
from loadtest.report.rates import GENERATION_KEYS, RATE_COLUMNS, group_rate_stats, is_pooling, notes_for, present
from loadtest.report.server import group_server_stats

# (name, where in summary.json, compared across which runs: "all" or "command")
SETTINGS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("max_tokens", ("config", "max_tokens"), "all"),
    ("concurrency", ("config", "concurrency"), "command"),
    ("request_rate", ("config", "request_rate"), "command"),   # open-loop runs of a rate sweep
    ("dataset", ("config", "dataset"), "all"),
    ("prompt_tokens", ("config", "prompt_tokens"), "all"),
    ("shared_prefix_tokens", ("config", "shared_prefix_tokens"), "all"),
    ("seed", ("config", "seed"), "all"),
    ("api", ("config", "api"), "all"),
    ("stream", ("config", "stream"), "all"),
    ("ignore_eos", ("config", "ignore_eos"), "all"),
    ("temperature", ("config", "temperature"), "all"),
    ("loadtest", ("client", "loadtest_version"), "all"),
)


@dataclass
class Column:
    key: str
    label: str
    fmt: Callable[[Any], str] = str


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    bold: set[tuple[int, str]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    name: str = "table"


def num(digits: int, scale: float = 1.0) -> Callable[[Any], str]:
    def f(v: Any) -> str:
        if v is None or v == MISSING:
            return MISSING
        if not isinstance(v, (int, float)):
            return str(v)
        return f"{v * scale:,.{digits}f}"
    return f


def setting(run: SavedRun, name: str) -> Any:
    for n, path, _ in SETTINGS:
        if n == name:
            return dig(run.summary, *path)
    return None


def differing_settings(runs: Sequence[SavedRun]) -> dict[str, list[Any]]:
    """Settings that take more than one value among the runs (concurrency: among runs of the same
    command, since single runs always have 1), with their values."""
    out: dict[str, list[Any]] = {}
    for name, path, scope in SETTINGS:
        scopes = {r.command for r in runs} if scope == "command" else {None}
        values: list[Any] = []
        differs = False
        for cmd in scopes:
            vals = {_hashable(dig(r.summary, *path)) for r in runs if cmd is None or r.command == cmd}
            differs |= len(vals) > 1
            values.extend(v for v in sorted(vals, key=str) if v not in values)
        if differs:
            out[name] = values
    return out


def _hashable(v: Any) -> Any:
    return str(v) if isinstance(v, (dict, list)) else v


@dataclass
class Group:
    key: tuple[str, ...]          # the --by values, then the command
    settings: str                 # differing settings, "" when none differ
    runs: list[SavedRun]


def group_runs(runs: Sequence[SavedRun], by: Sequence[str]) -> tuple[list[Group], dict[str, list[Any]]]:
    differs = differing_settings(runs)
    groups: dict[tuple[tuple[str, ...], str], Group] = {}
    for r in runs:
        key = (*(r.key(b) for b in by), r.command)
        sig = ", ".join(f"{n}={setting(r, n)}" for n in differs)
        groups.setdefault((key, sig), Group(key, sig, [])).runs.append(r)
    return list(groups.values()), differs


def _pooled(group: Group, name: str, stat: str) -> float | None:
    """A per-request statistic: from summary.json for one run; pooled over the requests of all runs
    of the group (runs with identical settings) when there are several."""
    if len(group.runs) == 1:
        return group.runs[0].metric(name, stat)
    values = [v for r in group.runs for rec in r.ok_records if isinstance(v := rec.get(name), (int, float))]
    if not values:
        return None
    return summarize(values)[stat]


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def group_stats(group: Group) -> dict[str, Any]:
    runs = group.runs
    # requests and errors only from runs whose both counts are integers: a count that is missing or
    # of the wrong type is not measured ('-'), never 0
    counted = [(c, f) for r in runs if (c := r.count("completed")) is not None and (f := r.count("failed")) is not None]
    completed, failed = sum(c for c, _ in counted), sum(f for _, f in counted)
    peaks = [p for r in runs if (p := r.peak_memory_mb) is not None]
    return {
        "runs": len(runs),
        "requests": completed + failed if counted else None,
        "tokens_per_s_mean": _pooled(group, "tokens_per_s", "mean"),
        "tokens_per_s_p50": _pooled(group, "tokens_per_s", "p50"),
        "requests_per_min": _mean([r.metric("requests_per_min") for r in runs]),
        "output_tokens_per_s": _mean([r.metric("output_tokens_per_s") for r in runs]),
        "ttft_p50_s": _pooled(group, "ttft_s", "p50"),
        "ttft_p99_s": _pooled(group, "ttft_s", "p99"),
        "tpot_p50_s": _pooled(group, "tpot_s", "p50"),
        "tpot_p99_s": _pooled(group, "tpot_s", "p99"),
        "error_rate": failed / (completed + failed) if completed + failed else None,
        "peak_memory_gb": max(peaks) / 1024 if peaks else None,
    }


STAT_COLUMNS = [
    Column("runs", "runs"),
    Column("requests", "requests"),
    Column("tokens_per_s_mean", "tok/s mean", num(1)),
    Column("tokens_per_s_p50", "tok/s p50", num(1)),
    Column("requests_per_min", "req/min", num(1)),
    Column("output_tokens_per_s", "out tok/s", num(1)),
    Column("ttft_p50_s", "TTFT p50 ms", num(1, 1e3)),
    Column("ttft_p99_s", "TTFT p99 ms", num(1, 1e3)),
    Column("tpot_p50_s", "TPOT p50 ms", num(2, 1e3)),
    Column("tpot_p99_s", "TPOT p99 ms", num(2, 1e3)),
    Column("error_rate", "errors %", num(1, 100)),
    Column("peak_memory_gb", "peak mem GB", num(2)),
]

SERVER_COLUMNS = [
    Column("server_kv_cache_max", "KV max %", num(1, 100)),
    Column("server_queue_p99_s", "queue p99 ms", num(1, 1e3)),
    Column("server_preemptions", "preemptions", num(0)),
    Column("server_prefix_cache_hit_rate", "prefix hit %", num(1, 100)),
]
SERVER_NOTE = ("KV max, queue p99, preemptions, prefix hit: from the server's /metrics over the run (KV-cache "
               "usage's largest sample, the server's own queue-time p99, preemptions counted, the prefix-cache hit "
               "rate); several runs in a row: the largest KV max and queue p99, preemptions summed, the mean "
               "hit rate; - where the server did not expose it")


RUNS_NOTE = ("tok/s: per request, completion tokens / end-to-end time (single); req/min and out tok/s: over the "
             "measured window; TTFT/TPOT percentiles over requests; peak mem: the launched engine's (GPU if sampled, "
             "else RSS of its process tree)")
ALL_POOLING_NOTE = ("req/min: over the measured window; peak mem: the launched engine's (GPU if sampled, else RSS of "
                    "its process tree)")


def comparison_table(runs: Sequence[SavedRun], by: Sequence[str]) -> tuple[Table, list[Group]]:
    groups, differs = group_runs(runs, by)
    groups.sort(key=lambda g: (g.key, g.settings))
    columns = [Column(b, b) for b in by] + [Column("command", "command")]
    if differs:
        columns.append(Column("settings", "settings"))
    all_pooling = bool(groups) and all(is_pooling(r) for g in groups for r in g.runs)
    columns += [c for c in STAT_COLUMNS if not (all_pooling and c.key in GENERATION_KEYS)]
    rates = [group_rate_stats(g.runs) for g in groups]
    rate_keys = present(rates)
    columns += [Column(k, label, num(d, scale)) for k, label, d, scale in RATE_COLUMNS if k in rate_keys]
    server = [group_server_stats(g.runs) for g in groups]
    with_server = any(v is not None for s in server for v in s.values())
    if with_server:
        columns += SERVER_COLUMNS
    rows = []
    for g, s, rate in zip(groups, server, rates):
        row: dict[str, Any] = dict(zip([*by, "command"], g.key))
        if differs:
            row["settings"] = g.settings
        row.update(group_stats(g))
        if all(is_pooling(r) for r in g.runs):
            row.update(dict.fromkeys(GENERATION_KEYS))  # not a generation: no output tok/s (not 0), TTFT, TPOT
        row.update({k: rate[k] for k in rate_keys})
        if with_server:
            row.update(s)
        rows.append(row)
    notes = [ALL_POOLING_NOTE if all_pooling else RUNS_NOTE, *notes_for(rate_keys)]
    if with_server:
        notes.append(SERVER_NOTE)
    if differs:
        notes.insert(0, "runs differ in " + "; ".join(f"{n} ({', '.join(map(str, v))})" for n, v in differs.items())
                     + ": such runs are not merged, the settings column tells them apart")
    return Table("Runs compared", columns, rows, notes=notes, name="runs"), groups


def pivot_table(groups: Sequence[Group], by: Sequence[str], *, command: str, stat: str, title: str,
                digits: int = 1, name: str = "pivot") -> Table | None:
    """Rows: the second --by key's values; columns: the first's; cell: `stat` of the `command`
    runs; the best cell of each row in bold (highest; several values in a cell: no bold)."""
    if len(by) != 2:
        return None
    cells: dict[tuple[str, str], list[float | None]] = {}
    for g in groups:
        if g.key[-1] != command:
            continue
        col, row = g.key[0], g.key[1]
        cells.setdefault((row, col), []).append(group_stats(g)[stat])
    if not any(v is not None for vals in cells.values() for v in vals):
        return None  # e.g. embeddings runs: no tokens/s to pivot
    cols = sorted({c for _, c in cells})
    row_keys = sorted({r for r, _ in cells})
    fmt = num(digits)
    rows: list[dict[str, Any]] = []
    bold: set[tuple[int, str]] = set()
    for i, rk in enumerate(row_keys):
        row: dict[str, Any] = {by[1]: rk}
        best: tuple[float, str] | None = None
        for c in cols:
            vals = cells.get((rk, c))
            if not vals:
                row[c] = None
            elif len(vals) == 1:
                row[c] = vals[0]
                if vals[0] is not None and (best is None or vals[0] > best[0]):
                    best = (vals[0], c)
            else:
                row[c] = " / ".join(fmt(v) for v in vals)
        if best is not None and sum(isinstance(row[c], float) for c in cols) > 1:
            bold.add((i, best[1]))
        rows.append(row)
    columns = [Column(by[1], f"{by[1]} \\ {by[0]}")] + [Column(c, c, fmt) for c in cols]
    notes = ["a cell with several values: runs whose settings differ (see the runs table)"] \
        if any(isinstance(r[c], str) for r in rows for c in cols) else []
    return Table(title, columns, rows, bold=bold, name=name, notes=notes)


def method_table(groups: Sequence[Group]) -> Table | None:
    """Speed and peak memory per engine variant (eager vs compiled, dtype, attention) and model, as
    the Lit-GPT tables; only for runs that launched their engine (the variant is known)."""
    by_variant: dict[tuple[str, str, str], dict[str, Any]] = {}
    for g in groups:
        for r in g.runs:
            if not dig(r.summary, "server", "engine"):
                continue
            key = (r.engine, r.variant, r.model)
            entry = by_variant.setdefault(key, {"engine": key[0], "variant": key[1], "model": key[2],
                                                "tokens_per_s_mean": None, "requests_per_min": None,
                                                "peak_memory_gb": None})
            if r.command == "single" and entry["tokens_per_s_mean"] is None:
                entry["tokens_per_s_mean"] = r.metric("tokens_per_s", "mean")
            if r.command == "throughput" and entry["requests_per_min"] is None:
                entry["requests_per_min"] = r.metric("requests_per_min")
            if (p := r.peak_memory_mb) is not None:
                entry["peak_memory_gb"] = max(entry["peak_memory_gb"] or 0.0, p / 1024)
    if not by_variant:
        return None
    columns = [Column("engine", "engine"), Column("variant", "variant"), Column("model", "model"),
               Column("tokens_per_s_mean", "tok/s (single)", num(1)),
               Column("requests_per_min", "req/min (throughput)", num(1)),
               Column("peak_memory_gb", "peak mem GB", num(2))]
    return Table("Method: speed and peak memory per engine variant", columns,
                 [by_variant[k] for k in sorted(by_variant)], name="method")
