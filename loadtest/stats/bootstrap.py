"""The bootstrap of a statistic (a percentile, a mean) of per-request values, blocked by run.

A side of a comparison is one run or several repeats of it. Resampling only requests would
pretend that every request is independent of the run it ran in; when repeats exist the
run-to-run variation (a warmer cache, another host load) is part of the uncertainty. So the
resampling is two-stage (a cluster or block bootstrap): runs are drawn with replacement, then
requests within each drawn run. With one run it is the ordinary bootstrap of requests.

Every resample is a vector of counts (how often each request was drawn), so a statistic of the
resample is a weighted statistic of the original values: nothing is copied, and the values are
sorted once. Per-token values (ITL) are clustered by request (the tokens of one request are not
independent draws): requests are resampled whole, and their token values are summarised in
quantile bins so that thousands of resamples of a long run stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000
ITL_BINS = 1024
_CELLS = 4_000_000  # resamples x values held at once (~32 MB of float64)


def resample_counts(rng: np.random.Generator, sizes: Sequence[int], count: int) -> np.ndarray:
    """(count, sum(sizes)) draw counts: items grouped by run (``sizes`` items per run). One run:
    each resample draws as many items with replacement. Several: the runs are drawn with
    replacement first, then each drawn run's items (a run drawn k times: k x its size draws)."""
    sizes = [int(s) for s in sizes]
    if len(sizes) == 1:
        runs = np.ones((count, 1), dtype=np.int64)
    else:
        runs = rng.multinomial(len(sizes), np.full(len(sizes), 1.0 / len(sizes)), size=count)
    parts = []
    for r, s in enumerate(sizes):
        if s == 0:
            parts.append(np.empty((count, 0)))
            continue
        draws = runs[:, r] * s  # per resample
        flat = rng.integers(0, s, size=int(draws.sum()))
        flat += np.repeat(np.arange(count, dtype=np.int64) * s, draws)  # row offset: one bincount for all rows
        parts.append(np.bincount(flat, minlength=count * s).reshape(count, s).astype(float))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _chunks(total: int, width: int) -> list[int]:
    step = max(1, _CELLS // max(width, 1))
    return [min(step, total - i) for i in range(0, total, step)]


def _percentile_rows(v: np.ndarray, cum: np.ndarray, q: float) -> np.ndarray:
    """Per row of cumulative counts ``cum`` over sorted values ``v``: the q-th percentile of the
    expanded sample by linear interpolation (numpy's default, and summary.json's)."""
    n = cum[:, -1]
    h = (n - 1) * (q / 100.0)  # position in the expanded, sorted resample
    k0 = np.floor(h)
    k1 = np.minimum(k0 + 1, n - 1)
    i0 = np.minimum((cum <= k0[:, None]).sum(axis=1), v.size - 1)
    i1 = np.minimum((cum <= k1[:, None]).sum(axis=1), v.size - 1)
    return v[i0] + (h - k0) * (v[i1] - v[i0])


def bootstrap_stats(columns: Mapping[str, Sequence[np.ndarray]], stats: Mapping[str, Sequence[str]],
                    rng: np.random.Generator, resamples: int = DEFAULT_RESAMPLES) -> dict[str, np.ndarray]:
    """Per column, (resamples, len(stats[column])): each statistic ('mean', or 'pNN': the
    percentile by linear interpolation, as numpy's and summary.json's) of each resample.

    Every column holds one value per request (NaN: not measured for that request), grouped by
    run with the same sizes in every column: one resample of the requests serves every column,
    as the requests, not the metrics, are what was sampled."""
    names = list(columns)
    sizes = [np.asarray(g).size for g in columns[names[0]]]
    prepared = {}
    for name in names:
        values = np.concatenate([np.asarray(g, dtype=float) for g in columns[name]])
        keep = np.flatnonzero(np.isfinite(values))
        order = keep[np.argsort(values[keep], kind="mergesort")]
        prepared[name] = (values[order], order)
    out = {name: np.full((resamples, len(stats[name])), np.nan) for name in names}
    row = 0
    for size in _chunks(resamples, sum(sizes)):
        counts = resample_counts(rng, sizes, size)
        for name in names:
            v, order = prepared[name]
            if v.size == 0:
                continue
            w = counts[:, order]
            cum = np.cumsum(w, axis=1)  # once for every percentile of the column
            drawn = cum[:, -1]
            empty = drawn == 0  # a resample that drew no request measuring it
            if empty.any():
                cum[empty] = np.arange(1, v.size + 1)  # any valid row; its results are masked below
            for k, stat in enumerate(stats[name]):
                est = (w @ v) / np.where(empty, 1.0, drawn) if stat == "mean" else \
                    _percentile_rows(v, cum, float(stat[1:]))
                out[name][row:row + size, k] = np.where(empty, np.nan, est)
        row += size
    return out


def bootstrap_clustered_quantiles(values: np.ndarray, weights: np.ndarray, cluster: np.ndarray,
                                  run_sizes: Sequence[int], quantiles: Sequence[float],
                                  rng: np.random.Generator, resamples: int = DEFAULT_RESAMPLES,
                                  bins: int = ITL_BINS) -> np.ndarray:
    """(resamples, len(quantiles)): weighted quantiles of values that come in clusters (ITL: a
    request's tokens, weighted by tokens per gap), clusters resampled whole (blocked by run as
    above). ``cluster`` numbers each value's cluster 0..C-1, run by run (``run_sizes`` clusters per
    run). Each cluster's values are held as a histogram over ``bins`` bins whose edges are the
    pooled values' quantiles, and a quantile is interpolated within its bin: exact to one bin, a
    1/bins share of the values."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    n_clusters = int(sum(run_sizes))
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:  # every value the same
        return np.full((resamples, len(quantiles)), float(values[0]) if values.size else np.nan)
    k = edges.size - 1
    b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, k - 1)
    hist = np.bincount(np.asarray(cluster) * k + b, weights=weights, minlength=n_clusters * k).reshape(n_clusters, k)
    out = np.empty((resamples, len(quantiles)))
    row = 0
    for size in _chunks(resamples, max(n_clusters, k)):
        h = resample_counts(rng, run_sizes, size) @ hist
        cum = np.cumsum(h, axis=1)
        total = cum[:, -1]
        for j, q in enumerate(quantiles):
            target = q * total
            i = np.minimum((cum < target[:, None] - 1e-12 * total[:, None]).sum(axis=1), k - 1)
            before = np.where(i > 0, cum[np.arange(size), np.maximum(i - 1, 0)], 0.0)
            mass = h[np.arange(size), i]
            frac = np.clip(np.where(mass > 0, (target - before) / np.where(mass > 0, mass, 1.0), 0.0), 0.0, 1.0)
            out[row:row + size, j] = edges[i] + frac * (edges[i + 1] - edges[i])
        row += size
    return out


def two_sided_p(differences: np.ndarray) -> float:
    """The bootstrap p-value of "no difference": twice the smaller share of resampled differences
    on either side of zero, each share counted as (k + 1) / (B + 1) so it is never 0."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return 1.0
    below = (np.count_nonzero(d <= 0) + 1) / (d.size + 1)
    above = (np.count_nonzero(d >= 0) + 1) / (d.size + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap samples (NaNs and infinities dropped)."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(s, [tail, 100.0 - tail])
    return float(lo), float(hi)
