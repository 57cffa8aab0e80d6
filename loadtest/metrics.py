"""Run-level metrics, derived from per-request records (which hold the raw timings)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .record import CANCELLED, RequestRecord

STAT_KEYS = ("mean", "p50", "p90", "p95", "p99", "min", "max", "std")
_QUANTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}


def summarize(values: Sequence[float] | np.ndarray, weights: np.ndarray | None = None) -> dict[str, Any]:
    """Statistics of a sample; every field None (not measured) when the sample is empty."""
    v = np.asarray(values, dtype=float)
    out: dict[str, Any] = {"count": int(v.size)}
    if v.size == 0:
        return out | {k: None for k in STAT_KEYS}
    if weights is None:
        out["mean"] = float(v.mean())
        out.update({k: float(np.percentile(v, q)) for k, q in _QUANTILES.items()})
        out["std"] = float(v.std())
    else:
        w = np.asarray(weights, dtype=float)
        order = np.argsort(v, kind="stable")
        v_sorted, cum = v[order], np.cumsum(w[order])
        total = cum[-1]
        mean = float((v * w).sum() / total)
        out["mean"] = mean
        for k, q in _QUANTILES.items():
            idx = int(np.searchsorted(cum, q / 100 * total - 1e-12 * total, side="left"))
            out[k] = float(v_sorted[min(idx, v.size - 1)])
        out["std"] = float(np.sqrt((w * (v - mean) ** 2).sum() / total))
        out["weight"] = float(total)
    out["min"], out["max"] = float(v.min()), float(v.max())
    return {k: out[k] for k in ("count", *STAT_KEYS, *(["weight"] if "weight" in out else []))}


def itl_samples(records: Sequence[RequestRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(per-token ITL values, weights): chunk gaps shared among the tokens of the later chunk."""
    values: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for r in records:
        if not r.chunk_offsets_s or not r.chunk_tokens or len(r.chunk_offsets_s) < 2:
            continue
        gaps = np.diff(np.asarray(r.chunk_offsets_s))
        k = np.asarray(r.chunk_tokens[1:])
        mask = k > 0
        values.append(gaps[mask] / k[mask])
        weights.append(k[mask])
    if not values:
        return np.empty(0), np.empty(0)
    return np.concatenate(values), np.concatenate(weights)


def _column(records: Sequence[RequestRecord], name: str) -> list[float]:
    return [v for r in records if (v := getattr(r, name)) is not None]


def compute_metrics(records: Sequence[RequestRecord], *, window_s: float | None) -> dict[str, Any]:
    """Everything in summary.json's counts/metrics/token_source/errors, from measured records
    (warm-up records must already be excluded by the caller)."""
    ok = [r for r in records if r.ok]
    cancelled = sum(1 for r in records if r.error_kind == CANCELLED)
    failed = [r for r in records if not r.ok and r.error_kind != CANCELLED]
    metrics: dict[str, Any] = {
        name: summarize(_column(ok, name))
        for name in ("tokens_per_s", "ttft_s", "ttft_content_s", "tpot_s", "decode_tokens_per_s", "e2e_s")
    }
    metrics["itl_s"] = summarize(*itl_samples(ok))
    completion_total = sum(r.completion_tokens or 0 for r in ok)
    prompt_counts = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    rps = len(ok) / window_s if window_s else None
    metrics.update({
        "window_s": window_s,
        "requests_per_s": rps,
        "requests_per_min": rps * 60 if rps is not None else None,
        "output_tokens_per_s": completion_total / window_s if window_s else None,
        "completion_tokens_total": completion_total,
        "prompt_tokens_total": sum(prompt_counts) if prompt_counts else None,
    })
    errors: dict[str, dict[str, Any]] = {}
    for r in failed:
        e = errors.setdefault(r.error_kind or "unknown", {"count": 0, "example": r.error})
        e["count"] += 1
    return {
        "counts": {"requests": len(records), "completed": len(ok), "failed": len(failed), "cancelled": cancelled},
        "metrics": metrics,
        "token_source": dict(Counter(r.token_source for r in ok if r.token_source)),
        "errors": errors,
    }
