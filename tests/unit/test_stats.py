"""loadtest/stats against textbook values: each distribution, test and adjustment as published."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtest.stats.bootstrap import (
    bootstrap_clustered_quantiles,
    bootstrap_stats,
    interval,
    resample_counts,
    two_sided_p,
)
from loadtest.stats.dist import betainc, normal_cdf, normal_ppf, normal_sf, t_ppf, t_sf, t_two_sided_p
from loadtest.stats.significance import benjamini_hochberg, fisher_exact, mann_kendall, mann_whitney_u, rank, welch_t


def test_normal_distribution() -> None:
    assert normal_cdf(1.96) == pytest.approx(0.9750021, abs=1e-7)
    assert normal_sf(1.96) == pytest.approx(0.0249979, abs=1e-7)
    assert normal_sf(8.0) == pytest.approx(6.22096e-16, rel=1e-5)  # the far tail, not 1 - cdf
    assert normal_ppf(0.975) == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize(("df", "quantile"), [  # Student's t table, two-sided 95%
    (1, 12.706205), (2, 4.302653), (5, 2.570582), (10, 2.228139), (30, 2.042272), (120, 1.979930)])
def test_t_quantiles_match_the_table(df: int, quantile: float) -> None:
    assert t_ppf(0.975, df) == pytest.approx(quantile, abs=1e-6)
    assert t_two_sided_p(quantile, df) == pytest.approx(0.05, abs=1e-7)
    assert t_ppf(0.025, df) == pytest.approx(-quantile, abs=1e-6)


def test_t_distribution_special_cases() -> None:
    assert t_sf(0.0, 7) == pytest.approx(0.5)
    assert t_sf(1.0, 1) == pytest.approx(0.25)  # Cauchy: 1/2 - atan(1)/pi
    assert t_sf(-1.0, 1) == pytest.approx(0.75)
    assert t_sf(2.0, 2) == pytest.approx(0.5 * (1 - 2.0 / math.sqrt(6.0)))  # closed form for df = 2
    assert t_sf(1.5, math.inf) == pytest.approx(normal_sf(1.5))
    assert t_ppf(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)


def test_regularized_incomplete_beta() -> None:
    x = 0.3  # integer a, b: a binomial tail, I_x(2, 3) = P(Bin(4, x) >= 2)
    assert betainc(2, 3, x) == pytest.approx(sum(math.comb(4, j) * x ** j * (1 - x) ** (4 - j) for j in range(2, 5)))
    assert betainc(4.5, 4.5, 0.5) == pytest.approx(0.5)
    assert betainc(1, 1, 0.37) == pytest.approx(0.37)
    assert betainc(0.5, 0.5, 0.25) == pytest.approx(2 / math.pi * math.asin(math.sqrt(0.25)))  # arcsine law
    assert (betainc(2, 5, 0.0), betainc(2, 5, 1.0)) == (0.0, 1.0)


def test_welch_t_on_the_textbook_examples() -> None:
    """Welch (1947) as in Wikipedia's "Welch's t-test" examples: t, its degrees of freedom, p."""
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    w = welch_t(a2, a1)  # mean(a1) - mean(a2), as the example states it
    assert (round(w.t, 2), round(w.df, 2), round(w.p, 3)) == (-2.46, 24.99, 0.021)
    b1 = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8]
    b2 = [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5,
          21.5, 21.8]
    w = welch_t(b2, b1)
    assert (round(w.t, 2), round(w.df, 1), round(w.p, 3)) == (-1.57, 9.9, 0.149)
    lo, hi = w.ci  # the interval of the difference: diff -+ t(0.975, df) * se
    assert lo < w.diff < hi and (hi - lo) / 2 == pytest.approx(t_ppf(0.975, w.df) * abs(w.diff / w.t))


def test_welch_t_edge_cases() -> None:
    with pytest.raises(ValueError):
        welch_t([1.0], [1.0, 2.0])
    assert welch_t([3.0, 3.0], [3.0, 3.0]).p == 1.0
    assert welch_t([3.0, 3.0], [4.0, 4.0]).p == 0.0


def test_mann_whitney_u_on_the_textbook_example() -> None:
    """Hollander & Wolfe (1973, p. 69), the example of R's wilcox.test: W = U = 35. Without ties
    the normal approximation is z = (35 - 25 - 1/2) / sqrt(10 * 5 * 16 / 12) = 1.16351."""
    x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    y = [1.15, 0.88, 0.90, 0.74, 1.21]
    r = mann_whitney_u(x, y)
    assert r.u == 35.0 and r.effect == pytest.approx(0.7)
    assert r.z == pytest.approx(9.5 / math.sqrt(200 / 3))
    assert r.p == pytest.approx(0.24462, abs=1e-5) and not r.exact_enough
    assert mann_whitney_u(y, x).u == 15.0 and mann_whitney_u(y, x).p == pytest.approx(r.p)


def test_mann_whitney_u_tie_correction() -> None:
    """Ties share their mean rank and shrink the variance by sum(t^3 - t) / (n (n - 1)):
    a = 1 2 2 3, b = 2 3 4 5: ranks of a 1, 3, 3, 5.5 -> U = 12.5 - 10 = 2.5; ties of 3 and 2
    -> var = 16/12 * (9 - 30/56); z = (2.5 - 8 + 0.5) / sqrt(var)."""
    ranks, ties = rank(np.array([1, 2, 2, 3, 2, 3, 4, 5], dtype=float))
    assert list(ranks) == [1, 3, 3, 5.5, 3, 5.5, 7, 8] and sorted(ties) == [1, 1, 1, 2, 3]
    r = mann_whitney_u([1, 2, 2, 3], [2, 3, 4, 5])
    var = 16 / 12 * (9 - 30 / 56)
    assert r.u == 2.5 and r.z == pytest.approx(-5.0 / math.sqrt(var))
    assert r.p == pytest.approx(2 * normal_cdf(-5.0 / math.sqrt(var)))
    assert mann_whitney_u([1.0] * 5, [1.0] * 5).p == 1.0  # all tied: no evidence of anything


