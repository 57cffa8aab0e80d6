"""Steady-state fit per run: each request's end-to-end time against its output tokens.

e2e ~= overhead + tokens / rate, so a line through (completion_tokens, e2e_s) gives the decode rate
(1 / slope) and the fixed cost of a request (intercept: prefill, queueing, network). A Huber fit
(iteratively reweighted least squares) keeps a few stalled requests from tilting the line, and a
seeded bootstrap over requests gives the 95% confidence interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_REQUESTS = 8  # fewer points give intervals wider than the estimate
BOOTSTRAP = 200
SEED = 0


@dataclass(frozen=True)
class Fit:
    n: int
    slope_s_per_token: float
    intercept_s: float
    rate_ci: tuple[float, float] | None
    intercept_ci: tuple[float, float] | None

    @property
    def decode_tokens_per_s(self) -> float | None:
        return 1.0 / self.slope_s_per_token if self.slope_s_per_token > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.n, "decode_tokens_per_s": self.decode_tokens_per_s,
                "decode_tokens_per_s_ci95": list(self.rate_ci) if self.rate_ci else None,
                "overhead_s": self.intercept_s,
                "overhead_s_ci95": list(self.intercept_ci) if self.intercept_ci else None,
                "method": f"Huber IRLS of e2e_s on completion_tokens, {BOOTSTRAP} bootstrap resamples (seed {SEED})"}


def huber_line(x: np.ndarray, y: np.ndarray, k: float = 1.345, iterations: int = 50) -> tuple[float, float]:
    """(slope, intercept) minimising the Huber loss, residual scale from the MAD."""
    a = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    for _ in range(iterations):
        r = y - a @ coef
        scale = 1.4826 * np.median(np.abs(r - np.median(r)))
        if scale <= 0:
            break
        u = np.abs(r) / (k * scale)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
        sw = np.sqrt(w)
        new, *_ = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)
        if np.allclose(new, coef, rtol=1e-10, atol=1e-12):
            coef = new
            break
        coef = new
    return float(coef[0]), float(coef[1])


def fit_records(records: list[dict[str, Any]]) -> Fit | None:
    """The fit over successful requests; None with fewer than MIN_REQUESTS or when every request produced the
    same number of tokens (no slope to find)."""
    pts = [(r["completion_tokens"], r["e2e_s"]) for r in records
           if r.get("ok") and isinstance(r.get("completion_tokens"), (int, float))
           and isinstance(r.get("e2e_s"), (int, float))]
    if len(pts) < MIN_REQUESTS:
        return None
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    if np.ptp(x) == 0:
        return None
    slope, intercept = huber_line(x, y)
    rng = np.random.default_rng(SEED)
    rates, intercepts = [], []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) == 0:
            continue
        s, i = huber_line(x[idx], y[idx])
        if s > 0:
            rates.append(1.0 / s)
        intercepts.append(i)
    rate_ci = (float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))) if len(rates) >= 20 else None
    int_ci = (float(np.percentile(intercepts, 2.5)), float(np.percentile(intercepts, 97.5))) \
        if len(intercepts) >= 20 else None
    return Fit(len(pts), slope, intercept, rate_ci, int_ci)
