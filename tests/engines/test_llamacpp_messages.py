"""--api messages end to end on real llama.cpp (xllamacpp), which serves Anthropic's /v1/messages:
output tokens from usage agree with the streamed text (counted by llama.cpp's own /tokenize after
the run) and with llama.cpp's own token counters; TTFT is measured; the prompt's usage is mapped
(input_tokens + cache_read_input_tokens, as llama.cpp splits it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_checks import assert_engine_gone, assert_plausible, loadtest, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("llamacpp")


def test_llamacpp_messages_api_usage_agrees_with_the_stream(tmp_path: Path) -> None:
    # llama.cpp's /v1/messages drops ignore_eos (its Anthropic conversion keeps only the API's own
    # fields), so a reply may stop before --max-tokens: lengths are checked against usage, not 32.
    summary, rows, _ = loadtest(["throughput", "--launch", "llamacpp", "--api", "messages", "--slots", "2",
                                 "--concurrency", "2", "--num-prompts", "6", "--max-tokens", "32"], tmp_path)
    assert_plausible(summary, rows, 6)
    assert summary["config"]["api"] == "messages" and summary["run"]["stream_options_sent"] is False
    for r in rows:
        n = r["completion_tokens"]
        assert 0 < n <= 32 and r["token_source"] == "usage" and r["finish_reason"] == ("length" if n == 32 else "stop")
        assert r["ttft_s"] is not None and r["ttft_content_s"] == r["ttft_s"]  # no thinking: one first token
        assert r["cached_tokens_source"] == "anthropic" and r["prompt_tokens"] > r["cached_tokens"] >= 0
        assert 0 < r["content_chunks"] <= n and sum(r["chunk_tokens"]) == n and r["decode_tokens_per_s"] > 0
    # The streamed text, counted by llama.cpp's /tokenize after the run, is what usage says was generated
    # (a reply that stopped also counts its end-of-turn token, which sends no text).
    run = summary["run"]
    assert run["chunk_tokens_refined"] == 6 and run["tokenize_to_usage_ratio"] == pytest.approx(1.0, abs=0.05)
    # llama.cpp's own counters over the window: the tokens the Messages API's usage reported.
    block = summary["server_metrics"]
    assert block["sources"][0]["status"] == "ok"
    assert block["known"]["generation_tokens"] == sum(r["completion_tokens"] for r in rows)
    assert block["tokens_check"]["agree"] is True
    assert_engine_gone(summary)
