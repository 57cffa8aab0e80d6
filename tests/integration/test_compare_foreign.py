"""A vllm bench serve result as compare's baseline, against a real run on the test server: the run's
own requests written in vLLM's --save-detailed shape (seconds, one gap per chunk) compare with the
run itself as no difference, and a copy with every TTFT 10% longer is found worse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.compare.make import make_comparison

pytestmark = pytest.mark.timeout(120)


def as_vllm(run: Path, out: Path, ttft_scale: float = 1.0) -> Path:
    """The run's requests.jsonl as vllm bench serve --save-result --save-detailed writes it."""
    rows = [json.loads(line) for line in (run / "requests.jsonl").read_text().splitlines()]
    summary = json.loads((run / "summary.json").read_text())
    shift = [r["ttft_s"] * (ttft_scale - 1) if r["ok"] else 0.0 for r in rows]
    doc: dict[str, Any] = {
        "date": "20250101-000000", "backend": "openai-chat", "model_id": None, "num_prompts": len(rows),
        "request_rate": "inf", "burstiness": 1.0, "max_concurrency": summary["config"]["concurrency"],
        "duration": summary["run"].get("window_s", 1.0), "completed": sum(r["ok"] for r in rows),
        "request_throughput": summary["metrics"]["requests_per_min"] / 60,
        "output_throughput": summary["metrics"]["output_tokens_per_s"],
        "input_lens": [r["prompt_tokens"] for r in rows], "output_lens": [r["completion_tokens"] for r in rows],
        "ttfts": [r["ttft_s"] + s if r["ok"] else 0.0 for r, s in zip(rows, shift)],
        "itls": [np.diff(r["chunk_offsets_s"]).tolist() if r["ok"] else [] for r in rows],
        "latencies": [r["e2e_s"] + s if r["ok"] else 0.0 for r, s in zip(rows, shift)],
        "errors": ["" if r["ok"] else str(r["error"]) for r in rows], "generated_texts": [""] * len(rows)}
    out.write_text(json.dumps(doc))
    return out


def by_key(made: Any) -> dict[str, Any]:
    return {r.metric.key: r for r in made.comparison.results}


def test_a_vllm_bench_result_compares_with_the_run_it_came_from(sim: Any, tmp_path: Path) -> None:
    s = sim(ttft_ms=50, tpot_ms=2, jitter=0.1)
    run = tmp_path / "run"
    assert main(["throughput", "--endpoint", s.base_url, "--num-prompts", "80", "--concurrency", "8",
                 "--max-tokens", "8", "--output", str(run), "--quiet"]) == 0
    same = make_comparison(as_vllm(run, tmp_path / "vllm.json"), run)
    r = by_key(same)
    assert r["ttft_s:p50"].test == "Mann-Whitney U" and r["ttft_s:p50"].verdict == "no significant difference"
    assert not any(x.significant for x in same.comparison.results)
    assert {"tpot_s:p50", "itl_s:p50", "e2e_s:p50", "error_rate"} <= set(r)  # derived from vLLM's lists
    assert same.comparison.differ == []  # model, prompts, load (concurrency 8 = inf with max 8), output length

    slower = make_comparison(run, as_vllm(run, tmp_path / "slower.json", ttft_scale=1.1), fmt="json")
    t = by_key(slower)["ttft_s:p50"]
    assert t.verdict == "worse" and t.change == pytest.approx(10.0, abs=1.0) and t.ci[0] > 0
    out = json.loads(slower.text)
    assert out["candidate"]["tool"] == "vllm bench serve"
    assert any(d.startswith("vllm bench serve (candidate): TTFT") for d in out["defined_differently"])
