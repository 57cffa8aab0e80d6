"""compare and report on the non-chat workloads, against the test server: a slower embeddings
server is found worse on inputs/s and prompt tokens/s (Welch over three repeats a side) with the
right sign, and --fail-if gates on it; a slower transcription server is found worse on RTFx per
request; report shows inputs/s, RTFx and audio s/s equal to each run's summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from loadtest.compare.make import make_comparison

pytestmark = pytest.mark.timeout(120)


def run(sim: Any, out: Path, *extra: str, n: int = 24) -> Path:
    code = main(["throughput", "--endpoint", sim.base_url, "--model", "sim-model", "--num-prompts", str(n),
                 "--concurrency", "4", *extra, "--output", str(out), "--quiet"])
    assert code == 0
    return out


def by_key(made: Any) -> dict[str, Any]:
    return {r.metric.key: r for r in made.comparison.results}


def test_a_slower_embeddings_server_is_found_worse_on_inputs_per_s(sim: Any, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """TTFT (the whole request for an embedding) 20 -> 40 ms: about half the inputs/s. (10 -> 15 ms
    was too close to call on a busy CI machine: a first run 20% off its repeats left Welch's p at
    0.06 after the adjustment.)"""
    for name, ttft in (("base", 20), ("cand", 40)):
        s = sim(ttft_ms=ttft, prefill_tokens_per_s=100_000, jitter=0.05)
        for k in (1, 2, 3):
            run(s, tmp_path / name / f"rep-{k}", "--api", "embeddings", n=32)
    made = make_comparison(tmp_path / "base", tmp_path / "cand")
    r = by_key(made)
    rate = r["inputs_per_s"]
    assert rate.test == "Welch t" and rate.verdict == "worse" and rate.n == (3, 3), rate
    assert -55 < rate.change < -35 and rate.ci[1] < 0  # 20/40 - 1 = -50%, less the client's own share
    assert r["prompt_tokens_per_s"].verdict == "worse" and r["prompt_tokens_per_s"].change < -35
    assert r["e2e_s:p50"].verdict == "worse"
    for absent in ("ttft_s:p50", "tpot_s:p50", "itl_s:p50", "documents_per_s", "images_per_s", "rtfx:p50"):
        assert absent not in r  # not measured on either side: not compared, never read as zero
    assert "not measured on both sides" in made.text and "ttft_s" in made.text
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--fail-if", "inputs_per_s<-5%"]) == 3
    assert "inputs_per_s<-5%: FAILED" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--fail-if", "inputs<-75%"]) == 0
    assert main(["compare", str(tmp_path / "cand"), str(tmp_path / "base"), "--fail-if", "inputs_per_s<-5%"]) == 0
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--format", "json",
                 "--output", str(tmp_path / "c.json")]) == 0
    keys = {x["key"]: x for x in json.loads((tmp_path / "c.json").read_text())["results"]}
    assert keys["inputs_per_s"]["verdict"] == "worse"


def _transcriptions(sim: Any, out: Path, audio_tokens_per_s: int) -> Path:
    s = sim(ttft_ms=5, tpot_ms=2, prefill_tokens_per_s=10_000, audio_tokens_per_s=audio_tokens_per_s,
            transcript_words_per_s=3, jitter=0.05)
    return run(s, out, "--api", "transcriptions", "--audio-seconds", "4", n=30)


def test_a_slower_transcription_server_is_found_worse_on_rtfx(sim: Any, tmp_path: Path) -> None:
    """Twice the audio tokens to prefill (4 s at 50 -> 100 tokens/s of audio: 20 -> 40 ms before the
    first text): every request takes longer, so RTFx (audio s / e2e s) falls."""
    base = _transcriptions(sim, tmp_path / "base", 50)
    cand = _transcriptions(sim, tmp_path / "cand", 100)
    r = by_key(make_comparison(base, cand))
    rtfx = r["rtfx:p50"]
    assert rtfx.test == "Mann-Whitney U" and rtfx.verdict == "worse" and rtfx.change < -10 and rtfx.ci[1] < 0, rtfx
    assert r["ttft_s:p50"].verdict == "worse" and r["ttft_s:p50"].change > 0  # time to first text rose
    assert r["rtfx:mean"].test is None and "repeat" in r["rtfx:mean"].why  # one run a side: a rate is not tested
    assert r["audio_seconds_per_s"].change < 0
    assert main(["compare", str(base), str(cand), "--fail-if", "rtfx:p50<-5%"]) == 3
    assert main(["compare", str(cand), str(base), "--fail-if", "rtfx:p50<-5%"]) == 0


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html", "csv"])
def test_report_shows_the_workload_rates_of_each_run(sim: Any, tmp_path: Path, fmt: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    s = sim(ttft_ms=5, tpot_ms=2, prefill_tokens_per_s=10_000, audio_tokens_per_s=50, transcript_words_per_s=3)
    emb = run(s, tmp_path / "emb", "--api", "embeddings", n=8)
    asr = run(s, tmp_path / "asr", "--api", "transcriptions", "--audio-seconds", "2", n=8)
    chat = run(s, tmp_path / "chat", "--max-tokens", "8", n=8)
    out = tmp_path / f"report.{fmt}"
    assert main(["report", str(emb), str(asr), str(chat), "--by", "run", "--format", fmt,
                 "--output", str(out)]) == 0
    text = out.read_text()
    for label in ("inputs/s", "prompt tok/s", "RTFx mean", "audio s/s", "TTFT p50 ms"):
        assert label in text or fmt in ("json", "csv")
    cell = "<th>{}</th>" if fmt == "html" else "{}"  # (the page's own text may say docs/...)
    assert cell.format("docs/s") not in text and cell.format("images/s") not in text  # no run has them: no column
    if fmt != "json":
        return
    rows = {r["run"]: r for r in json.loads(text)["tables"][0]["rows"]}
    m = {name: json.loads((tmp_path / name / "summary.json").read_text())["metrics"] for name in rows}
    assert rows["emb"]["inputs_per_s"] == m["emb"]["inputs_per_s"] > 0
    assert rows["emb"]["prompt_tokens_per_s"] == m["emb"]["prompt_tokens_per_s"] > 0
    assert rows["emb"]["ttft_p50_s"] is None and rows["emb"]["output_tokens_per_s"] is None  # not 0
    assert rows["asr"]["rtfx_mean"] == m["asr"]["rtfx"]["mean"] > 1
    assert rows["asr"]["audio_seconds_per_s"] == m["asr"]["audio_seconds_per_s"] > 0
    assert rows["asr"]["ttft_p50_s"] == m["asr"]["ttft_s"]["p50"] > 0  # time to first text
    assert rows["chat"]["inputs_per_s"] is None and rows["chat"]["rtfx_mean"] is None
    assert rows["chat"]["prompt_tokens_per_s"] is None  # a chat row's prompt rate is not shown
