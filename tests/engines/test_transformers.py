"""loadtest single and throughput end to end on real `transformers serve` (SmolLM2 exported from the GGUF)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_checks import assert_engine_gone, assert_plausible, loadtest, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("transformers")


def test_transformers_serve_single_and_throughput(tmp_path: Path) -> None:
    summary, rows, stderr = loadtest(["single", "--launch", "transformers", "--num-prompts", "3",
                                      "--max-tokens", "24", "--ignore-eos"], tmp_path / "single")
    assert_plausible(summary, rows, 3)
    # transformers serve answers 422 to unknown fields: ignore_eos is not sent to it, and the user is told.
    assert "does not accept ignore_eos" in stderr and summary["config"]["ignore_eos"] is False
    assert summary["server"]["engine"] == "transformers"
    # No /tokenize and no per-chunk usage: the launched model's own tokenizer counts each chunk.
    assert "launched model" in summary["run"]["tokenizer"] and summary["chunk_token_source"] == {"tokenizer": 3}
    assert all(sum(r["chunk_tokens"]) == r["completion_tokens"] and r["chunk_tokens"][0] >= 1 for r in rows)
    assert_engine_gone(summary)
    summary, rows, _ = loadtest(["throughput", "--launch", "transformers", "--concurrency", "2",
                                 "--num-prompts", "4", "--max-tokens", "16"], tmp_path / "throughput")
    assert_plausible(summary, rows, 4)
    assert_engine_gone(summary)