def test_fisher_exact_on_the_textbook_examples() -> None:
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70)  # Fisher's lady tasting tea: 0.4857
    assert fisher_exact(1, 10, 11, 14) == pytest.approx(0.002759, abs=1e-6)  # Wikipedia's dieting example
    assert fisher_exact(0, 50, 0, 50) == 1.0


def test_benjamini_hochberg_on_the_paper_example() -> None:
    """Benjamini & Hochberg (1995), section 4: 15 p-values, four discoveries at q = 0.05."""
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528,
         0.7590, 1.000]
    adj = benjamini_hochberg(p)
    assert sum(a < 0.05 for a in adj) == 4
    assert adj[:6] == pytest.approx([0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.0298 * 15 / 7])
    assert adj[6] == pytest.approx(0.0298 * 15 / 7) and adj[-1] == 1.0
    shuffled = [p[i] for i in (14, 3, 0, 9)]  # order kept: each adjusted value stays with its p
    assert benjamini_hochberg(shuffled) == pytest.approx([1.0, 0.0095 * 4 / 2, 0.0001 * 4, 0.3240 * 4 / 3])
    assert benjamini_hochberg([]) == []


def test_mann_kendall_and_sens_slope() -> None:
    """Gilbert (1987), ch. 16: S = sum of signs, var = n(n-1)(2n+5)/18 less the ties' terms,
    z = (S - 1) / sqrt(var) for S > 0."""
    r = mann_kendall([1, 2, 3, 4, 5])
    assert (r.s, r.tau, r.slope) == (10, 1.0, 1.0)
    assert r.z == pytest.approx(9 / math.sqrt(5 * 4 * 15 / 18)) and r.p == pytest.approx(0.02749, abs=1e-5)
    r = mann_kendall([5, 4, 4, 2], t=[0, 10, 20, 30])  # a tie of two: var = (4*3*13 - 2*1*9) / 18
    assert r.s == -5 and r.z == pytest.approx(-4 / math.sqrt((156 - 18) / 18))
    assert r.slope == pytest.approx(-0.1)  # pairwise slopes per unit of t, their median
    assert mann_kendall([3, 3, 3, 3]).p == 1.0
    with pytest.raises(ValueError):
        mann_kendall([1.0, 2.0])


def test_bootstrap_statistics_are_those_of_the_resamples() -> None:
    """A resample's statistic is the statistic of the expanded sample it stands for."""
    rng = np.random.default_rng(3)
    v = rng.lognormal(0, 0.5, size=37)
    counts = resample_counts(np.random.default_rng(9), [37], 5)
    out = bootstrap_stats({"x": [v]}, {"x": ["p50", "p90", "p99", "mean"]}, np.random.default_rng(9), resamples=5)["x"]
    for row, c in zip(out, counts):
        expanded = np.repeat(v, c.astype(int))
        assert row == pytest.approx([*np.percentile(expanded, [50, 90, 99]), expanded.mean()])


def test_resamples_are_blocked_by_run() -> None:
    counts = resample_counts(np.random.default_rng(1), [10, 7, 12], 200)
    for lo, hi in ((0, 10), (10, 17), (17, 29)):
        per_run = counts[:, lo:hi].sum(axis=1)
        assert np.all(per_run % (hi - lo) == 0)  # a run is drawn whole k times: k x its size draws
    assert np.all(counts.sum(axis=1) >= 3 * 7) and len({tuple(r) for r in counts[:, 0:1]}) > 1
    again = resample_counts(np.random.default_rng(1), [10, 7, 12], 200)
    assert np.array_equal(counts, again)  # seeded


def test_bootstrap_skips_values_not_measured() -> None:
    v = np.array([1.0, np.nan, 3.0, np.nan, 5.0])
    out = bootstrap_stats({"x": [v]}, {"x": ["p50"]}, np.random.default_rng(0), resamples=300)["x"][:, 0]
    assert set(np.unique(out[np.isfinite(out)])) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_clustered_quantiles_centre_on_the_weighted_quantile() -> None:
    rng = np.random.default_rng(4)
    values = rng.lognormal(size=40_000)
    cluster = np.repeat(np.arange(400), 100)
    boot = bootstrap_clustered_quantiles(values, np.ones_like(values), cluster, [400], [0.5, 0.9, 0.99], rng, 400)
    assert boot.mean(axis=0) == pytest.approx(np.quantile(values, [0.5, 0.9, 0.99]), rel=0.02)
    same = bootstrap_clustered_quantiles(np.full(10, 2.0), np.ones(10), np.arange(10), [10], [0.5], rng, 5)
    assert np.all(same == 2.0)


def test_bootstrap_p_and_interval() -> None:
    assert two_sided_p(np.ones(999)) == pytest.approx(2 / 1000)
    assert two_sided_p(np.zeros(999)) == 1.0
    assert two_sided_p(np.linspace(-1, 1, 1001)) == 1.0
    lo, hi = interval(np.arange(1001, dtype=float))
    assert (lo, hi) == pytest.approx((25.0, 975.0))
