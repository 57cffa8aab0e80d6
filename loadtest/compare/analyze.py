"""Two sides in, one result per metric out: the change, its interval, the test, the p-value
adjusted for the number of metrics tested, and a verdict.

A metric is called better or worse only when its adjusted p-value is below alpha *and* its 95%
interval excludes no change: the test and the interval must agree, so a verdict never comes with
an interval that says "could be nothing". Benjamini-Hochberg across the metrics keeps the expected
share of false "better"/"worse" calls among all such calls at alpha, however many are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from loadtest.compare.metrics import HIGHER, METRICS, TAIL_MIN_BEYOND, Metric
from loadtest.compare.sides import Side
from loadtest.measure.metrics import summarize
from loadtest.report.load import dig
from loadtest.stats.bootstrap import (
    DEFAULT_RESAMPLES,
    bootstrap_clustered_quantiles,
    bootstrap_stats,
    interval,
    two_sided_p,
)
from loadtest.stats.significance import MWU_EXACT_ENOUGH_N, benjamini_hochberg, fisher_exact, mann_whitney_u, welch_t

BETTER, WORSE, SAME, UNTESTED = "better", "worse", "no significant difference", "not tested"
MWU, BOOTSTRAP, WELCH, FISHER = "Mann-Whitney U", "bootstrap", "Welch t", "Fisher exact"
BOOTSTRAP_MIN_REQUESTS = MWU_EXACT_ENOUGH_N
BOOTSTRAP_WHY = f"a bootstrap test needs {BOOTSTRAP_MIN_REQUESTS} requests a side"


@dataclass
class Result:
    metric: Metric
    baseline: float | None
    candidate: float | None
    n: tuple[int, int]                      # values (requests, tokens or runs) per side
    change: float | None = None             # percent; percentage points for error_rate
    ci: tuple[float, float] | None = None   # of the change
    test: str | None = None
    p: float | None = None
    p_adjusted: float | None = None
    verdict: str = UNTESTED
    why: str = ""                           # why it was not tested

    @property
    def significant(self) -> bool:
        return self.verdict in (BETTER, WORSE)


@dataclass
class Comparison:
    baseline: Side
    candidate: Side
    results: list[Result]
    notes: list[str] = field(default_factory=list)
    contaminated: dict[str, list[str]] = field(default_factory=dict)
    differ: list[tuple[str, object, object]] = field(default_factory=list)  # allowed with --allow-different
    alpha: float = 0.05
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in (BETTER, WORSE, SAME, UNTESTED)}
        for r in self.results:
            out[r.verdict] += 1
        return out


def _rel(c: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(c, dtype=float) / np.asarray(b, dtype=float) - 1.0) * 100.0


def _change(m: Metric, b: float, c: float) -> float | None:
    if m.points:
        return (c - b) * 100.0
    return float(_rel(c, b)) if b != 0 else None


def _tail_ok(stat: str, n: int) -> bool:
    q = float(stat[1:]) / 100.0
    return q <= 0.5 or n * (1.0 - q) >= TAIL_MIN_BEYOND


def _tail_why(stat: str) -> str:
    need = math.ceil(round(TAIL_MIN_BEYOND / (1.0 - float(stat[1:]) / 100.0), 6))
    return f"{stat} needs {need:,} values a side ({TAIL_MIN_BEYOND} beyond it)"


class _Analysis:
    """The per-kind computations, sharing one bootstrap per side and kind."""

    def __init__(self, baseline: Side, candidate: Side, resamples: int, seed: int) -> None:
        self.sides = (baseline.samples, candidate.samples)
        self.resamples = resamples
        self.rngs = [np.random.default_rng([seed, i]) for i in range(2)]
        self._request_boot: list[dict[str, np.ndarray]] | None = None
        self._itl_boot: list[np.ndarray | None] | None = None

    # -- one value per request ----------------------------------------------------------------------
    def request_boot(self) -> list[dict[str, np.ndarray]]:
        if self._request_boot is None:
            wanted: dict[str, list[str]] = {}
            for m in METRICS:
                if m.kind == "request":
                    wanted.setdefault(m.name, []).append(m.stat)  # type: ignore[arg-type]
            self._request_boot = []
            for s, rng in zip(self.sides, self.rngs):
                names = [n for n in wanted if s.pooled(n).size]
                cols = {n: [r.request[n] for r in s.runs] for n in names}
                self._request_boot.append(bootstrap_stats(cols, {n: wanted[n] for n in names}, rng, self.resamples)
                                          if names else {})
        return self._request_boot

    def request(self, m: Metric) -> Result | None:
        stat = m.stat or "p50"
        b, c = (s.pooled(m.name) for s in self.sides)
        if b.size == 0 or c.size == 0:
            return None
        q = float(stat[1:])
        vb, vc = float(np.percentile(b, q)), float(np.percentile(c, q))
        res = Result(m, vb, vc, (b.size, c.size), _change(m, vb, vc))
        boots = self.request_boot()
        k = [mm.stat for mm in METRICS if mm.name == m.name and mm.kind == "request"].index(m.stat)
        bb, cb = boots[0][m.name][:, k], boots[1][m.name][:, k]
        res.ci = interval(_rel(cb, bb)) if vb != 0 else None
        if min(b.size, c.size) < 2:
            res.why = "fewer than 2 requests on a side"
        elif stat == "p50":
            res.test, res.p = MWU, mann_whitney_u(b, c).p
        elif min(b.size, c.size) < BOOTSTRAP_MIN_REQUESTS:
            res.why = BOOTSTRAP_WHY
        elif not _tail_ok(stat, min(b.size, c.size)):
            res.why = _tail_why(stat)
        else:
            res.test, res.p = BOOTSTRAP, two_sided_p(cb - bb)
        return res

    # -- one value per token, clustered by request ----------------------------------------------------
    def itl_boot(self) -> list[np.ndarray | None]:
        if self._itl_boot is None:
            qs = [float(m.stat[1:]) / 100.0 for m in METRICS if m.kind == "token"]  # type: ignore[index]
            self._itl_boot = []
            for s, rng in zip(self.sides, self.rngs):
                v, w, cluster, sizes = s.itl()
                self._itl_boot.append(bootstrap_clustered_quantiles(v, w, cluster, sizes, qs, rng, self.resamples)
                                      if v.size else None)
        return self._itl_boot

    def token(self, m: Metric) -> Result | None:
        data = [s.itl() for s in self.sides]
        if any(v.size == 0 for v, *_ in data):
            return None
        vb, vc = (float(summarize(v, w)[m.stat]) for v, w, *_ in data)  # type: ignore[index]
        res = Result(m, vb, vc, (data[0][0].size, data[1][0].size), _change(m, vb, vc))
        k = [mm.stat for mm in METRICS if mm.kind == "token"].index(m.stat)
        bb, cb = (boot[:, k] for boot in self.itl_boot())  # type: ignore[index]
        res.ci = interval(_rel(cb, bb)) if vb != 0 else None
        requests = [sum(data[i][3]) for i in range(2)]
        if min(requests) < BOOTSTRAP_MIN_REQUESTS:
            res.why = BOOTSTRAP_WHY
        elif not _tail_ok(m.stat, min(res.n)):  # type: ignore[arg-type]
            res.why = _tail_why(m.stat)  # type: ignore[arg-type]
        else:
            res.test, res.p = BOOTSTRAP, two_sided_p(cb - bb)
        return res

    # -- the share of failed requests -------------------------------------------------------------------
    def errors(self, m: Metric) -> Result | None:
        fb, fc = (s.failed for s in self.sides)
        if fb.size == 0 or fc.size == 0:
            return None
        vb, vc = float(fb.mean()), float(fc.mean())
        res = Result(m, vb, vc, (fb.size, fc.size), _change(m, vb, vc))
        boots = [bootstrap_stats({"failed": [r.failed for r in s.runs]}, {"failed": ["mean"]}, rng, self.resamples)
                 ["failed"][:, 0] for s, rng in zip(self.sides, self.rngs)]
        res.ci = interval((boots[1] - boots[0]) * 100.0)
        res.test, res.p = FISHER, fisher_exact(int(fb.sum()), fb.size, int(fc.sum()), fc.size)
        return res

    # -- one value per run ------------------------------------------------------------------------------
    def rate(self, m: Metric) -> Result | None:
        b, c = (np.array([v for v in s.rates[m.key] if np.isfinite(v)]) for s in self.sides)
        if b.size == 0 or c.size == 0:
            return None
        vb, vc = float(b.mean()), float(c.mean())
        res = Result(m, vb, vc, (b.size, c.size), _change(m, vb, vc))
        if min(b.size, c.size) < 2:
            res.why = ("one run per side: a rate has no run-to-run variance to test against (repeat each side)"
                       if max(b.size, c.size) < 2 else "a rate needs repeats on both sides to be tested")
            return res
        w = welch_t(b, c)
        res.test, res.p = WELCH, w.p
        res.ci = (w.ci[0] / vb * 100.0, w.ci[1] / vb * 100.0) if vb != 0 else None
        return res


def _slo(side: Side) -> object:
    objectives = {str(dig(r.summary, "slo", "objectives")) for r in side.runs}
    return objectives.pop() if len(objectives) == 1 else None


def _decide(r: Result, alpha: float) -> str:
    if r.p_adjusted is None:
        return UNTESTED
    ci_clear = r.ci is None or r.ci[0] > 0 or r.ci[1] < 0
    if r.p_adjusted >= alpha or not ci_clear:
        return SAME
    up = r.ci[0] > 0 if r.ci is not None else (r.change or 0) > 0
    return BETTER if up == (r.metric.better == HIGHER) else WORSE


def compare_sides(baseline: Side, candidate: Side, *, alpha: float = 0.05, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = 0) -> Comparison:
    """Every metric both sides measured, tested, adjusted (Benjamini-Hochberg) and judged."""
    a = _Analysis(baseline, candidate, resamples, seed)
    results: list[Result] = []
    missing: list[str] = []
    notes: list[str] = []
    for m in METRICS:
        if m.name == "goodput_requests_per_min" and _slo(baseline) != _slo(candidate):
            if all(np.isfinite(v) for s in a.sides for v in s.rates[m.key][:1]):
                notes.append("goodput not compared: the two sides judged different SLOs")
            continue
        r = getattr(a, {"request": "request", "token": "token", "errors": "errors", "rate": "rate"}[m.kind])(m)
        if r is None:
            if m.name not in missing:
                missing.append(m.name)
            continue
        results.append(r)
    tested = [r for r in results if r.p is not None]
    for r, adj in zip(tested, benjamini_hochberg([r.p for r in tested])):  # type: ignore[misc]
        r.p_adjusted = adj
    for r in results:
        r.verdict = _decide(r, alpha)
    notes[:0] = _method_notes(results, tested, alpha, resamples, baseline, candidate, missing)
    contaminated = {s.role: c for s in (baseline, candidate) if (c := s.contamination())}
    return Comparison(baseline, candidate, results, notes, contaminated, alpha=alpha, resamples=resamples, seed=seed)


def _method_notes(results: list[Result], tested: list[Result], alpha: float, resamples: int, baseline: Side,
                  candidate: Side, missing: list[str]) -> list[str]:
    notes = [(f"p-values adjusted for {len(tested)} tests at once (Benjamini-Hochberg: the expected share of false "
              f"'better'/'worse' calls stays at or below {alpha:g}); a verdict needs adjusted p < {alpha:g} and a 95% "
              "interval that excludes no change")]
    blocked = baseline.group or candidate.group
    notes.append(f"intervals: bootstrap, {resamples:,} seeded resamples" +
                 (", blocked by run (runs drawn, then requests within them)" if blocked else " of the requests") +
                 "; rates: Welch's t over repeats; error rate: change in percentage points, Fisher's exact test")
    if any(r.test == MWU for r in results):
        small = any(r.test == MWU and min(r.n) < MWU_EXACT_ENOUGH_N for r in results)
        notes.append("p50: Mann-Whitney U, normal approximation with tie and continuity corrections (exact enough "
                     f"from {MWU_EXACT_ENOUGH_N} requests a side" +
                     ("; fewer here: the p-value is rough)" if small else ")") +
                     "; p90/p99: the bootstrap's p-value; ITL: requests resampled whole (their tokens are not "
                     "independent)")
    untested: dict[str, list[str]] = {}
    for r in results:
        if r.p is None and r.why:
            untested.setdefault(r.why, []).append(r.metric.label)
    notes += [f"not tested ({', '.join(labels)}): {why}" for why, labels in untested.items()]
    if missing:
        notes.append("not measured on both sides (not compared): " + ", ".join(missing))
    for side in (baseline, candidate):
        if side.left_out:
            notes.append(f"{side.role}: {', '.join(side.left_out)} left out (no summary.json: unfinished)")
        if side.stopped:
            notes.append(f"{side.role}: {', '.join(side.stopped)} left out (interrupted by a signal: partial, not a "
                         "measurement)")
    return notes
