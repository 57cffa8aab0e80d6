"""Scale-out (--workers): the dealing is exact, the merged run equals a single process's, one
record per request, and a dead worker is handled as --on-worker-failure says. Against the sim."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _run(cli, s, tmp_path, name, *extra):
    return cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "16", *extra],
               tmp_path / name)


def test_merged_closed_loop_equals_a_single_process(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=12)
    args = ("--concurrency", "4", "--num-prompts", "24", "--warmup", "4", "--seed", "5")
    code1, one, rows1 = _run(cli, s, tmp_path, "one", *args)
    code2, two, rows2 = _run(cli, s, tmp_path, "two", *args, "--workers", "2")
    assert code1 == code2 == 0
    assert one["counts"] == two["counts"] and two["counts"]["completed"] == 24
    for key in ("completion_tokens_total", "prompt_tokens_total"):
        assert one["metrics"][key] == two["metrics"][key]
    assert two["run"]["warmup_requests"] == 4
    # Exactly one record per request, the same requests (index -> prompt) as one process sent.
    ids = [r["id"] for r in rows2]
    assert sorted(ids) == list(range(28)) and len(set(ids)) == len(ids)
    pick = ("id", "prompt_id", "completion_tokens", "prompt_tokens", "warmup")
    assert sorted(tuple(r[k] for k in pick) for r in rows1) == sorted(tuple(r[k] for k in pick) for r in rows2)
    workers = two["run"]["workers"]
    assert [w["concurrency"] for w in workers] == [2, 2] and sum(w["sent"] for w in workers) == 28
    assert all(w["ended"] == "done" and w["client_cpu_s"] is not None for w in workers)
    assert two["run"]["scale_out"]["workers"] == 2 and "request_durations" in two["run"]["scale_out"]["clocks"]
    # Statistics over the raw merged records: the TTFT percentiles are those of the file's rows.
    ttft = [r["ttft_s"] for r in rows2 if not r["warmup"]]
    assert two["metrics"]["ttft_s"]["p99"] == pytest.approx(float(np.percentile(ttft, 99)), rel=1e-12)
    assert "client_bound" in two["verdict"]


def test_scaled_out_run_gets_the_post_run_tokenize_pass(cli, sim, tmp_path):
    """Chunk texts travel with their records; the coordinator refines the merged file as one process would."""
    log = tmp_path / "chunks.jsonl"
    s = sim(ttft_ms=5, tpot_ms=2, chunk_tokens_max=4, log_chunks=str(log), tokenize_endpoint=True)
    code, summary, rows = _run(cli, s, tmp_path, "refined", "--concurrency", "4", "--num-prompts", "16",
                               "--max-tokens", "32", "--workers", "2")
    truth = {e["id"]: e for e in map(json.loads, log.read_text().splitlines())}
    assert code == 0 and summary["counts"]["completed"] == 16
    assert summary["run"]["chunk_tokens_refined"] == 16 and summary["run"]["tokenize_to_usage_ratio"] == 1.0
    for r in rows:
        assert r["chunk_tokens"] == truth[r["response_id"]]["tokens"] and r["chunk_token_source"] == "tokenize_endpoint"
    assert sorted(p.name for p in (tmp_path / "refined").iterdir()) == ["config.json", "requests.jsonl", "server_metrics.jsonl", "summary.json"]
