"""Prefix caching end to end against the test server's real prefix cache, which is the truth: its
--log-chunks line says what it cached for each request. The client's hit rate must equal it, a hit
must save the cached tokens' prefill time, --cache-bust must hit nothing, and the server's own
counters must agree with usage. Bad combinations of the options are one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(120)

P, K, G, N = 128, 64, 2, 12
PREFILL_TOKENS_PER_S = 1280.0  # K tokens: 50 ms


def _server(sim: Any, log: Path, **extra: Any) -> Any:
    return sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.1,
               prefill_tokens_per_s=PREFILL_TOKENS_PER_S, prefix_cache_tokens=4096, prefix_block_tokens=16,
               log_chunks=str(log), **extra)


def _run(cli: Any, server: Any, out: Path, *extra: str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    return cli(["single", "--endpoint", server.base_url, "--dataset", "synthetic", "--prompt-tokens", str(P),
                "--shared-prefix-tokens", str(K), "--num-prompts", str(N), "--max-tokens", "2", *extra], out)


def _truth(log: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sim's lines of the run's requests (the overhead probe before the run left out)."""
    ids = {r["response_id"] for r in rows}
    return [t for t in map(json.loads, log.read_text().splitlines()) if t["id"] in ids]


def test_hit_rate_equals_the_servers_truth_and_hits_save_the_prefill(sim: Any, cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    code, summary, rows = _run(cli, _server(sim, log), tmp_path / "out", "--prefix-groups", str(G))
    assert code == 0 and summary["prompts"]["usage_mismatched"] == 0  # lengths exact, as without groups
    assert summary["prompts"]["prefix_groups"] == G and summary["config"]["prefix_groups"] == G
    truth = _truth(log, rows)
    assert len(truth) == N
    b = summary["prefix_cache"]
    assert b["source"] == "usage" and b["requests_reporting"] == N
    assert b["hit_rate"] == sum(t["cached_tokens"] for t in truth) / sum(t["prompt_tokens"] for t in truth)
    # one request at a time: the first of each group misses, every later one hits its K tokens
    assert (b["hits"], b["misses"]) == (N - G, G)
    assert b["hit_rate"] == (N - G) * K / (N * P)
    assert sorted(r["cached_tokens"] for r in rows) == [0] * G + [K] * (N - G)
    saved = b["ttft_miss_s"]["p50"] - b["ttft_hit_s"]["p50"]
    assert saved == pytest.approx(K / PREFILL_TOKENS_PER_S, abs=0.002)


def test_cache_bust_hits_nothing(sim: Any, cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    code, summary, rows = _run(cli, _server(sim, log), tmp_path / "out", "--prefix-groups", str(G), "--cache-bust")
    assert code == 0 and summary["prompts"]["usage_mismatched"] == 0
    b = summary["prefix_cache"]
    assert b["hit_rate"] == 0.0 and (b["hits"], b["misses"]) == (0, N)
    assert all(t["cached_tokens"] == 0 for t in _truth(log, rows))


def test_no_cache_reports_none(sim: Any, cli: Any, tmp_path: Path) -> None:
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.1)
    code, summary, rows = _run(cli, server, tmp_path / "out", "--prefix-groups", str(G))
    b = summary["prefix_cache"]
    assert code == 0 and b["source"] == "none" and b["hit_rate"] is None and b["hits"] is None
    assert all(r["cached_tokens"] is None for r in rows)


@pytest.mark.parametrize("family", ["vllm", "llamacpp"])
def test_the_servers_counters_agree_with_usage(sim: Any, cli: Any, tmp_path: Path, family: str) -> None:
    log = tmp_path / "sim.jsonl"
    server = _server(sim, log, metrics=(family,), timings=family == "llamacpp")
    code, summary, rows = _run(cli, server, tmp_path / "out", "--prefix-groups", "3",
                               "--server-metrics-interval", "0.1")
    assert code == 0
    pc = summary["server_metrics"]["prefix_cache"]
    assert pc["agree"] is True
    assert pc["server_hit_rate"] == pytest.approx(summary["prefix_cache"]["hit_rate"], abs=1e-12)
    assert pc["usage_hit_rate"] == pytest.approx(summary["prefix_cache"]["hit_rate"], abs=1e-12)
    assert summary["prefix_cache"]["hits"] == N - 3
    if family == "llamacpp":  # timings carry the same cache_n as usage
        assert [r["engine_timings"]["cache_n"] for r in rows] == [r["cached_tokens"] for r in rows]
        assert summary["server_metrics"]["tokens_check"]["agree"] is True



@pytest.mark.parametrize("args, message", [
    (["--prefix-groups", "2", "--shared-prefix-tokens", "8"], "need --dataset synthetic"),
    (["--cache-bust"], "need --dataset synthetic"),
    (["--dataset", "synthetic", "--prompt-tokens", "32", "--prefix-groups", "2"], "needs --shared-prefix-tokens"),
    (["--dataset", "synthetic", "--prompt-tokens", "32", "--shared-prefix-tokens", "8", "--prefix-groups", "0"],
     "--prefix-groups must be >= 1"),
])
def test_bad_combinations_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "loadtest", "single", "--endpoint", "http://127.0.0.1:9/v1",
                           *args, "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ}, cwd=Path(__file__).parents[2])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("loadtest: error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()
