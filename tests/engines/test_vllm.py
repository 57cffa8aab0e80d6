"""loadtest single and throughput end to end on real vLLM (the CPU build here). Opt-in: ~2 min start
per launch and ~4 GB RAM; `make test-engine ENGINE=vllm` sets LOADTEST_TEST_VLLM=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine_checks import assert_engine_gone, assert_plausible, loadtest, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    if os.environ.get("LOADTEST_TEST_VLLM") != "1":
        pytest.skip("opt-in: LOADTEST_TEST_VLLM=1 or `make test-engine ENGINE=vllm`")
    require_engine("vllm")


def test_vllm_single(tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["single", "--launch", "vllm", "--num-prompts", "10", "--max-tokens", "64",
                                 "--ignore-eos"], tmp_path)
    assert_plausible(summary, rows, 10)
    assert all(r["completion_tokens"] == 64 for r in rows)  # vLLM accepts ignore_eos
    assert_engine_gone(summary)


def test_vllm_throughput(tmp_path: Path) -> None:
    summary, rows, _ = loadtest(["throughput", "--launch", "vllm", "--concurrency", "8", "--num-prompts", "32",
                                 "--max-tokens", "64"], tmp_path)
    assert_plausible(summary, rows, 32)
    assert_engine_gone(summary)
