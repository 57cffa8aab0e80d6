"""report --slice on fabricated runs whose every window is known: counts, medians, tokens/s,
errors, and the trend test's verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadtest.errors import ConfigError
from loadtest.report.load import load_run
from loadtest.report.make import make_report
from loadtest.report.slices import run_windows, slice_tables


def write_run(path: Path, ttft: list[float], *, failed_at: tuple[float, ...] = ()) -> Path:
    """Request i starts at i x 0.1 s, its first token after ttft[i], its 10 tokens over 50 ms."""
    path.mkdir(parents=True)
    rows = [{"id": i, "ok": True, "start_s": i * 0.1, "ttft_s": t, "end_s": i * 0.1 + t + 0.05, "e2e_s": t + 0.05,
             "completion_tokens": 10, "warmup": False} for i, t in enumerate(ttft)]
    rows += [{"id": 1000 + j, "ok": False, "error_kind": "http_500", "start_s": t - 0.01, "end_s": t, "warmup": False}
             for j, t in enumerate(failed_at)]
    rows.append({"id": 2000, "ok": False, "error_kind": "cancelled", "start_s": 1.0, "end_s": 1.5, "warmup": False})
    rows.append({"id": 2001, "ok": True, "start_s": 0.0, "ttft_s": 5.0, "end_s": 5.1, "completion_tokens": 99,
                 "warmup": True})  # a warm-up request counts nowhere
    (path / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "summary.json").write_text(json.dumps({"command": "throughput", "config": {}, "metrics": {}}))
    return path


def test_windows_hold_what_happened_in_them(tmp_path: Path) -> None:
    ttft = [0.010 + 0.001 * i for i in range(100)]
    run = load_run(write_run(tmp_path / "r", ttft, failed_at=(2.5, 2.6, 7.0)))
    rows = run_windows(run, 1.0)
    assert len(rows) == 11 and [r["full"] for r in rows] == [True] * 10 + [False]
    # started: failed and cancelled requests too (they started), never the warm-up
    assert [r["requests"] for r in rows] == [10, 11, 12, 10, 10, 10, 11, 10, 10, 10, 0]
    assert rows[0]["window"] == "0-1 s" and rows[10]["window"] == "10-10.1 s"
    first = np.array([i * 0.1 + t for i, t in enumerate(ttft)])
    for k, row in enumerate(rows[:10]):
        inside = (first >= k) & (first < k + 1)
        assert row["ttft_p50_s"] == pytest.approx(float(np.median(np.array(ttft)[inside])))
    tokens = sum(r["output_tokens_per_s"] * (r["to_s"] - r["from_s"]) for r in rows)
    assert tokens == pytest.approx(1000.0)  # every token in exactly one window, none of the warm-up's
    assert [r["errors"] for r in rows] == [0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0]


def test_a_rising_ttft_is_flagged_and_a_flat_one_is_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rising = write_run(tmp_path / "rising", list(0.010 + 0.0005 * np.arange(100) + rng.uniform(0, 0.003, 100)))
    flat = write_run(tmp_path / "flat", list(0.030 + rng.uniform(0, 0.003, 100)))
    tables = slice_tables([load_run(rising), load_run(flat)], 1.0)
    assert [t.name for t in tables] == ["slices", "trends"]
    trends = {(r["run"], r["metric"]): r for r in tables[1].rows}
    up = trends[("rising", "TTFT p50")]
    assert up["trend"].startswith("rising: degrading") and up["p_adjusted"] < 0.01 and up["windows"] == 10
    assert up["slope_per_min"] == pytest.approx(0.0005 * 10 * 60, rel=0.15)  # 0.5 ms a request, 10 requests/s
    assert trends[("flat", "TTFT p50")]["trend"] == "no significant trend"
    assert ("flat", "errors") not in trends  # no errors at all: nothing to test


def test_too_few_windows_and_too_many(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", [0.02] * 30))
    tables = slice_tables([run], 1.0)
    assert [t.name for t in tables] == ["slices"] and any("too few windows" in n for n in tables[0].notes)
    with pytest.raises(ConfigError, match="windows \\(at most 1,000\\): use 0.003s or more"):
        slice_tables([run], 0.001)


def test_slices_in_the_report_formats(tmp_path: Path) -> None:
    path = write_run(tmp_path / "r", [0.010 + 0.001 * i for i in range(100)])
    text = make_report([path], by=["engine", "model"], fmt="table", output=None, plots=None, slice_s=1.0)
    assert "Time slices (1 s windows)" in text and "Trends over each run" in text
    md = make_report([path], by=["engine", "model"], fmt="markdown", output=None, plots=None, slice_s=1.0)
    assert "### Time slices (1 s windows)" in md
    data = json.loads(make_report([path], by=["engine", "model"], fmt="json", output=None, plots=None, slice_s=1.0))
    assert {"slices", "trends"} <= {t["name"] for t in data["tables"]}
    assert "Time slices" not in make_report([path], by=["engine", "model"], fmt="table", output=None, plots=None)
