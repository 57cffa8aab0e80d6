"""`loadtest matrix` on the real engines: llama.cpp and transformers serve, each launched, measured
with single and throughput, stopped, and compared in one report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine_checks import assert_engine_gone, require_engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


def test_matrix_llamacpp_and_transformers(tmp_path: Path) -> None:
    require_engine("llamacpp")
    require_engine("transformers")
    out = tmp_path / "matrix"
    args = [sys.executable, "-m", "loadtest", "matrix", "--engines", "llamacpp,transformers", "--models", "smollm2",
            "--single", "3", "--throughput", "2", "--num-prompts", "2", "--max-tokens", "16", "--warmup", "0",
            "--output", str(out), "--quiet"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for engine in ("llamacpp", "transformers"):
        for command, n in (("single", 3), ("throughput", 2)):
            summary = json.loads((out / f"{engine}-smollm2" / command / "summary.json").read_text())
            assert summary["server"]["engine"] == engine
            assert summary["counts"]["completed"] == n and summary["config"]["max_tokens"] == 16
            assert_engine_gone(summary)
    report = (out / "report.md").read_text()
    pivot = report.split("### tokens/s per request")[1].split("###")[0]
    assert "llamacpp" in pivot and "transformers" in pivot and "**" in pivot  # both engines, the best in bold
    assert "### Method" in report and "### Failed" not in report
    # resumable: a second call runs nothing and reports the same pairs
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stderr.count("already done") == 2
