"""loadtest single and throughput end to end on real llama.cpp (xllamacpp) serving SmolLM2.

Beyond plausibility, the decode rate is checked against llama.cpp's own clock (its `timings`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_checks import assert_engine_gone, assert_plausible, loadtest, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("llamacpp")


def test_llamacpp_single_decode_rate_agrees_with_the_engines_clock(tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["single", "--launch", "llamacpp", "--num-prompts", "6", "--max-tokens", "64",
                                 "--ignore-eos"], tmp_path)
    assert_plausible(summary, rows, 6)
    assert summary["server"]["engine"] == "llamacpp" and summary["server"]["quantisation"] == "Q4_1"
    assert summary["server"]["model"]["sha256"] and summary["config"]["ignore_eos"] is True
    for r in rows:
        timings = r["engine_timings"]
        assert r["completion_tokens"] == 64 == timings["predicted_n"]  # ignore_eos honoured, usage exact
        # Our decode rate (after the first chunk) against llama.cpp's predicted_per_second, same request.
        assert r["decode_tokens_per_s"] == pytest.approx(timings["predicted_per_second"], rel=0.05)
        # TTFT covers prompt processing and the first token, plus HTTP: at least the engine's prompt_ms.
        assert r["ttft_s"] * 1000 >= timings["prompt_ms"]
    assert_engine_gone(summary)


def test_llamacpp_throughput(tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["throughput", "--launch", "llamacpp", "--slots", "4", "--concurrency", "4",
                                 "--num-prompts", "12", "--max-tokens", "48"], tmp_path)
    assert_plausible(summary, rows, 12)
    assert summary["server"]["slots"] == 4
    # Closed loop at concurrency 4: never more than 4 requests overlap at any moment.
    events = sorted([(r["start_s"], 1) for r in rows] + [(r["end_s"], -1) for r in rows])
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak == 4
    # The server's side (--launch llamacpp passes --metrics): its token counters over the window equal
    # the usage the client received, request by request summed; its slots never exceeded ours.
    block = summary["server_metrics"]
    src = block["sources"][0]
    assert (src["engine"], src["status"], src["failed"]) == ("llamacpp", "ok", 0)
    k = block["known"]
    assert k["generation_tokens"] == sum(r["completion_tokens"] for r in rows)
    assert k["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)  # computed + cached, as usage counts
    assert block["tokens_check"]["agree"] is True
    assert 1 <= k["running"]["max"] <= 4
    per = block["ttft_split"]["from_engine_timings"]
    assert per["requests"] == 12 and 0 < per["prefill_s"] < per["ttft_s"] and per["rest_s"] >= 0
    cache = block["prefix_cache"]
    assert cache["server_hit_rate"] == pytest.approx(cache["usage_hit_rate"]) and cache["agree"] is True
    assert_engine_gone(summary)


def test_llamacpp_chunk_tokens_from_its_tokenize_endpoint_after_the_run(tmp_path: Path) -> None:
    """llama.cpp sends usage only at the end; its /tokenize (with pieces) counts each chunk's tokens
    after the run. The counts must agree with its usage and its own decode clock."""
    summary, rows, _ = loadtest(["single", "--launch", "llamacpp", "--num-prompts", "4", "--max-tokens", "64",
                                 "--ignore-eos"], tmp_path)
    assert_plausible(summary, rows, 4)
    run = summary["run"]
    assert run["tokenize_endpoint"].endswith("/tokenize") and run["chunk_tokens_refined"] == 4
    assert run["tokenize_to_usage_ratio"] == pytest.approx(1.0, abs=0.03)
    assert summary["chunk_token_source"] == {"tokenize_endpoint": 4} and summary["chunk_tokens_exact"] is True
    assert not (tmp_path / ".chunk_texts.jsonl").exists()
    for r in rows:
        assert r["chunk_token_source"] == "tokenize_endpoint"
        assert sum(r["chunk_tokens"]) == r["completion_tokens"] == 64 and r["chunk_tokens"][0] == 1
        timings = r["engine_timings"]
        assert r["decode_tokens_per_s"] == pytest.approx(timings["predicted_per_second"], rel=0.02)


def test_llamacpp_three_turn_sessions_hit_its_prompt_cache(tmp_path: Path) -> None:
    """Sessions resend a growing history: llama.cpp answers later turns from its prompt cache
    (timings' cache_n / usage's cached_tokens), and the summary shows it by turn."""
    summary, rows, _ = loadtest(["throughput", "--launch", "llamacpp", "--slots", "2", "--concurrency", "2",
                                 "--num-prompts", "4", "--max-tokens", "24", "--dataset", "synthetic",
                                 "--prompt-tokens", "64", "--turns", "3", "--turn-prompt-tokens", "16"], tmp_path)
    assert summary["counts"]["completed"] == 12 and summary["counts"]["failed"] == 0
    by_turn = {t["turn"]: t for t in summary["sessions"]["by_turn"]}
    assert sorted(by_turn) == [0, 1, 2] and all(t["ok"] == 4 for t in by_turn.values())
    assert by_turn[1]["cached_tokens_mean"] > 0 and by_turn[2]["cached_tokens_mean"] > 0
    for r in rows:
        if r["turn"] > 0:  # the earlier turns and replies came back from the cache
            assert r["cached_tokens"] > 0, r
    assert by_turn[2]["prompt_tokens_mean"] > by_turn[1]["prompt_tokens_mean"] > by_turn[0]["prompt_tokens_mean"]
    assert_engine_gone(summary)
