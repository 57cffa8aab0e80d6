"""The client against the deterministic test server: measured values within stated tolerances."""

from __future__ import annotations

import pytest

from loadtest.tokens import load_tokenizer

pytestmark = pytest.mark.usefixtures("hot_path")  # every test on the C and the pure-Python path

TTFT_TOL_S = 0.005   # the tolerance at concurrency 1
TPOT_TOL_S = 0.0005


def single(run_cli, sim, tmp_path, *extra: str, n: int = 5, max_tokens: int = 20):
    return run_cli(["single", "--endpoint", sim.base_url, "--model", "sim-model", "--num-prompts", str(n),
                    "--max-tokens", str(max_tokens), *extra], tmp_path)


def test_empty_chunks_add_no_itl_samples(cli, sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=5, empty_chunks=True)
    code, summary, rows = single(cli, s, tmp_path, n=3)
    assert code == 0
    assert all(r["content_chunks"] == 20 and r["chunks"] > 40 for r in rows)
    assert summary["metrics"]["itl_s"]["count"] == 3 * 19
    assert abs(summary["metrics"]["itl_s"]["mean"] - 0.005) < TPOT_TOL_S


def test_without_usage_a_tokenizer_counts_else_chunks_labelled(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, usage=False, tokens_per_chunk=2)
    code, summary, rows = single(cli, s, tmp_path / "tok", "--tokenizer", "cl100k_base", n=2, max_tokens=10)
    assert code == 0 and summary["token_source"] == {"tokenizer": 2}
    expected = load_tokenizer("cl100k_base").count("".join(f" tok{i}" for i in range(10)))
    assert all(r["completion_tokens"] == expected for r in rows)
    code, summary, rows = single(cli, s, tmp_path / "chunks", n=2, max_tokens=10)
    assert summary["token_source"] == {"chunks": 2}
    assert all(r["completion_tokens"] == 5 and r["token_source"] == "chunks" for r in rows)


def test_rejected_stream_options_are_retried_without_and_dropped(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, reject_stream_options=True)
    code, summary, rows = single(cli, s, tmp_path, n=4, max_tokens=8)
    assert code == 0 and summary["counts"]["completed"] == 4
    assert summary["run"]["stream_options_rejected"] is True and summary["run"]["stream_options_sent"] is False
    assert summary["token_source"] == {"chunks": 4}
    assert summary["run"]["continuous_usage_sent"] is False
    # Only the first request needed retries: 4 successes + 2 rejections (with continuous_usage_stats,
    # then with include_usage alone).
    assert s.stats()["requests_received"] == 6


def test_missing_done_crlf_and_no_role_chunk_are_fine(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=2, done=False, crlf=True, role_chunk=False)
    code, summary, rows = single(cli, s, tmp_path, n=3, max_tokens=10)
    assert code == 0 and summary["counts"]["completed"] == 3
    assert all(r["completion_tokens"] == 10 and 0.010 <= r["ttft_s"] < 0.015 for r in rows)


def test_reasoning_tokens_ttft_and_visible_ttft(cli, sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=5, reasoning_tokens=6)
    code, summary, rows = single(cli, s, tmp_path, n=2, max_tokens=12)
    assert code == 0
    for r in rows:
        assert 0.020 <= r["ttft_s"] < 0.025
        assert 0.020 + 6 * 0.005 <= r["ttft_content_s"] < 0.050 + TTFT_TOL_S
        assert r["completion_tokens"] == 12


def test_completions_api_and_non_streaming(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=2)
    code, summary, rows = single(cli, s, tmp_path / "c", "--api", "completions", n=2, max_tokens=6)
    assert code == 0 and all(r["completion_tokens"] == 6 and r["ttft_s"] >= 0.010 for r in rows)
    code, summary, rows = single(cli, s, tmp_path / "n", "--no-stream", n=2, max_tokens=6)
    assert code == 0
    assert all(r["ttft_s"] is None and r["tpot_s"] is None and r["completion_tokens"] == 6 for r in rows)
    assert all(r["e2e_s"] >= 0.010 + 5 * 0.002 for r in rows)
    assert summary["metrics"]["ttft_s"]["mean"] is None


def test_summary_has_the_documented_shape(cli, sim, tmp_path):
    s = sim(ttft_ms=1, tpot_ms=1)
    code, summary, rows = single(cli, s, tmp_path, "--seed", "7", n=3, max_tokens=4)
    for key in ("schema_version", "command", "config", "client", "definitions", "counts", "metrics",
                "token_source", "errors"):
        assert key in summary
    assert summary["config"]["seed"] == 7 and summary["config"]["api_key"] is None
    for metric in ("tokens_per_s", "ttft_s", "tpot_s", "itl_s", "e2e_s"):
        assert set(summary["metrics"][metric]) >= {"mean", "p50", "p90", "p95", "p99", "min", "max", "std"}
    for key in ("requests_per_min", "requests_per_s", "output_tokens_per_s", "completion_tokens_total",
                "prompt_tokens_total"):
        assert key in summary["metrics"]
    run = summary["run"]
    assert run["client_cpu_s"] > 0 and run["client_cpu_s_per_1k_tokens"] > 0
    split = run["client_cpu_user_s"] + run["client_cpu_system_s"]
    assert split == pytest.approx(run["client_cpu_s"], rel=0.2, abs=0.01)  # two clocks of the same CPU time
    for row in rows:
        assert set(row) >= {"id", "prompt_id", "ok", "status", "error_kind", "error", "start_s", "ttft_s", "e2e_s",
                            "completion_tokens", "prompt_tokens", "token_source", "finish_reason", "chunks",
                            "tokens_per_s"}
    assert [r["prompt_id"] for r in rows] == [r["prompt_id"] for r in single(cli, s, tmp_path / "again", "--seed", "7",
                                                                              n=3, max_tokens=4)[2]]


def test_keep_alive_pool_preconnect_and_connect_time(cli, sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1)
    code, summary, rows = single(cli, s, tmp_path / "pre", n=4, max_tokens=4)
    assert all(r["connect_s"] is None for r in rows)  # opened before the window, then kept alive
    assert summary["run"]["connections_preopened"] is True
    code, summary, rows = single(cli, s, tmp_path / "cold", "--no-preconnect", n=4, max_tokens=4)
    assert rows[0]["connect_s"] is not None and 0 < rows[0]["connect_s"] < rows[0]["ttft_s"]
    assert all(r["connect_s"] is None for r in rows[1:])
