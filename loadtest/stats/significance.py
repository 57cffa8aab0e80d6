"""The tests behind a verdict: Welch's t, Mann-Whitney U, Fisher's exact test, Mann-Kendall's
trend test, and Benjamini-Hochberg's adjustment for testing many metrics at once.

Each returns the statistic with its p-value (two-sided), so the caller can show both. Large-sample
normal approximations are used where the textbooks use them (Mann-Whitney, Mann-Kendall), with the
tie corrections that timing data needs (a server's clock ticks make equal values common).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadtest.stats.dist import normal_sf, t_ppf, t_two_sided_p

MWU_EXACT_ENOUGH_N = 20
"""Below this many values on a side the normal approximation of Mann-Whitney U is rough (the exact
distribution would be needed): results say so."""


def _array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p: float
    diff: float                       # mean(b) - mean(a)
    ci: tuple[float, float]           # its interval at the asked confidence


def welch_t(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Welch:
    """Welch's unequal-variance t-test of mean(b) - mean(a), with the Welch-Satterthwaite degrees
    of freedom; needs two values on each side. Two sides without any variance give p = 1 when the
    means are equal and p = 0 when they are not (the difference is then certain)."""
    x, y = _array(a), _array(b)
    if x.size < 2 or y.size < 2:
        raise ValueError("Welch's t needs at least two values on each side")
    va, vb = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    diff = float(y.mean() - x.mean())
    se2 = va + vb
    if se2 == 0:
        p = 1.0 if diff == 0 else 0.0
        return Welch(math.copysign(math.inf, diff) if diff else 0.0, math.inf, p, diff, (diff, diff))
    se = math.sqrt(se2)
    df = float(se2) ** 2 / float(va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    t = diff / se
    half = t_ppf(0.5 + confidence / 2, df) * se
    return Welch(t, df, t_two_sided_p(t, df), diff, (diff - half, diff + half))


def rank(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based; ties share the mean of their ranks) and the sizes of the tie groups."""
    order = np.argsort(values, kind="mergesort")
    sorted_v = values[order]
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0  # ranks first+1 .. first+count, averaged
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks, counts


@dataclass(frozen=True)
class MannWhitney:
    u: float        # U of the first sample: pairs (a_i, b_j) with a_i > b_j, ties counted 1/2
    z: float        # standardised, with continuity and tie corrections
    p: float        # two-sided, normal approximation
    effect: float   # U / (n_a n_b): P(a > b) + P(a = b) / 2; 0.5 = no shift
    exact_enough: bool  # both sides have at least MWU_EXACT_ENOUGH_N values


def mann_whitney_u(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> MannWhitney:
    """Mann-Whitney U (Wilcoxon rank-sum) test of a shift between two independent samples: normal
    approximation with the tie correction of the variance and a continuity correction of 1/2 (as
    R's wilcox.test(exact = FALSE) and scipy's method='asymptotic')."""
    x, y = _array(a), _array(b)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney U needs values on both sides")
    ranks, ties = rank(np.concatenate([x, y]))
    n = n1 + n2
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - float((ties ** 3 - ties).sum()) / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return MannWhitney(u, 0.0, 1.0, u / (n1 * n2), False)
    delta = u - mean
    z = (delta - math.copysign(0.5, delta)) / math.sqrt(var) if abs(delta) >= 0.5 else 0.0
    p = min(1.0, 2.0 * normal_sf(abs(z)))
    return MannWhitney(u, z, p, u / (n1 * n2), min(n1, n2) >= MWU_EXACT_ENOUGH_N)


def fisher_exact(a_events: int, a_total: int, b_events: int, b_total: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table [[a_events, a_total - a_events],
    [b_events, b_total - b_events]]: the sum of the hypergeometric probabilities of every table
    with the same margins that is no more likely than the one observed (as R's fisher.test)."""
    if not (0 <= a_events <= a_total and 0 <= b_events <= b_total):
        raise ValueError("events must be between 0 and the total")
    n, row, col = a_total + b_total, a_total, a_events + b_events
    lo, hi = max(0, row - (n - col)), min(row, col)

    def log_pmf(k: int) -> float:
        return (_log_comb(col, k) + _log_comb(n - col, row - k) - _log_comb(n, row))

    observed = log_pmf(a_events)
    logs = np.array([log_pmf(k) for k in range(lo, hi + 1)])
    keep = logs <= observed + 1e-7  # relative tolerance for tables as likely as the observed one
    return float(min(1.0, np.exp(logs[keep]).sum()))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (as R's p.adjust(method = "BH")): rejecting those below
    q keeps the expected share of false discoveries among the rejections at or below q."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return [float(v) for v in out]


@dataclass(frozen=True)
class MannKendall:
    s: int          # sum over pairs i < j of sign(x_j - x_i)
    z: float        # standardised, with continuity and tie corrections
    p: float        # two-sided, normal approximation
    tau: float      # Kendall's tau-a: s / (n (n - 1) / 2)
    slope: float    # Sen's slope: the median of the pairwise slopes, per unit of t


def mann_kendall(values: Sequence[float] | np.ndarray, t: Sequence[float] | np.ndarray | None = None) -> MannKendall:
    """Mann-Kendall test of a monotonic trend in a series (values in time order; NaNs dropped),
    with Sen's slope as its size. Needs three values; the normal approximation is the textbook's
    (Gilbert 1987, ch. 16), good from about ten values."""
    x = np.asarray(values, dtype=float)
    times = np.arange(x.size, dtype=float) if t is None else np.asarray(t, dtype=float)
    keep = np.isfinite(x) & np.isfinite(times)
    x, times = x[keep], times[keep]
    n = x.size
    if n < 3:
        raise ValueError("Mann-Kendall needs at least three values")
    i, j = np.triu_indices(n, k=1)
    s = int(np.sign(x[j] - x[i]).sum())
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18.0
    z = 0.0 if s == 0 or var <= 0 else (s - math.copysign(1, s)) / math.sqrt(var)
    p = 1.0 if var <= 0 else min(1.0, 2.0 * normal_sf(abs(z)))
    dt = times[j] - times[i]
    slopes = (x[j] - x[i])[dt != 0] / dt[dt != 0]
    return MannKendall(s, z, p, s / (n * (n - 1) / 2.0), float(np.median(slopes)) if slopes.size else 0.0)
