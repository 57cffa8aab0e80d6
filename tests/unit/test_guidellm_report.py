"""GuideLLM's benchmarks.json as a side of loadtest compare: epoch-second timings read into loadtest's
records, cut to GuideLLM's measurement window, a sweep refused in one line naming its benchmarks, a
malformed file one line and exit 2. Every sample here is synthetic, written by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.compare.foreign import NotForeign, read_foreign
from loadtest.compare.guidellm import GUIDELLM
from loadtest.compare.make import make_comparison

T0 = 1_700_000_000.0


def request(start: float, ttft: float, *, tokens: int = 5, gap: float = 0.01, tail: float = 0.002) -> dict[str, Any]:
    """One GenerativeRequestStats as GuideLLM serialises it: epoch seconds in info.timings."""
    first, last = T0 + start + ttft, T0 + start + ttft + gap * (tokens - 1)
    return {"type_": "generative_request_stats", "request_id": f"r{start}",
            "info": {"status": "completed", "timings": {
                "resolve_start": T0 + start, "request_start": T0 + start, "first_token_iteration": first,
                "last_token_iteration": last, "token_iterations": tokens, "request_end": last + tail,
                "resolve_end": last + tail}},
            "input_metrics": {"text_tokens": 20}, "output_metrics": {"text_tokens": tokens},
            "prompt_tokens": 20, "output_tokens": tokens, "request_latency": last + tail - T0 - start,
            "time_to_first_token_ms": ttft * 1000}


def benchmark(ttfts: list[float], *, errored: int = 0, strategy: dict[str, Any] | None = None,
              window: tuple[float, float] | None = None) -> dict[str, Any]:
    ok = [request(i * 0.1, t) for i, t in enumerate(ttfts)]
    bad = [dict(request(50 + i, 0.01), info={"status": "errored", "error": "boom", "timings": {
        "request_start": T0 + 50 + i, "request_end": T0 + 50.5 + i}}) for i in range(errored)]
    lo, hi = window or (0.0, 100.0)
    return {"type_": "generative_benchmark",
            "config": {"strategy": strategy or {"type_": "concurrent", "streams": 4}, "backend": {"model": "m"}},
            "scheduler_metrics": {"measure_start_time": T0 + lo, "measure_end_time": T0 + hi},
            "metrics": {"request_totals": {"successful": len(ok), "errored": errored, "incomplete": 0}},
            "requests": {"successful": ok, "errored": bad, "incomplete": [], "total": None}}


def report(*benches: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"version": 2, "guidellm_version": "0.0-test"}, "config": {}, "benchmarks": list(benches)}


def write(p: Path, doc: Any) -> Path:
    p.write_text(json.dumps(doc))
    return p


def test_epoch_seconds_become_loadtest_records(tmp_path: Path) -> None:
    f = read_foreign(write(tmp_path / "benchmarks.json", report(benchmark([0.05, 0.07], errored=1))))
    assert f.tool == GUIDELLM and f.settings == {"model": "m", "num_prompts": None, "load": "concurrency 4"}
    ok = f.run.ok_records
    assert [r["ttft_s"] for r in ok] == pytest.approx([0.05, 0.07])
    assert ok[0]["e2e_s"] == pytest.approx(0.05 + 0.04 + 0.002)
    assert ok[0]["tpot_s"] == pytest.approx(0.01) and ok[0]["completion_tokens"] == 5
    assert ok[1]["start_s"] == pytest.approx(0.1) and ok[0]["chunk_offsets_s"] is None
    failed = [r for r in f.run.records if not r["ok"]]
    assert len(failed) == 1 and failed[0]["ttft_s"] is None and failed[0]["error_kind"] == "errored"
    assert f.run.summary["metrics"]["requests_per_min"] == pytest.approx(2 / 100 * 60)
    assert any(d.startswith("TPOT: GuideLLM") for d in f.definitions)


def test_warmup_and_cooldown_requests_are_left_out(tmp_path: Path) -> None:
    b = benchmark([0.05] * 10, window=(0.25, 0.65))  # starts 0.0 .. 0.9; ends ~0.09 later
    f = read_foreign(write(tmp_path / "b.json", report(b)))
    assert len(f.run.records) == 5  # 0.2 (ends 0.29) .. 0.6
    assert any("5 of 10 inside its measurement window" in d for d in f.definitions)


def test_a_sweep_is_refused_naming_its_benchmarks(tmp_path: Path) -> None:
    doc = report(benchmark([0.05], strategy={"type_": "synchronous"}),
                 benchmark([0.05], strategy={"type_": "constant", "rate": 2.5}))
    with pytest.raises(NotForeign, match=r"2 benchmarks \(0: concurrency 1; 1: rate 2.5/s\).*jq"):
        read_foreign(write(tmp_path / "sweep.json", doc))
    with pytest.raises(NotForeign, match="no benchmarks"):
        read_foreign(write(tmp_path / "empty.json", report()))


@pytest.mark.parametrize("doc", [report(benchmark([0.05]))["benchmarks"][0], {"benchmarks": "x"}])
def test_malformed_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any) -> None:
    bad = write(tmp_path / "bad.json", doc)
    good = write(tmp_path / "g.json", report(benchmark([0.05] * 20)))
    assert main(["compare", str(bad), str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "GuideLLM" in err[0]


def test_sweep_refusal_through_the_cli_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write(tmp_path / "s.json", report(benchmark([0.05]), benchmark([0.06])))
    good = write(tmp_path / "g.json", report(benchmark([0.05] * 20)))
    assert main(["compare", str(sweep), str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 benchmarks" in err[0]


def test_two_reports_compare(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = write(tmp_path / "a.json", report(benchmark(list(rng.lognormal(np.log(0.05), 0.2, 40)))))
    b = write(tmp_path / "b.json", report(benchmark(list(rng.lognormal(np.log(0.08), 0.2, 40)))))
    made = make_comparison(a, b)
    r = {x.metric.key: x for x in made.comparison.results}
    assert r["ttft_s:p50"].verdict == "worse" and "itl_s:p50" not in r
