"""``report --slice 10s``: each run cut into windows of equal length, and a trend test over them.

A run's numbers are averages over its window; a server that warms up, throttles, heats up or
leaks memory changes *during* the run, and the average hides it. Per window: requests started,
the TTFT median (requests whose first token came in the window), output tokens/s (each request's
tokens spread evenly over its decode span, as the timeline plot does) and failed requests. Each
series is tested for a monotonic trend (Mann-Kendall, Sen's slope as its size), the p-values
adjusted for the number of series tested (Benjamini-Hochberg). The last window is left out of the
test when it is shorter than the others (a run's tail drains and would read as a fall).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from loadtest.errors import ConfigError
from loadtest.measure.record import ABANDONED, CANCELLED
from loadtest.report.load import SavedRun, iter_jsonl
from loadtest.report.tables import Column, Table, num
from loadtest.report.timeline import read_client_series
from loadtest.stats.significance import benjamini_hochberg, mann_kendall

MIN_WINDOWS = 5
"""Mann-Kendall cannot reach p < 0.05 with fewer than five points (four in a row give 0.09)."""
MAX_WINDOWS = 1000
ALPHA = 0.05
SERIES = (("ttft_p50_s", "TTFT p50", "ms", 1e3, "lower"), ("output_tokens_per_s", "output tokens/s", "tok/s", 1.0,
                                                             "higher"), ("errors", "errors", "per window", 1.0, "lower"))


def _failed_ends(run: SavedRun) -> np.ndarray:
    """When each failed measured request ended (else started): cancelled and abandoned ones are not failures."""
    out = []
    for row in iter_jsonl(run.path / "requests.jsonl"):
        if row.get("warmup") or row.get("ok") or row.get("error_kind") in (CANCELLED, ABANDONED):
            continue
        t = row.get("end_s") if isinstance(row.get("end_s"), (int, float)) else row.get("start_s")
        if isinstance(t, (int, float)):
            out.append(float(t))
    return np.sort(np.asarray(out, dtype=float))


def run_windows(run: SavedRun, width_s: float) -> list[dict[str, Any]]:
    """One row per window of the run, from its first measured start to its last end."""
    series = read_client_series(run.path / "requests.jsonl")
    if series is None:
        return []
    lo, hi = series.span
    count = max(1, math.ceil((hi - lo) / width_s - 1e-9))
    if count > MAX_WINDOWS:
        least = (hi - lo) / MAX_WINDOWS
        step = 10.0 ** (math.floor(math.log10(least)) - 1)  # two significant digits, rounded up
        raise ConfigError(f"--slice {width_s:g}s cuts {run.label} into {count:,} windows (at most {MAX_WINDOWS:,}): "
                          f"use {math.ceil(least / step) * step:.2g}s or more")
    edges = lo + width_s * np.arange(count + 1)
    ends = np.minimum(edges[1:], hi)
    rates = series.tokens_per_s(edges) * width_s  # tokens in each window
    failed = _failed_ends(run)
    digits = 0 if width_s >= 1 and float(width_s).is_integer() else max(1, math.ceil(-math.log10(width_s)) + 1)
    rows = []
    for i in range(count):
        a, b = edges[i], edges[i + 1]
        span = ends[i] - a
        first = (series.first_token_s >= a) & (series.first_token_s < b)
        ttft = series.ttft_s[first]
        full = bool(span >= width_s * (1 - 1e-9))  # the last window may be shorter: its end shown finer
        rows.append({"run": run.label, "window": f"{a - lo:.{digits}f}-{ends[i] - lo:.{digits + (not full)}f} s",
                     "from_s": float(a - lo), "to_s": float(ends[i] - lo), "full": full,
                     "requests": int(np.count_nonzero((series.starts >= a) & (series.starts < b))),
                     "ttft_p50_s": float(np.median(ttft)) if ttft.size else None,
                     "output_tokens_per_s": float(rates[i] / span) if span > 0 else None,
                     "errors": int(np.count_nonzero((failed >= a) & ((failed < b) if i < count - 1 else (failed <= b))))})
    return rows


def _trend(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    tested = [r for r in rows if r["full"] and r[key] is not None]
    if len(tested) < MIN_WINDOWS:
        return None
    if key == "errors" and not any(r[key] for r in tested):
        return None
    mk = mann_kendall([r[key] for r in tested], [(r["from_s"] + r["to_s"]) / 2 for r in tested])
    return {"windows": len(tested), "p": mk.p, "tau": mk.tau, "slope_per_min": mk.slope * 60.0}


def _meaning(key: str, better: str, rising: bool) -> str:
    worse = rising == (better == "lower")
    if worse:
        return "degrading over the run (throttling, thermal or memory drift, a growing queue?)"
    return "improving over the run (warm-up? consider --warmup)"


def slice_tables(runs: Sequence[SavedRun], width_s: float) -> list[Table]:
    """The windows table and the trends table (when any run has enough windows to test)."""
    windows: list[dict[str, Any]] = []
    trends: list[dict[str, Any]] = []
    short: list[str] = []
    for run in runs:
        rows = run_windows(run, width_s)
        windows += rows
        if not rows:
            continue
        found = False
        for key, label, unit, scale, better in SERIES:
            t = _trend(rows, key)
            if t is None:
                continue
            found = True
            trends.append({"run": run.label, "metric": label, "series": key, "unit": unit, "scale": scale,
                           "better": better, **t})
        if not found:
            short.append(run.label)
    for t, adj in zip(trends, benjamini_hochberg([t["p"] for t in trends])):
        t["p_adjusted"] = adj
        rising = t["slope_per_min"] > 0
        t["trend"] = (("rising: " if rising else "falling: ") + _meaning(t["series"], t["better"], rising)
                      if adj < ALPHA and t["tau"] != 0 else "no significant trend")
        t["change_per_min"] = f"{_signed(t['slope_per_min'] * t['scale'])} {t['unit']}"
    out = [Table(f"Time slices ({width_s:g} s windows)", [
        Column("run", "run"), Column("window", "window"), Column("requests", "started"),
        Column("ttft_p50_s", "TTFT p50 ms", num(1, 1e3)), Column("output_tokens_per_s", "out tok/s", num(1)),
        Column("errors", "errors")], [{k: v for k, v in r.items() if k != "full"} for r in windows], name="slices",
        notes=[("per window: requests started in it; TTFT median of the requests whose first token came in it; "
                "output tokens/s with each request's tokens spread over its decode span (first token to end); failed "
                "requests that ended in it")])]
    notes = [("Mann-Kendall test over the full windows (the last, shorter one left out), Sen's slope per minute; "
              f"p-values adjusted for {len(trends)} series (Benjamini-Hochberg), a trend when below {ALPHA:g}")]
    if short:
        notes.append(f"too few windows for a trend test (need {MIN_WINDOWS} full ones; a shorter --slice gives more): "
                     + ", ".join(short))
    if not trends:
        out[0].notes += notes[1:]
        return out
    out.append(Table("Trends over each run", [
        Column("run", "run"), Column("metric", "metric"), Column("windows", "windows"),
        Column("change_per_min", "change per minute"), Column("p_adjusted", "p (adj.)", _p), Column("trend", "trend")],
        [{k: t[k] for k in ("run", "metric", "windows", "change_per_min", "p_adjusted", "trend", "tau",
                            "slope_per_min", "p")} for t in trends], name="trends", notes=notes))
    return out


def _signed(x: float) -> str:
    return f"{x:+,.0f}" if abs(x) >= 100 else f"{x:+.1f}" if abs(x) >= 1 else f"{x:+.3g}"


def _p(v: Any) -> str:
    return "-" if v is None else "<0.001" if v < 0.001 else f"{v:.3g}"
