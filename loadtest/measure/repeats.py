"""Statistics over repeated runs (``--repeat N``): how sure a number is.

One run's output tokens/s is one draw; N identical runs give N draws, and their mean comes with a
95% confidence interval from Student's t (the runs are few, so the normal 1.96 would be too
narrow: with 3 runs the factor is 4.30), and a coefficient of variation that says how noisy one
run is. Per-request statistics (TTFT percentiles...) are also pooled over all the runs' requests.

The t quantile is loadtest.stats.dist's (the same one `compare` uses), checked against textbook
values in tests/unit/test_stats.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.measure.metrics import STAT_KEYS, Columns, compute_metrics, load_columns
from loadtest.stats.dist import t_ppf

CONFIDENCE = 0.95
INTERVAL_STATS = ("mean", "p50", "p90", "p99")
"""The statistics of each per-request metric that get an interval over runs (``ttft_s.p99``...)."""
SUMMED = ("window_s", "abandoned_tokens_received")
"""Run-level scalars that add up over the runs of a group (so do the ``*_total`` ones); every
other numeric scalar (requests_per_s, output_tokens_per_s...) is the mean over runs."""


# -- one metric over runs ---------------------------------------------------------------------------
def interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean over runs with its ``confidence`` interval (Student's t on n - 1 degrees of freedom),
    the runs' sample standard deviation (n - 1) and coefficient of variation (std / mean). With one
    run there is no spread: the interval, std and CV are None (not measured)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    n = int(v.size)
    out: dict[str, Any] = {"n": n, "mean": float(v.mean()) if n else None, "std": None, "cv": None,
                           "ci_low": None, "ci_high": None, "half_width": None, "half_width_pct": None,
                           "values": [float(x) for x in v]}
    if n < 2:
        return out
    mean, std = float(v.mean()), float(v.std(ddof=1))
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    out.update(std=std, ci_low=mean - half, ci_high=mean + half, half_width=half,
               cv=std / abs(mean) if mean else None, half_width_pct=100.0 * half / abs(mean) if mean else None)
    return out


_SHORT = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s", "itl": "itl_s", "queue": "queue_s"}
_NAME = re.compile(r"^(?P<metric>[a-z][a-z0-9_]*)(?:[.:](?P<stat>mean|p50|p90|p99))?$")


def metric_key(text: str) -> str | None:
    """A metric's name as the group's ``repeat.metrics`` keys it: ``output_tokens_per_s``,
    ``ttft_s.p99``; also written ``ttft:p99`` (as --slo does). None when ``text`` cannot be one."""
    m = _NAME.match(text.strip().lower())
    if m is None:
        return None
    metric = _SHORT.get(m["metric"], m["metric"])
    return f"{metric}.{m['stat']}" if m["stat"] else metric


def converged(block: dict[str, Any] | None, pct: float) -> bool:
    """The interval's half width is under ``pct`` percent of the mean."""
    return bool(block and block.get("half_width_pct") is not None and block["half_width_pct"] < pct)


# -- a group of runs --------------------------------------------------------------------------------
def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def metric_names(metrics: dict[str, Any]) -> list[str]:
    """The names a run's metrics give an interval to: each numeric run-level scalar
    (``output_tokens_per_s``) and, for each per-request statistic block, ``NAME.STAT`` for the
    statistics in INTERVAL_STATS (``ttft_s.p99``). Totals are left out (they grow with the run)."""
    names = []
    for key, value in metrics.items():
        if isinstance(value, dict) and "count" in value and any(k in value for k in STAT_KEYS):
            names += [f"{key}.{stat}" for stat in INTERVAL_STATS if stat in value]
        elif (_number(value) or value is None) and not key.endswith("_total") and key not in SUMMED:
            names.append(key)
    return names


def lookup(metrics: dict[str, Any], name: str) -> float | None:
    """``output_tokens_per_s`` or ``ttft_s.p99`` in a run's metrics (None: not measured)."""
    key, _, stat = name.partition(".")
    value = metrics.get(key)
    if stat:
        value = value.get(stat) if isinstance(value, dict) else None
    return float(value) if _number(value) else None


def intervals(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric, its interval over the runs' summaries (their ``metrics`` blocks). A metric no run
    measured (an embeddings run has no TTFT; a summary from an older version lacks one) is left out;
    one some runs lack is taken over the runs that have it (its ``n`` says how many)."""
    names: dict[str, None] = {}
    for summary in runs:
        names.update(dict.fromkeys(metric_names(summary.get("metrics") or {})))
    out = {}
    for name in names:
        values = [lookup(s.get("metrics") or {}, name) for s in runs]
        present = [v for v in values if v is not None]
        if present:
            out[name] = interval(present)
    return out


def pooled(directories: Iterable[Path], runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The counts/metrics/... blocks of a group as one summary has them: per-request statistics over
    every measured request of every run (their requests.jsonl streamed into one set of columns),
    totals and the window summed, and every other run-level number (rates) the mean over runs."""
    cols = Columns()
    for directory in directories:
        path = directory / "requests.jsonl"
        if path.is_file():
            load_columns(path, into=cols)
    windows = [s["metrics"]["window_s"] for s in runs if _number((s.get("metrics") or {}).get("window_s"))]
    result = compute_metrics(cols, window_s=sum(windows) if windows else None)
    metrics = result["metrics"]
    for key, value in list(metrics.items()):
        if isinstance(value, dict) or key.endswith("_total") or key in SUMMED:
            continue
        values = [v for v in ((s.get("metrics") or {}).get(key) for s in runs) if _number(v)]
        if values:
            metrics[key] = float(np.mean(values))
        elif _number(value):
            metrics[key] = None  # no run measured it alone: a pooled ratio would mix the runs' clocks
    return result
