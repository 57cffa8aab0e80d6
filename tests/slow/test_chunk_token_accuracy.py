"""Tokens per chunk against the test server's ground truth: chunks of 1..4 tokens (the first of 1),
usage only at the end unless asked, no --tokenizer. The sim logs every chunk's tokens and send time
(--log-chunks), so the client's TPOT and per-token ITL are compared with what was really sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadtest.measure.metrics import summarize

N, CONC, MAX_TOKENS, TPOT_MS = 16, 4, 64, 10.0


def run(cli, sim, tmp_path: Path, **sim_options):
    log = tmp_path / "chunks.jsonl"
    s = sim(ttft_ms=20, tpot_ms=TPOT_MS, chunk_tokens_max=4, log_chunks=str(log), **sim_options)
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", str(N),
                               "--concurrency", str(CONC), "--max-tokens", str(MAX_TOKENS)], tmp_path / "run")
    truth = {e["id"]: e for e in map(json.loads, log.read_text().splitlines())}
    return code, summary, rows, truth, s


def true_tpot_s(t: dict) -> float:
    return (t["sent_ns"][-1] - t["sent_ns"][0]) / 1e9 / (sum(t["tokens"]) - t["tokens"][0])


def true_itl(truth: dict) -> dict:
    """Per-token ITL of what the server sent, summarised exactly as the client's is."""
    values, weights = [], []
    for t in truth.values():
        gaps = np.diff(np.array(t["sent_ns"], dtype=float)) / 1e9
        k = np.array(t["tokens"][1:], dtype=float)
        values.append(gaps / k)
        weights.append(k)
    return summarize(np.concatenate(values), np.concatenate(weights))


def tpot_error(rows, truth) -> float:
    """Relative error of the mean TPOT over requests."""
    ok = [r for r in rows if r["tpot_s"] is not None]
    client = sum(r["tpot_s"] for r in ok) / len(ok)
    server = sum(true_tpot_s(truth[r["response_id"]]) for r in ok) / len(ok)
    return client / server - 1


@pytest.mark.parametrize("early_stops", [False, True])
def test_first_chunk_rule_alone_keeps_tpot_within_half_a_percent(cli, sim, tmp_path, early_stops):
    code, summary, rows, truth, _ = run(cli, sim, tmp_path, early_stops=early_stops)
    assert code == 0 and summary["counts"]["completed"] == N
    assert summary["chunk_token_source"] == {"text_share": N} and summary["chunk_tokens_exact"] is False
    assert summary["token_source"] == {"usage": N}
    # no /tokenize on this server: asked once after the run, and the kept chunk texts are gone
    assert summary["run"]["tokenize_endpoint"] is None and summary["run"]["chunk_tokens_refined"] is None
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "requests.jsonl", "server_metrics.jsonl", "summary.json"]
    for r in rows:
        t = truth[r["response_id"]]
        assert r["chunk_tokens"][0] == 1 == t["tokens"][0]
        assert sum(r["chunk_tokens"]) == sum(t["tokens"]) == r["completion_tokens"]
        assert len(r["chunk_tokens"]) == len(t["tokens"])
    if early_stops:
        assert {r["finish_reason"] for r in rows} >= {"stop"}
    assert abs(tpot_error(rows, truth)) < 0.005
    # chunk-level ITL: one sample per gap between chunks, with no token counts involved
    itl_chunk = summary["metrics"]["itl_chunk_s"]
    assert itl_chunk["count"] == sum(len(t["tokens"]) - 1 for t in truth.values())
    assert itl_chunk["mean"] > summary["metrics"]["itl_s"]["mean"] * 1.5  # chunks average 2.5 tokens


def _exact(summary, rows, truth, source: str) -> None:
    assert summary["chunk_token_source"] == {source: N} and summary["chunk_tokens_exact"] is True
    for r in rows:
        assert r["chunk_tokens"] == truth[r["response_id"]]["tokens"]
        assert r["chunk_token_source"] == source
    assert abs(tpot_error(rows, truth)) < 0.002
    assert abs(summary["metrics"]["itl_s"]["p99"] - true_itl(truth)["p99"]) < 0.0005
    assert abs(summary["metrics"]["itl_s"]["mean"] - true_itl(truth)["mean"]) < 0.0005


def test_tokenize_endpoint_after_the_run_gives_exact_counts(cli, sim, tmp_path):
    code, summary, rows, truth, s = run(cli, sim, tmp_path, tokenize_endpoint=True)
    assert code == 0 and summary["counts"]["completed"] == N
    _exact(summary, rows, truth, "tokenize_endpoint")
    assert summary["run"]["chunk_tokens_refined"] == N and summary["run"]["tokenize_to_usage_ratio"] == 1.0
    assert summary["run"]["tokenize_endpoint"] == s.root_url + "/tokenize"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "requests.jsonl", "server_metrics.jsonl", "summary.json"]


def test_continuous_usage_is_asked_for_and_used_exactly(cli, sim, tmp_path):
    code, summary, rows, truth, _ = run(cli, sim, tmp_path, continuous_usage=True, tokenize_endpoint=True)
    assert code == 0 and summary["run"]["continuous_usage_sent"] is True
    _exact(summary, rows, truth, "usage_per_chunk")
    assert summary["run"]["chunk_tokens_refined"] is None  # nothing left to count: the server not even asked


def test_rejected_continuous_usage_falls_back_to_include_usage_for_the_run(cli, sim, tmp_path):
    code, summary, rows, truth, s = run(cli, sim, tmp_path, continuous_usage=True, reject_continuous_usage=True)
    assert code == 0 and summary["counts"]["completed"] == N
    run_info = summary["run"]
    assert run_info["continuous_usage_rejected"] is True and run_info["continuous_usage_sent"] is False
    assert run_info["stream_options_sent"] is True and run_info["stream_options_rejected"] is False
    assert summary["token_source"] == {"usage": N} and summary["chunk_token_source"] == {"text_share": N}
    # the first requests in flight were each rejected once, the rest never
    assert N < s.stats()["requests_received"] <= N + CONC
