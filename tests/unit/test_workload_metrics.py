"""The non-chat metrics in report and compare, from summaries written by hand: the report's
workload columns (present only when a run has them, averaged over a row, RTFx pooled over
requests), the generation columns left out for embeddings-only reports, and compare's run rates
and per-request RTFx (names, direction, --fail-if parsing, read from each run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtest.compare.analyze import BETTER, WORSE, compare_sides
from loadtest.compare.gate import parse_rule
from loadtest.compare.metrics import BY_KEY, HIGHER, RUN_RATES, find
from loadtest.compare.sides import Side, run_rate
from loadtest.report.load import SavedRun
from loadtest.report.rates import group_rate_stats, notes_for, present
from loadtest.report.tables import comparison_table, pivot_table


def saved(tmp_path: Path, name: str, api: str, metrics: dict[str, Any], rtfx: list[float] | None = None,
          command: str = "throughput") -> SavedRun:
    d = tmp_path / name
    d.mkdir(parents=True)
    rows = [{"ok": True, "rtfx": v, "e2e_s": 1.0} for v in rtfx or []]
    (d / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return SavedRun(path=d, label=name, summary={"command": command, "config": {"api": api, "model": "m"},
                                                  "counts": {"completed": len(rows), "failed": 0},
                                                  "metrics": metrics})


EMB = {"inputs_per_s": 100.0, "documents_per_s": None, "prompt_tokens_per_s": 5000.0, "output_tokens_per_s": 0.0,
       "requests_per_min": 600.0, "ttft_s": None}
ASR = {"audio_seconds_per_s": 30.0, "rtfx": {"mean": 12.0, "p50": 11.0}, "output_tokens_per_s": 50.0,
       "prompt_tokens_per_s": 40.0, "ttft_s": {"p50": 0.02, "p99": 0.03}}
CHAT = {"output_tokens_per_s": 300.0, "prompt_tokens_per_s": 900.0, "ttft_s": {"p50": 0.01, "p99": 0.02},
        "tokens_per_s": {"mean": 50.0, "p50": 50.0}}


def test_rate_stats_average_a_row_and_pool_rtfx_over_requests(tmp_path: Path) -> None:
    one = saved(tmp_path, "a", "transcriptions", ASR, rtfx=[10.0, 14.0])
    assert group_rate_stats([one])["rtfx_mean"] == 12.0  # one run: its summary's mean
    two = saved(tmp_path, "b", "transcriptions", {**ASR, "audio_seconds_per_s": 50.0}, rtfx=[20.0, 20.0, 20.0, 20.0])
    s = group_rate_stats([one, two])
    assert s["rtfx_mean"] == pytest.approx(104 / 6)  # all six requests, not the mean of the two means
    assert s["audio_seconds_per_s"] == 40.0
    assert s["prompt_tokens_per_s"] is None and s["inputs_per_s"] is None  # prompt tok/s: embeddings/rerank only
    emb = group_rate_stats([saved(tmp_path, "e", "embeddings", EMB)])
    assert emb["inputs_per_s"] == 100.0 and emb["prompt_tokens_per_s"] == 5000.0 and emb["documents_per_s"] is None
    assert present([s, emb]) == ["inputs_per_s", "prompt_tokens_per_s", "rtfx_mean", "audio_seconds_per_s"]
    assert present([group_rate_stats([saved(tmp_path, "c", "chat", CHAT)])]) == []
    notes = notes_for(["inputs_per_s"])
    assert len(notes) == 1 and "inputs/s" in notes[0] and "docs/s" not in notes[0]


def test_embeddings_only_tables_leave_the_generation_columns_out(tmp_path: Path) -> None:
    runs = [saved(tmp_path, "e", "embeddings", EMB), saved(tmp_path, "r", "rerank",
                                                           {**EMB, "inputs_per_s": None, "documents_per_s": 70.0})]
    table, groups = comparison_table(runs, ["run"])
    keys = [c.key for c in table.columns]
    assert "ttft_p50_s" not in keys and "output_tokens_per_s" not in keys and "tokens_per_s_mean" not in keys
    assert keys[-3:] == ["inputs_per_s", "documents_per_s", "prompt_tokens_per_s"]
    assert [r["documents_per_s"] for r in table.rows] == [None, 70.0]
    assert "TTFT" not in table.notes[-1] or "no TTFT" in table.notes[-1]
    assert pivot_table(groups, ["engine", "model"], command="single", stat="tokens_per_s_mean", title="t") is None


def test_mixed_tables_keep_chat_columns_and_show_dashes_not_zeros(tmp_path: Path) -> None:
    runs = [saved(tmp_path, "chat", "chat", CHAT), saved(tmp_path, "emb", "embeddings", EMB),
            saved(tmp_path, "img", "chat", {**CHAT, "images_per_s": 4.0})]
    table, _ = comparison_table(runs, ["run"])
    keys = [c.key for c in table.columns]
    assert {"ttft_p50_s", "output_tokens_per_s", "inputs_per_s", "images_per_s"} <= set(keys)
    assert "rtfx_mean" not in keys and "documents_per_s" not in keys
    rows = {r["run"]: r for r in table.rows}
    assert rows["emb"]["output_tokens_per_s"] is None  # 0.0 in its summary: not a generation
    assert rows["chat"]["output_tokens_per_s"] == 300.0 and rows["chat"]["inputs_per_s"] is None
    assert rows["img"]["images_per_s"] == 4.0 and rows["chat"]["prompt_tokens_per_s"] is None


def test_compare_knows_the_new_metrics_and_their_direction() -> None:
    for key in ("inputs_per_s", "documents_per_s", "prompt_tokens_per_s", "images_per_s", "audio_seconds_per_s",
                "rtfx:mean", "rtfx:p50"):
        assert BY_KEY[key].better == HIGHER
    assert {m.key for m in RUN_RATES} >= {"inputs_per_s", "rtfx:mean", "goodput_requests_per_min"}
    assert BY_KEY["rtfx:p50"].kind == "request"
    assert parse_rule("inputs_per_s<-5%").metric.key == "inputs_per_s"
    assert parse_rule("documents<-5%").metric.key == "documents_per_s"
    assert parse_rule("rtfx:p50<-10%").metric.key == "rtfx:p50"
    assert parse_rule("rtfx:mean<-10%").metric.kind == "rate"
    with pytest.raises(ValueError, match="needs a statistic"):
        find("rtfx", None)


def _side(tmp_path: Path, role: str, inputs: list[float], rtfx: float) -> Side:
    runs = [saved(tmp_path / role, f"rep-{k}", "embeddings",
                  {"inputs_per_s": v, "rtfx": {"mean": rtfx}}, rtfx=[rtfx + 0.1 * i for i in range(30)])
            for k, v in enumerate(inputs, 1)]
    return Side(role, tmp_path / role, runs, group=True)


def test_fewer_inputs_per_s_and_lower_rtfx_are_worse(tmp_path: Path) -> None:
    base = _side(tmp_path, "baseline", [100.0, 101.0, 99.0], 10.0)
    cand = _side(tmp_path, "candidate", [80.0, 81.0, 79.0], 8.0)
    assert run_rate(base.runs[0], BY_KEY["inputs_per_s"]) == 100.0
    assert run_rate(base.runs[0], BY_KEY["rtfx:mean"]) == 10.0
    r = {x.metric.key: x for x in compare_sides(base, cand, resamples=200).results}
    assert r["inputs_per_s"].verdict == WORSE and r["inputs_per_s"].change == pytest.approx(-20.0)
    assert r["rtfx:p50"].verdict == WORSE and r["rtfx:p50"].change < 0
    assert "images_per_s" not in r and "requests_per_min" not in r  # neither side has them
    back = {x.metric.key: x for x in compare_sides(cand, base, resamples=200).results}
    assert back["inputs_per_s"].verdict == BETTER and np.isfinite(back["inputs_per_s"].p_adjusted)
