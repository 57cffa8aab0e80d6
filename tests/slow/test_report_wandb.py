"""The optional Weights & Biases sink, in offline mode (nothing leaves the machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.report.wandb_sink import flat_summary
from test_report import RUNS


def test_flat_summary() -> None:
    import json

    summary = json.loads((RUNS / "compare" / "llamacpp-smollm2" / "single" / "summary.json").read_text())
    flat = flat_summary(summary)
    assert flat["ttft_s/p50"] == summary["metrics"]["ttft_s"]["p50"]
    assert flat["requests_per_min"] == summary["metrics"]["requests_per_min"] and flat["counts/completed"] == 4


@pytest.mark.timeout(180)
def test_report_logs_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main(["report", str(RUNS / "compare" / "llamacpp-smollm2"), "--wandb", "loadtest-test"]) == 0
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # single and throughput
    files = {p.name for r in runs for p in r.rglob("*")}
    assert any(name.endswith(".wandb") for name in files)  # the offline log a later `wandb sync` uploads
    import json

    tables = [json.loads(p.read_text()) for r in runs for p in r.rglob("requests_*.table.json")]
    assert [len(t["data"]) for t in tables] == [4, 4] and "ttft_s" in tables[0]["columns"]


@pytest.mark.timeout(180)
def test_single_logs_its_run_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    server = sim(ttft_ms=5, tpot_ms=1)
    assert main(["single", "--endpoint", server.base_url, "--num-prompts", "2", "--max-tokens", "8", "--quiet",
                 "--output", str(tmp_path / "run"), "--wandb", "loadtest-test"]) == 0
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
