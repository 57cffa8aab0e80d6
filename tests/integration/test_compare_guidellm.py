"""A GuideLLM report as compare's baseline, against a real run on the test server: the run's own
requests written in GuideLLM's benchmarks.json shape (epoch seconds) compare with the run itself as
no significant TTFT difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from loadtest.compare.make import make_comparison

pytestmark = pytest.mark.timeout(120)
T0 = 1_700_000_000.0


def as_guidellm(run: Path, out: Path) -> Path:
    rows = [json.loads(line) for line in (run / "requests.jsonl").read_text().splitlines()]
    summary = json.loads((run / "summary.json").read_text())
    reqs: dict[str, list[dict[str, Any]]] = {"successful": [], "errored": [], "incomplete": []}
    for r in rows:
        start = T0 + (r.get("start_s") or 0.0)
        t: dict[str, Any] = {"request_start": start}
        if r["ok"]:
            offs = r["chunk_offsets_s"]
            t |= {"first_token_iteration": start + r["ttft_s"], "last_token_iteration": start + offs[-1],
                  "token_iterations": len(offs), "request_end": start + r["e2e_s"]}
        else:
            t["request_end"] = start
        reqs["successful" if r["ok"] else "errored"].append(
            {"info": {"timings": t}, "output_tokens": r["completion_tokens"], "prompt_tokens": r["prompt_tokens"]})
    bench = {"config": {"strategy": {"type_": "concurrent", "streams": summary["config"]["concurrency"]}},
             "scheduler_metrics": {"measure_start_time": T0, "measure_end_time": T0 + 3600},
             "requests": reqs}
    out.write_text(json.dumps({"metadata": {"version": 2}, "benchmarks": [bench]}))
    return out


def test_a_guidellm_report_compares_with_the_run_it_came_from(sim: Any, tmp_path: Path) -> None:
    s = sim(ttft_ms=50, tpot_ms=2, jitter=0.1)
    run = tmp_path / "run"
    assert main(["throughput", "--endpoint", s.base_url, "--num-prompts", "80", "--concurrency", "8",
                 "--max-tokens", "8", "--output", str(run), "--quiet"]) == 0
    same = make_comparison(as_guidellm(run, tmp_path / "benchmarks.json"), run, fmt="json")
    r = {x.metric.key: x for x in same.comparison.results}
    assert r["ttft_s:p50"].verdict == "no significant difference"
    assert not r["ttft_s:p50"].significant and not r["e2e_s:p50"].significant
    out = json.loads(same.text)
    assert out["baseline"]["tool"] == "GuideLLM"
    assert any(d.startswith("GuideLLM (baseline): TPOT") for d in out["defined_differently"])
