"""The slowest synthetic-prompt runs of tests/integration/test_synthetic.py (exact counts at three
lengths, and a timed throughput run), moved whole so that make test-fast stays under 2 minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from test_synthetic import _run


@pytest.mark.parametrize("n", [1, 37, 512])
def test_prompts_hit_the_requested_count_exactly(sim: Any, cli: Any, tmp_path: Path, n: int) -> None:
    server = sim(prompt_tokenizer="cl100k_base", ttft_ms=1, tpot_ms=0.1)
    code, summary, rows = _run(cli, server, tmp_path, "--prompt-tokens", str(n), "--num-prompts", "12",
                               "--tokenizer", "cl100k_base")
    assert code == 0
    assert [r["prompt_tokens"] for r in rows] == [n] * 12  # the server's usage: exactly as asked
    p = summary["prompts"]
    assert p["tokenizer"] == "tiktoken:cl100k_base" and p["verified_by_server_tokenize"] is False
    assert p["usage_checked"] == p["usage_exact"] == 12 and p["usage_mismatched"] == 0
    assert p["seed"] == 0 == summary["config"]["seed"] and summary["config"]["prompt_tokens"] == n


def test_throughput_with_a_duration(sim: Any, cli: Any, tmp_path: Path) -> None:
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=2, tpot_ms=1)
    code, summary, rows = cli(["throughput", "--endpoint", server.base_url, "--concurrency", "4", "--duration", "1",
                               "--dataset", "synthetic", "--prompt-tokens", "48", "--max-tokens", "8"], tmp_path)
    done = [r for r in rows if r["ok"]]
    assert code == 0 and len(done) > 20 and all(r["prompt_tokens"] == 48 for r in done)
    assert summary["prompts"]["prompts"] == 1000 and summary["prompts"]["usage_exact"] == len(done)
    assert len({r["prompt_id"] for r in done}) == len(done)  # no prompt sent twice
