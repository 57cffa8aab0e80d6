"""The server's side in `loadtest report` (issue 23): the runs table's server columns from
summary.json's server_metrics block, and the per-run timeline from requests.jsonl and
server_metrics.jsonl, on small run directories written here with values worked out by hand."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.report.build import build_report
from loadtest.report.load import load_runs
from loadtest.report.server import read_server_series, server_stats
from loadtest.report.timeline import bins, read_client_series, run_timeline

SERVER_BLOCK = {
    "sources": [{"url": "http://a/metrics", "engine": "vllm", "samples": 8, "failed": 0, "status": "ok", "note": None},
                {"url": "http://b/metrics", "engine": "vllm", "samples": 3, "failed": 1, "status": "ok", "note": None}],
    "interval_s": 1.0,
    "known": {"running": {"mean": 2.1, "max": 4.0}, "waiting": {"mean": 0.7, "max": 3.0},
              "kv_cache_usage": {"mean": 0.3, "max": 0.6}, "preemptions": 2, "prompt_tokens": 1234,
              "generation_tokens": 60, "prefix_cache_hit_rate": 0.31,
              "queue_s": {"mean": 0.004, "p50": 0.003, "p90": 0.01, "p99": 0.0123, "count": 4},
              "gpu_power_w": {"mean": 180.0, "max": 250.0}, "gpu_energy_j": 812.0},
}

# start_s, end_s, ttft_s, completion_tokens, ok. Decode spans: r0 [1, 4] at 10 tok/s, r1 [1, 2.5] at
# 13.33 tok/s, r2 [2.2, 3] at 12.5 tok/s; r3 failed; the warm-up request is left out.
REQUESTS = [(0.0, 4.0, 1.0, 30, True), (0.5, 2.5, 0.5, 20, True), (2.0, 3.0, 0.2, 10, True),
            (3.2, 3.6, None, 0, False)]

# (t_s, source, known or None for a failed sample). A's sample at -3 lies outside the run (cut
# from the timeline); B fails at 2.5 and never reports power.
A, B = "http://a/metrics", "http://b/metrics"
SAMPLES: list[tuple[float, str, dict[str, float] | None]] = [
    (-3.0, A, {"running": 9, "waiting": 9, "kv_cache_usage": 0.9, "gpu_power_w": 90}),
    (-1.0, A, {"running": 0, "waiting": 0, "kv_cache_usage": 0.0, "gpu_power_w": 100}),
    (0.0, A, {"running": 1, "waiting": 0, "kv_cache_usage": 0.1, "gpu_power_w": 150}),
    (0.5, B, {"running": 1, "waiting": 0, "kv_cache_usage": 0.2}),
    (1.0, A, {"running": 2, "waiting": 1, "kv_cache_usage": 0.3, "gpu_power_w": 200}),
    (1.5, B, {"running": 1, "waiting": 1, "kv_cache_usage": 0.6}),
    (2.0, A, {"running": 3, "waiting": 2, "kv_cache_usage": 0.5, "gpu_power_w": 250}),
    (2.5, B, None),
    (3.0, A, {"running": 2, "waiting": 0, "kv_cache_usage": 0.4, "gpu_power_w": 200}),
    (3.5, B, {"running": 1, "waiting": 0, "kv_cache_usage": 0.2}),
    (4.0, A, {"running": 0, "waiting": 0, "kv_cache_usage": 0.0, "gpu_power_w": 120}),
]
# combined at every ok sample time from -1 on: A + B's held value (B none before 0.5, none after its
# failure at 2.5 until 3.5), KV the fuller source's, power A's alone
TIMES = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 4.0]
RUNNING = [0, 1, 2, 3, 3, 4, 2, 3, 1]
WAITING = [0, 0, 0, 1, 2, 3, 0, 0, 0]
KV = [0.0, 0.1, 0.2, 0.3, 0.6, 0.6, 0.4, 0.4, 0.2]
POWER = [100, 150, 150, 200, 200, 250, 200, 200, 120]


def write_run(path: Path, *, engine: str = "vllm", server: bool = True, samples: bool = True) -> Path:
    """A run directory: summary.json (with server_metrics when `server`), requests.jsonl, and
    server_metrics.jsonl (when `samples`, with a torn line and a line without t_s)."""
    path.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"command": "throughput", "config": {"max_tokens": 32, "concurrency": 4},
                               "run": {"model": "m"}, "counts": {"completed": 3, "failed": 1},
                               "metrics": {"ttft_s": {"p50": 0.5, "p99": 1.0}, "output_tokens_per_s": 15.0},
                               "server": {"engine": engine}}
    if server:
        summary["server_metrics"] = SERVER_BLOCK
    (path / "summary.json").write_text(json.dumps(summary))
    rows = [{"id": -1, "ok": True, "warmup": True, "start_s": -5.0, "end_s": -4.0, "ttft_s": 0.1,
             "completion_tokens": 99}]
    rows += [{"id": i, "ok": ok, "start_s": s, "end_s": e, "ttft_s": t, "e2e_s": e - s, "completion_tokens": n,
              "error": None if ok else "HTTP 500"} for i, (s, e, t, n, ok) in enumerate(REQUESTS)]
    (path / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if samples:
        lines = [json.dumps({"t_s": t, "source": src, "ok": True, "known": known, "gauges": {}, "counters": {}})
                 if known is not None else json.dumps({"t_s": t, "source": src, "ok": False, "error": "timeout after 2 s"})
                 for t, src, known in SAMPLES]
        lines.insert(3, json.dumps({"source": A, "ok": True, "known": {"running": 50}}))  # no t_s: skipped
        (path / "server_metrics.jsonl").write_text("\n".join(lines) + '\n{"t_s": 4.5, "source": "http://a/me')
    return path


def _nan_list(a: np.ndarray | None) -> list[float | None]:
    assert a is not None
    return [None if math.isnan(v) else round(float(v), 6) for v in a]


# -- the runs table -------------------------------------------------------------------------------
def test_server_columns_formatted(tmp_path: Path) -> None:
    runs = load_runs([write_run(tmp_path / "vllm-run"), write_run(tmp_path / "plain-run", engine="llamacpp",
                                                                 server=False, samples=False)])
    table = build_report(runs)[0]
    labels = [c.label for c in table.columns]
    assert labels[-4:] == ["KV max %", "queue p99 ms", "preemptions", "prefix hit %"]
    by_engine = {r["engine"]: r for r in table.rows}
    assert (by_engine["vllm"]["server_kv_cache_max"], by_engine["vllm"]["server_queue_p99_s"],
            by_engine["vllm"]["server_preemptions"], by_engine["vllm"]["server_prefix_cache_hit_rate"]) == \
        (0.6, 0.0123, 2.0, 0.31)
    assert all(by_engine["llamacpp"][k] is None for k in ("server_kv_cache_max", "server_queue_p99_s",
                                                          "server_preemptions", "server_prefix_cache_hit_rate"))
    assert any("from the server's /metrics" in n for n in table.notes)


def test_server_columns_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "a")
    write_run(tmp_path / "b", engine="llamacpp", server=False, samples=False)
    assert main(["report", str(tmp_path), "--format", "markdown"]) == 0
    md = capsys.readouterr().out.split("### ")[1]  # the runs table
    header = next(line for line in md.splitlines() if line.startswith("| engine"))
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in md.splitlines() if line.startswith(("| vllm", "| llamacpp"))}
    names = [c.strip() for c in header.split("|")[1:-1]]
    assert names[-4:] == ["KV max %", "queue p99 ms", "preemptions", "prefix hit %"]
    assert cells["vllm"][-4:] == ["60.0", "12.3", "2", "31.0"]
    assert cells["llamacpp"][-4:] == ["-", "-", "-", "-"]

    assert main(["report", str(tmp_path), "--format", "table"]) == 0
    text = capsys.readouterr().out
    assert "KV max %" in text and "prefix hit %" in text

    assert main(["report", str(tmp_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    vllm = next(r for r in rows if r["engine"] == "vllm")
    assert (vllm["server_kv_cache_max"], vllm["server_queue_p99_s"], vllm["server_preemptions"],
            vllm["server_prefix_cache_hit_rate"]) == ("0.6", "0.0123", "2", "0.31")
    assert next(r for r in rows if r["engine"] == "llamacpp")["server_kv_cache_max"] == ""

    assert main(["report", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jrows = {r["engine"]: r for r in data["tables"][0]["rows"]}
    assert jrows["vllm"]["server_queue_p99_s"] == 0.0123 and jrows["llamacpp"]["server_queue_p99_s"] is None

    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path), "--format", "html", "--output", str(out)]) == 0
    page = out.read_text()
    assert "<th>KV max %</th>" in page and "<td class='num'>12.3</td>" in page


def test_no_server_metrics_no_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "old", server=False, samples=False)
    bare = write_run(tmp_path / "nulls", engine="other", samples=False)  # a block whose entries were not measured
    summary = json.loads((bare / "summary.json").read_text())
    summary["server_metrics"] = {"sources": [], "interval_s": 1.0,
                                 "known": {"kv_cache_usage": None, "queue_s": None, "preemptions": None}}
    (bare / "summary.json").write_text(json.dumps(summary))
    table = build_report(load_runs([tmp_path]))[0]
    assert not any(c.key.startswith("server_") for c in table.columns)
    assert not any(k.startswith("server_") for r in table.rows for k in r)
    assert main(["report", str(tmp_path), "--format", "markdown"]) == 0
    assert "KV max" not in capsys.readouterr().out


def test_pooled_runs_combine_server_values(tmp_path: Path) -> None:
    for name, kv, queue, pre, hit in (("r1", 0.5, 0.02, 1, 0.2), ("r2", 0.7, 0.01, 3, 0.4)):
        d = write_run(tmp_path / name, samples=False)
        summary = json.loads((d / "summary.json").read_text())
        summary["server_metrics"] = {"known": {"kv_cache_usage": {"max": kv}, "queue_s": {"p99": queue},
                                               "preemptions": pre, "prefix_cache_hit_rate": hit}}
        (d / "summary.json").write_text(json.dumps(summary))
    runs = load_runs([tmp_path])
    assert server_stats(runs[0])["server_kv_cache_max"] == 0.5
    (row,) = build_report(runs)[0].rows
    assert row["runs"] == 2
    assert (row["server_kv_cache_max"], row["server_queue_p99_s"], row["server_preemptions"]) == (0.7, 0.02, 4.0)
    assert row["server_prefix_cache_hit_rate"] == pytest.approx(0.3)


# -- the timeline's numbers -----------------------------------------------------------------------
def test_client_series_in_flight_and_tokens(tmp_path: Path) -> None:
    c = read_client_series(write_run(tmp_path / "run") / "requests.jsonl")
    assert c is not None and c.starts.size == 4  # the warm-up request left out
    t = np.array([-4.5, 0.25, 1.0, 2.25, 2.75, 3.3, 4.5])
    assert c.in_flight_at(t).tolist() == [0, 1, 2, 3, 2, 2, 0]  # the failed request counts while in flight
    tps = c.tokens_per_s(np.arange(0.0, 5.0))
    assert tps.tolist() == pytest.approx([0.0, 10 + 20 / 1.5, 10 + 10 / 1.5 + 10, 10.0])
    assert tps.sum() == pytest.approx(60.0)  # every ok request's tokens, once
    halves = c.tokens_per_s(np.arange(0.0, 4.5, 0.5))
    assert (halves * 0.5).sum() == pytest.approx(60.0)
    # rolling TTFT median over first tokens at 1.0 (1.0 s), 1.0 (0.5 s), 2.2 (0.2 s)
    assert _nan_list(c.ttft_p50_at(np.array([0.0, 1.0, 3.0, 4.0]), 5.0)) == [None, 0.75, 0.5, 0.5]
    assert _nan_list(c.ttft_p50_at(np.array([3.0]), 1.0)) == [0.2]


def test_server_series_summed_over_two_sources(tmp_path: Path) -> None:
    s = read_server_series(write_run(tmp_path / "run") / "server_metrics.jsonl", interval_s=1.0)
    assert s is not None and s.sources == 2
    assert s.t_s.tolist() == [-3.0, *TIMES]  # ok samples only; the torn line and the one without t_s skipped
    assert _nan_list(s.running) == [9, *RUNNING]
    assert _nan_list(s.waiting) == [9, *WAITING]
    assert _nan_list(s.kv_cache_usage) == [0.9, *KV]
    assert _nan_list(s.gpu_power_w) == [90, *POWER]


def test_server_series_stale_source_and_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "server_metrics.jsonl"
    rows = [{"t_s": float(t), "source": "a", "ok": True, "known": {"running": 2}} for t in range(5)]
    rows += [{"t_s": 0.6, "source": "b", "ok": True, "known": {"running": 5}}]  # b answers once, then is gone
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = read_server_series(path)  # no interval given: the median gap between a source's samples, 1 s
    assert s is not None
    assert s.t_s.tolist() == [0.0, 0.6, 1.0, 2.0, 3.0, 4.0]
    assert _nan_list(s.running) == [2, 7, 7, 7, 7, 2]  # b held for 2.5 intervals, then dropped
    assert s.waiting is None and s.kv_cache_usage is None and s.gpu_power_w is None
    path.write_text(json.dumps({"t_s": 1.0, "source": "a", "ok": False, "error": "refused"}) + "\n")
    assert read_server_series(path) is None
    assert read_server_series(tmp_path / "absent.jsonl") is None


def test_run_timeline_on_one_axis(tmp_path: Path) -> None:
    (run,) = load_runs([write_run(tmp_path / "run")])
    tl = run_timeline(run)
    assert tl is not None and tl.client is not None
    assert tl.server.t_s.tolist() == TIMES  # the sample at -3 s lies before the run's span (padded 2 s)
    assert _nan_list(tl.server.running) == RUNNING
    assert (tl.bin_s, tl.edges.tolist(), tl.window_s) == (1.0, [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], 5.0)
    assert tl.tokens_per_s.tolist() == pytest.approx([0.0, 0.0, 10 + 20 / 1.5, 10 + 10 / 1.5 + 10, 10.0])
    assert _nan_list(tl.ttft_p50_s) == [None, 0.75, 0.75, 0.5, 0.5]


def test_no_timeline_without_ok_samples(tmp_path: Path) -> None:
    (run,) = load_runs([write_run(tmp_path / "none", samples=False)])
    assert run_timeline(run) is None
    failed = write_run(tmp_path / "failed", samples=False)
    (failed / "server_metrics.jsonl").write_text(json.dumps({"t_s": 0.0, "source": A, "ok": False, "error": "x"}))
    assert run_timeline(load_runs([failed])[0]) is None
    gauges_only = json.dumps({"t_s": 0.0, "source": A, "ok": True, "known": {}, "gauges": {"x": 1.0}})
    (failed / "server_metrics.jsonl").write_text(gauges_only + "\n")
    assert run_timeline(load_runs([failed])[0]) is None  # an ok sample, but nothing the panel draws


def test_bins_widen_for_long_runs() -> None:
    assert bins(0.2, 3.5)[1].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    width, edges = bins(0.0, 3600.0)
    assert width == 3.0 and edges.size == 1201 and edges[-1] == 3600.0
