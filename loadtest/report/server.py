"""The server's side of a saved run, as the /metrics scraper leaves it (issue 23): summary.json's
``server_metrics`` block gives the runs table its server columns, server_metrics.jsonl's samples
give the per-run timeline its server panel.

Every key may be absent (an older run, a server without /metrics): then these functions return
None, and the report shows nothing server-side rather than a column of zeros. Several sources
(replicas, a DCGM exporter) are combined as the scraper's contract says: request counts and power
summed over sources, KV-cache usage the fullest source's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.report.load import SavedRun, dig, iter_jsonl

SERVER_FILE = "server_metrics.jsonl"
KNOWN = ("running", "waiting", "kv_cache_usage", "gpu_power_w")
SUMMED = frozenset({"running", "waiting", "gpu_power_w"})  # the others: max over sources
HOLD_INTERVALS = 2.5
"""A source's last sample stands for it until this many sampling intervals have passed (a missed
sample is not a drop to zero; a source that stopped answering does not linger)."""


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


# -- summary.json: the runs table's columns -----------------------------------------------------
def server_stats(run: SavedRun) -> dict[str, float | None]:
    """The server columns of one run; every value None when the run has no server_metrics."""
    known = dig(run.summary, "server_metrics", "known")
    return {"server_kv_cache_max": _num(dig(known, "kv_cache_usage", "max")),
            "server_queue_p99_s": _num(dig(known, "queue_s", "p99")),
            "server_preemptions": _num(dig(known, "preemptions")),
            "server_prefix_cache_hit_rate": _num(dig(known, "prefix_cache_hit_rate"))}


def group_server_stats(runs: Sequence[SavedRun]) -> dict[str, float | None]:
    """Over the runs of a group (identical settings, pooled): a server's percentiles cannot be
    pooled from summaries, so KV max and queue p99 are the largest run's; preemptions are summed,
    the prefix-cache hit rate is the runs' mean."""
    each = [server_stats(r) for r in runs]

    def vals(k: str) -> list[float]:
        return [v for s in each if (v := s[k]) is not None]

    kv, queue, pre, hit = (vals(k) for k in ("server_kv_cache_max", "server_queue_p99_s", "server_preemptions",
                                              "server_prefix_cache_hit_rate"))
    return {"server_kv_cache_max": max(kv) if kv else None,
            "server_queue_p99_s": max(queue) if queue else None,
            "server_preemptions": sum(pre) if pre else None,
            "server_prefix_cache_hit_rate": sum(hit) / len(hit) if hit else None}


# -- server_metrics.jsonl: the timeline's server panel ------------------------------------------
@dataclass(frozen=True)
class ServerSeries:
    """Combined over sources at every time any source was sampled. A series is None when no
    source ever reported it, NaN at times when no source had a fresh value."""

    t_s: np.ndarray
    running: np.ndarray | None
    waiting: np.ndarray | None
    kv_cache_usage: np.ndarray | None
    gpu_power_w: np.ndarray | None
    sources: int

    def clipped(self, lo_s: float, hi_s: float) -> ServerSeries | None:
        """The samples within [lo_s, hi_s] (the run's span on the run clock), or None when none."""
        keep = (self.t_s >= lo_s) & (self.t_s <= hi_s)
        if not keep.any():
            return None
        cut = {k: None if (a := getattr(self, k)) is None else a[keep] for k in KNOWN}
        return ServerSeries(self.t_s[keep], sources=self.sources, **cut)


def _interval_s(per_source: dict[str, list[tuple[float, list[float]]]]) -> float | None:
    """The sampling interval when the summary does not say: the median gap between a source's samples."""
    gaps = np.concatenate([np.diff(sorted(t for t, _ in samples)) for samples in per_source.values()])
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if gaps.size else None


def read_server_series(path: Path, interval_s: float | None = None) -> ServerSeries | None:
    """server_metrics.jsonl streamed (only the four known values of each sample are kept), then
    each source's value held from its sample until its next one (a failed sample ends the hold)
    and combined over sources. None when the file is missing or has no ok sample."""
    per_source: dict[str, list[tuple[float, list[float]]]] = {}
    ok_times: set[float] = set()
    for row in iter_jsonl(path):
        t = _num(row.get("t_s"))
        if t is None:
            continue
        known = row.get("known") if row.get("ok") is True else None
        if isinstance(known, dict):
            values = [math.nan if (v := _num(known.get(k))) is None else v for k in KNOWN]
            ok_times.add(t)
        else:
            values = [math.nan] * len(KNOWN)
        per_source.setdefault(str(row.get("source", "")), []).append((t, values))
    if not ok_times:
        return None
    times = np.array(sorted(ok_times))
    interval = interval_s or _interval_s(per_source)
    hold = HOLD_INTERVALS * interval if interval else math.inf
    held = []  # per source: (len(times), len(KNOWN)) values at the common times
    for samples in per_source.values():
        samples.sort(key=lambda s: s[0])
        src_t = np.array([s[0] for s in samples])
        src_v = np.array([s[1] for s in samples], dtype=float)
        idx = np.searchsorted(src_t, times, side="right") - 1
        fresh = (idx >= 0) & (times - src_t[np.maximum(idx, 0)] <= hold)
        held.append(np.where(fresh[:, None], src_v[np.maximum(idx, 0)], math.nan))
    stack = np.stack(held)  # sources x times x known
    out: dict[str, np.ndarray | None] = {}
    for j, key in enumerate(KNOWN):
        col = stack[:, :, j]
        if np.isnan(col).all():
            out[key] = None
            continue
        none = np.isnan(col).all(axis=0)
        combined = np.nansum(col, axis=0) if key in SUMMED else np.fmax.reduce(col, axis=0)
        out[key] = np.where(none, math.nan, combined)
    return ServerSeries(times, sources=len(per_source), **out)


def run_server_series(run: SavedRun) -> ServerSeries | None:
    interval = _num(dig(run.summary, "server_metrics", "interval_s"))
    return read_server_series(run.path / SERVER_FILE, interval)
