"""Other tools' result files as a side of loadtest compare: a vllm bench serve result (seconds,
--save-detailed lists) and AIPerf records (value + unit, ms or ns), read by content; their
definitions named; the settings both record checked; a file that is none of them one line, exit 2.
Every sample here is synthetic, written by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.compare.foreign import AIPERF, VLLM, NotForeign, read_foreign, seconds
from loadtest.compare.make import make_comparison
from loadtest.compare.sides import differences, load_side
from loadtest.errors import ConfigError


def vllm_doc(ttfts: list[float], *, tokens: int = 4, gap: float = 0.01, failed: int = 0, detailed: bool = True,
             latencies: bool = True, **top: Any) -> dict[str, Any]:
    """A vllm bench serve --save-result --save-detailed document: times in seconds."""
    n = len(ttfts) + failed
    itls = [[gap] * (tokens - 1) for _ in ttfts] + [[] for _ in range(failed)]
    doc: dict[str, Any] = {"date": "20250101-000000", "backend": "openai-chat", "model_id": "m", "num_prompts": n,
                           "request_rate": "inf", "burstiness": 1.0, "max_concurrency": 4, "duration": 2.0,
                           "completed": len(ttfts), "failed": failed, "request_throughput": len(ttfts) / 2.0,
                           "output_throughput": len(ttfts) * tokens / 2.0, "mean_ttft_ms": 1000 * float(np.mean(ttfts)),
                           **top}
    if detailed:
        doc.update({"input_lens": [100] * n, "output_lens": [tokens] * len(ttfts) + [0] * failed,
                    "ttfts": list(ttfts) + [0.0] * failed, "itls": itls,
                    "errors": [""] * len(ttfts) + ["HTTP 500"] * failed,
                    "generated_texts": ["x" * tokens] * len(ttfts) + [""] * failed})
        if latencies:
            doc["latencies"] = [t + gap * (tokens - 1) for t in ttfts] + [0.0] * failed
    return doc


def aiperf_row(ttft_ms: float, *, tokens: int = 4, gap_ms: float = 10.0, phase: str = "profiling",
               error: bool = False, cancelled: bool = False, unit: str = "ms", start_ns: int = 0) -> dict[str, Any]:
    scale = {"ms": 1.0, "ns": 1e6}[unit]
    e2e = ttft_ms + gap_ms * (tokens - 1)
    metrics = None if error or cancelled else {
        "time_to_first_token": {"value": ttft_ms * scale, "unit": unit},
        "request_latency": {"value": e2e * scale, "unit": unit},
        "inter_chunk_latency": {"value": [gap_ms * scale] * (tokens - 1), "unit": unit},
        "inter_token_latency": {"value": gap_ms * scale, "unit": unit},
        "output_sequence_length": {"value": tokens, "unit": "tokens"},
        "input_sequence_length": {"value": 550, "unit": "tokens"}}
    return {"metadata": {"session_num": 0, "benchmark_phase": phase, "was_cancelled": cancelled,
                         "request_start_ns": start_ns, "request_end_ns": start_ns + int(e2e * 1e6)},
            "metrics": metrics or {"error_isl": {"value": 550, "unit": "tokens"}},
            "error": {"code": 500, "type": "X", "message": "m"} if error or cancelled else None}


def write_aiperf(d: Path, rows: list[dict[str, Any]], aggregate: dict[str, Any] | None = None,
                 name: str = "profile_export.jsonl") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if aggregate is not None:
        (d / "profile_export_aiperf.json").write_text(json.dumps(aggregate))
    return d


def lognormal(seed: int, n: int, median: float) -> list[float]:
    return (median * np.exp(np.random.default_rng(seed).normal(0, 0.2, n))).tolist()


# -- vLLM ----------------------------------------------------------------------------------------------------
def test_vllm_seconds_become_loadtest_records(tmp_path: Path) -> None:
    p = tmp_path / "any-name.txt"  # told by content, not by name
    p.write_text(json.dumps(vllm_doc([0.05, 0.07], tokens=4, gap=0.01, failed=1)))
    f = read_foreign(p)
    assert f.tool == VLLM
    ok = f.run.ok_records
    assert len(f.run.records) == 3 and len(ok) == 2 and not f.run.records[2]["ok"]
    assert ok[0]["ttft_s"] == pytest.approx(0.05) and ok[0]["e2e_s"] == pytest.approx(0.08)
    assert ok[0]["tpot_s"] == pytest.approx(0.01)  # (e2e - ttft) / (4 - 1)
    assert ok[0]["tokens_per_s"] == pytest.approx(4 / 0.08)
    assert ok[0]["chunk_offsets_s"] == pytest.approx([0.05, 0.06, 0.07, 0.08]) and ok[0]["chunk_tokens"] == [1] * 4
    assert f.run.metric("requests_per_min") == pytest.approx(60.0) and f.run.metric("output_tokens_per_s") == 4.0
    assert f.settings == {"model": "m", "num_prompts": 3, "load": "concurrency 4"}
    assert any(d.startswith("TTFT: vLLM") for d in f.definitions)
    assert any("ITL" in d and "agree" in d for d in f.definitions)


def test_vllm_without_latencies_derives_e2e_from_its_itls(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(vllm_doc([0.05], tokens=3, gap=0.02, latencies=False)))
    f = read_foreign(p)
    assert f.run.ok_records[0]["e2e_s"] == pytest.approx(0.09)
    assert any("saved no latencies" in d for d in f.definitions)


def test_vllm_multi_token_chunks_leave_itl_out(tmp_path: Path) -> None:
    doc = vllm_doc([0.05, 0.06], tokens=4)
    doc["output_lens"] = [8, 4]  # the first request's 3 chunks carried 8 tokens: ITL per token not derivable
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    f = read_foreign(p)
    assert all(r["chunk_offsets_s"] is None for r in f.run.records)
    assert any("1 of 2 completed requests" in d and "not compared" in d for d in f.definitions)
    assert f.run.ok_records[0]["tpot_s"] == pytest.approx(0.03 / 7)  # TPOT still derivable, vLLM's way


def test_vllm_without_save_detailed_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(vllm_doc([0.05], detailed=False)))
    with pytest.raises(NotForeign, match="--save-detailed"):
        read_foreign(p)


def test_vllm_rate_and_load_shapes(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(json.dumps(vllm_doc([0.05], request_rate=2.5, max_concurrency=None)))
    assert read_foreign(p).settings["load"] == "rate 2.5/s"


# -- AIPerf --------------------------------------------------------------------------------------------------
def test_aiperf_records_in_ms_and_in_ns_read_alike(tmp_path: Path) -> None:
    a = read_foreign(write_aiperf(tmp_path / "ms", [aiperf_row(40.0, start_ns=10**9)]))
    b = read_foreign(write_aiperf(tmp_path / "ns", [aiperf_row(40.0, unit="ns", start_ns=10**9)]))
    for f in (a, b):
        r = f.run.ok_records[0]
        assert f.tool == AIPERF
        assert r["ttft_s"] == pytest.approx(0.04) and r["e2e_s"] == pytest.approx(0.07)
        assert r["tpot_s"] == pytest.approx(0.01) and r["chunk_offsets_s"] == pytest.approx([0.04, 0.05, 0.06, 0.07])
    assert seconds({"value": 1500, "unit": "us"}) == pytest.approx(0.0015)
    assert seconds({"value": 3, "unit": "tokens"}) is None and seconds(5) is None


def test_aiperf_warmup_cancelled_errors_and_aggregate(tmp_path: Path) -> None:
    rows = [aiperf_row(40.0, phase="warmup"), aiperf_row(40.0), aiperf_row(50.0, start_ns=10**8),
            aiperf_row(0, error=True), aiperf_row(0, cancelled=True)]
    agg = {"request_throughput": {"unit": "requests/sec", "avg": 2.0},
           "output_token_throughput": {"unit": "tokens/sec", "avg": 8.0},
           "input_config": {"endpoint": {"model_names": ["m"]},
                            "loadgen": {"concurrency": 4, "request_count": 4}}}
    d = write_aiperf(tmp_path / "run", rows, agg, name="records.jsonl")  # any name: told by content
    f = read_foreign(d)
    kinds = [(r["ok"], r["error_kind"]) for r in f.run.records]
    assert kinds == [(True, None), (True, None), (False, "foreign"), (False, "cancelled")]
    assert f.run.metric("requests_per_min") == 120.0 and f.run.metric("output_tokens_per_s") == 8.0
    assert f.settings == {"model": "m", "num_prompts": 4, "load": "concurrency 4"}
    assert any("1 warm-up records left out" in d for d in f.definitions)
    assert read_foreign(d / "profile_export_aiperf.json").tool == AIPERF  # the aggregate finds its records
    assert read_foreign(d / "records.jsonl").tool == AIPERF


def test_aiperf_without_its_aggregate_derives_the_rates(tmp_path: Path) -> None:
    d = write_aiperf(tmp_path / "run", [aiperf_row(40.0), aiperf_row(40.0, start_ns=10**9)])
    f = read_foreign(d)
    window = 1.0 + 0.07  # the first start to the last end
    assert f.run.metric("requests_per_min") == pytest.approx(2 / window * 60)
    assert f.settings["load"] is None and any("derived over" in d for d in f.definitions)


# -- as a side of compare --------------------------------------------------------------------------------------
def test_none_of_them_is_one_line_naming_the_file_and_exit_2(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "other.json"
    junk.write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="other.json: not a run directory"):
        load_side(junk, "baseline")
    good = tmp_path / "v.json"
    good.write_text(json.dumps(vllm_doc(lognormal(1, 20, 0.05))))
    assert main(["compare", str(junk), str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(junk) in err[0] and "vllm bench serve" in err[0]


def test_the_guard_checks_what_both_record(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(vllm_doc(lognormal(1, 20, 0.05))))
    b.write_text(json.dumps(vllm_doc(lognormal(2, 20, 0.05), max_concurrency=8, tokens=16)))
    c.write_text(json.dumps(vllm_doc(lognormal(3, 20, 0.05), model_id=None)))
    differ, _ = differences(load_side(a, "baseline"), load_side(b, "candidate"))
    assert [d[0] for d in differ] == ["load", "output tokens per request (median)"]
    with pytest.raises(ConfigError, match="differ in load"):
        make_comparison(a, b)
    made = make_comparison(a, c)
    assert any("did not record" in n and "model" in n and "temperature" in n for n in made.comparison.notes)


def test_definitions_in_every_format(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps(vllm_doc(lognormal(1, 30, 0.05))))
    d = write_aiperf(tmp_path / "aiperf", [aiperf_row(t * 1e3, start_ns=i * 10**7)
                                            for i, t in enumerate(lognormal(2, 30, 0.05))],
                     {"input_config": {"endpoint": {"model_names": ["m"]},
                                       "loadgen": {"concurrency": 4, "request_count": 30}}})
    table = make_comparison(a, d).text
    assert "defined differently\n- vllm bench serve (baseline): TTFT" in table
    assert "- AIPerf (candidate): TPOT: AIPerf's inter_token_latency" in table
    assert "**Defined differently**" in make_comparison(a, d, fmt="markdown").text
    js = json.loads(make_comparison(a, d, fmt="json").text)
    assert js["baseline"]["tool"] == VLLM and js["candidate"]["tool"] == AIPERF
    assert len(js["defined_differently"]) >= 10
    keys = {r["key"] for r in js["results"]}
    assert {"ttft_s:p50", "tpot_s:p50", "e2e_s:p50", "itl_s:p50", "error_rate"} <= keys
    props = ET.fromstring(make_comparison(a, d, fmt="junit").text).iter("property")
    assert sum(p.get("name") == "defined_differently" for p in props) == len(js["defined_differently"])


@pytest.mark.parametrize(("config", "same"), [({"concurrency": 4, "request_rate": None}, True),
                                              ({"concurrency": 1, "request_rate": "inf", "max_concurrency": 4}, True),
                                              ({"concurrency": 8, "request_rate": None}, False),
                                              ({"concurrency": 1, "request_rate": 2.0, "max_concurrency": 4}, False)])
def test_a_loadtest_load_against_vllm_max_concurrency(tmp_path: Path, config: dict[str, Any], same: bool) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"command": "throughput", "config": {"num_prompts": 20, **config},
                                                  "metrics": {}}))
    (run / "requests.jsonl").write_text("".join(json.dumps({"ok": True, "ttft_s": 0.05, "e2e_s": 0.08,
                                                            "completion_tokens": 4}) + "\n" for _ in range(20)))
    v = tmp_path / "v.json"
    v.write_text(json.dumps(vllm_doc(lognormal(1, 20, 0.05))))
    differ, unknown = differences(load_side(run, "baseline"), load_side(v, "candidate"))
    assert [d[0] for d in differ] == ([] if same else ["load"])
    assert "model" in unknown and "seed" in unknown
