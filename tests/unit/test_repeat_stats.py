"""The statistics of --repeat (measure/repeats.py) against textbook values (its t quantile is
loadtest.stats.dist.t_ppf, tested against the t table in tests/unit/test_stats.py)."""

from __future__ import annotations

import json
import math

import pytest

from loadtest.measure.repeats import converged, interval, intervals, lookup, pooled


def test_interval_of_five_runs_by_hand():
    values = [10.0, 12.0, 11.0, 13.0, 9.0]  # mean 11, sample std sqrt(2.5)
    block = interval(values)
    std = math.sqrt(2.5)
    half = 2.776445 * std / math.sqrt(5)
    assert block["n"] == 5 and block["mean"] == pytest.approx(11.0) and block["std"] == pytest.approx(std)
    assert block["half_width"] == pytest.approx(half, rel=1e-5)
    assert (block["ci_low"], block["ci_high"]) == pytest.approx((11 - half, 11 + half), rel=1e-5)
    assert block["cv"] == pytest.approx(std / 11)
    assert block["half_width_pct"] == pytest.approx(100 * half / 11, rel=1e-5)
    assert converged(block, 20.0) and not converged(block, 10.0)


def test_one_run_has_no_spread_and_never_converges():
    block = interval([5.0])
    assert block["mean"] == 5.0 and block["half_width"] is None and block["cv"] is None
    assert not converged(block, 50.0) and not converged(None, 50.0)
    assert interval([])["mean"] is None


def test_intervals_skip_metrics_no_run_measured_and_count_the_runs_that_did():
    runs = [{"metrics": {"output_tokens_per_s": 100.0, "ttft_s": {"count": 3, "mean": 0.1, "p50": 0.1, "p90": 0.2,
                                                                  "p99": 0.3}, "completion_tokens_total": 500}},
            {"metrics": {"output_tokens_per_s": 110.0, "ttft_s": {"count": 0, "mean": None, "p50": None}}},
            {"metrics": {"output_tokens_per_s": 90.0}},  # an older or an embeddings run: no TTFT
            {}]                                          # no metrics at all
    out = intervals(runs)
    assert out["output_tokens_per_s"]["n"] == 3 and out["output_tokens_per_s"]["mean"] == pytest.approx(100.0)
    assert out["ttft_s.p99"]["n"] == 1 and out["ttft_s.p99"]["half_width"] is None
    assert "completion_tokens_total" not in out
    assert lookup({"ttft_s": {"p99": 0.3}}, "ttft_s.p99") == 0.3 and lookup({}, "ttft_s.p99") is None


def _rows(path, ttfts, start=0.0):
    with open(path / "requests.jsonl", "w") as f:
        f.writelines(json.dumps({"id": i, "ok": True, "start_s": start + i, "end_s": start + i + 1, "ttft_s": t,
                                "e2e_s": 1.0, "completion_tokens": 10}) + "\n" for i, t in enumerate(ttfts))


def test_pooled_statistics_come_from_every_request_and_rates_are_means(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _rows(a, [0.1, 0.2, 0.3])
    _rows(b, [0.4, 0.5])
    runs = [{"metrics": {"window_s": 3.0, "output_tokens_per_s": 10.0, "requests_per_s": 1.0}},
            {"metrics": {"window_s": 2.0, "output_tokens_per_s": 20.0, "requests_per_s": 1.0}}]
    result = pooled([a, b], runs)
    m = result["metrics"]
    assert result["counts"]["requests"] == 5 and result["counts"]["completed"] == 5
    assert m["ttft_s"]["count"] == 5 and m["ttft_s"]["p50"] == pytest.approx(0.3)
    assert m["ttft_s"]["mean"] == pytest.approx(0.3)
    assert m["output_tokens_per_s"] == pytest.approx(15.0)  # the mean over runs, not 50 tokens / 5 s
    assert m["window_s"] == pytest.approx(5.0) and m["completion_tokens_total"] == 50
