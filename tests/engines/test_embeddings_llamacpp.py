"""--api embeddings and --api rerank end to end on real llama.cpp (xllamacpp) serving SmolLM2, launched
with embeddings on (`--launch llamacpp --embeddings`: the launcher passes --embeddings and the
pooling). The server's usage must count exactly the synthetic lengths asked (by its own /tokenize),
and no generation metric may be claimed. Rerank runs on the reranker GGUF in $LOADTEST_RERANKER_GGUF
when given, else on SmolLM2 with rank pooling as a stand-in (its scores mean nothing; its timing and
token counts are real). A llama.cpp started without embeddings ends the run with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_checks import assert_engine_gone, loadtest, require_engine

from loadtest.launch.launcher import LaunchSpec, launch

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

SMOLLM2_HIDDEN = 576  # SmolLM2-135M's embedding width: what mean pooling returns


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("llamacpp")


def _no_generation(summary: dict, rows: list[dict]) -> None:
    for r in rows:
        assert r["ok"] and r["e2e_s"] > 0 and r["token_source"] == "usage"
        assert r["ttft_s"] is None and r["tpot_s"] is None and r["completion_tokens"] is None
    m = summary["metrics"]
    assert m["ttft_s"]["count"] == 0 and m["itl_s"]["count"] == 0 and m["e2e_s"]["count"] == len(rows)
    assert m["requests_per_s"] > 0 and m["prompt_tokens_per_s"] > 0


def test_llamacpp_embeddings_batches_of_exact_length(tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["throughput", "--launch", "llamacpp", "--embeddings", "--api", "embeddings",
                                 "--batch-size", "4", "--dataset", "synthetic", "--prompt-tokens", "32",
                                 "--concurrency", "2", "--num-prompts", "8"], tmp_path)
    assert summary["counts"]["completed"] == 8 and summary["counts"]["failed"] == 0
    _no_generation(summary, rows)
    assert all(r["inputs"] == 4 and r["embedding_dim"] == SMOLLM2_HIDDEN for r in rows)
    # the server counted exactly what was asked: 4 inputs of 32 tokens by its own tokenizer
    assert [r["prompt_tokens"] for r in rows] == [4 * 32] * 8
    p = summary["prompts"]
    assert p["verified_by_server_tokenize"] and p["usage_exact"] == 8 and p["template_overhead_tokens"] is not None
    m = summary["metrics"]
    assert m["inputs_total"] == 32 and m["inputs_per_s"] == pytest.approx(32 / m["window_s"])
    argv = summary["server"]["launch_command"]["argv"]
    assert argv[argv.index("--embeddings") + 1:argv.index("--embeddings") + 3] == ["--pooling", "mean"]
    assert_engine_gone(summary)


def test_llamacpp_rerank(tmp_path: Path) -> None:
    model = os.environ.get("LOADTEST_RERANKER_GGUF")
    summary, rows, _ = loadtest(["single", "--launch", "llamacpp", "--api", "rerank", "--documents", "4",
                                 "--dataset", "synthetic", "--prompt-tokens", "8", "--document-tokens", "16",
                                 "--num-prompts", "4", *(["--model", model] if model else [])], tmp_path)
    assert summary["counts"]["completed"] == 4
    _no_generation(summary, rows)
    overhead = summary["prompts"]["template_overhead_tokens"] or 0
    assert all(r["documents"] == 4 and r["prompt_tokens"] == 4 * (8 + 16 + overhead) for r in rows)
    assert summary["prompts"]["usage_exact"] == 4 and summary["metrics"]["documents_total"] == 16
    assert "rank" in summary["server"]["launch_command"]["argv"]
    assert_engine_gone(summary)


def test_llamacpp_without_embeddings_is_one_line(tmp_path: Path) -> None:
    with launch(LaunchSpec("llamacpp", slots=1, ctx_size=512, log_dir=tmp_path)) as server:
        proc = subprocess.run([sys.executable, "-m", "loadtest", "single", "--endpoint", server.base_url,
                               "--api", "embeddings", "--num-prompts", "3", "--output", str(tmp_path / "run"),
                               "--quiet"], check=False, capture_output=True, text=True, timeout=120)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "does not serve embeddings (HTTP 501" in err[0] and "--embeddings" in err[0]
