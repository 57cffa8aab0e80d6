"""Images and transcriptions against the test server's truth (its --log-chunks lines): image
counts, bytes and tokens as the server received and charged them, TTFT with the images' prefill,
a transcription's time to first text, latency and RTFx from the audio's known length, in vLLM's and
OpenAI's dialects, streamed and not; dataset files; a server without the endpoint; the key kept out
of every file and the console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_bad_input import _cli, _one_error_line

from loadtest.cli.main import main
from loadtest.prompts.audio import synthetic_wav
from loadtest.prompts.images import synthetic_image

PREFILL = 20_000.0  # tokens/s of the sim's prefill: 1000 image tokens = 50 ms


def _truth(log: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sim's line of each record (by response id), the overhead probe and warm-up left out."""
    lines = {t["id"]: t for t in map(json.loads, log.read_text().splitlines())}
    return {r["response_id"]: lines[r["response_id"]] for r in rows if r["ok"]}


def _in_order(log: Path, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(record, sim line) pairs of a one-at-a-time run whose answers carry no id (OpenAI's
    transcription events and bodies, plain transcription bodies): matched in order."""
    lines = [t for t in map(json.loads, log.read_text().splitlines()) if "dialect" in t]
    ordered = sorted(rows, key=lambda r: r["start_s"])
    assert len(lines) == len(ordered)
    return list(zip(ordered, lines))


def _first_token_s(t: dict[str, Any]) -> float:
    return (t["first_token_ns"] - t["recv_ns"]) / 1e9


# -- images -----------------------------------------------------------------------------------------

def test_images_are_charged_and_ttft_includes_their_prefill(cli, sim, tmp_path):
    log = tmp_path / "sim.jsonl"
    s = sim(ttft_ms=5, tpot_ms=1, prefill_tokens_per_s=PREFILL, image_tokens=500, log_chunks=str(log))
    args = ["single", "--endpoint", s.base_url, "--num-prompts", "4", "--max-tokens", "4"]
    code, summary, rows = cli([*args, "--images", "2", "--image-size", "96x64", "--image-format", "jpeg"],
                              tmp_path / "img")
    assert code == 0 and summary["counts"]["completed"] == 4
    truth = _truth(log, rows)
    for r in rows:
        t = truth[r["response_id"]]
        assert t["images"] == r["images"] == 2 and t["image_bytes"] == r["image_bytes"] and t["image_tokens"] == 1000
        assert r["prompt_tokens"] == t["prompt_tokens"] and r["prompt_image_tokens"] == 1000
        assert r["prompt_text_tokens"] == t["prompt_tokens"] - 1000
        # the server's first token came after its prefill of text + image tokens; the client saw it then
        assert _first_token_s(t) == pytest.approx(0.005 + t["prompt_tokens"] / PREFILL, abs=1e-6)
        assert _first_token_s(t) <= r["ttft_s"] < _first_token_s(t) + 0.015
    m = summary["metrics"]
    assert m["images_total"] == 8 and m["images_per_s"] == pytest.approx(8 / m["window_s"])
    assert m["image_bytes_total"] == sum(r["image_bytes"] for r in rows)
    assert (m["prompt_image_tokens_total"], m["prompt_text_tokens_total"]) == (
        4000, sum(r["prompt_text_tokens"] for r in rows))
    # the same prompts without images: no image fields, and TTFT shorter by the images' prefill (50 ms)
    code, plain, bare = cli(args, tmp_path / "plain")
    assert code == 0 and all(r["images"] is None and r["prompt_image_tokens"] is None for r in bare)
    assert "images_total" not in plain["metrics"]
    saved = summary["metrics"]["ttft_s"]["mean"] - plain["metrics"]["ttft_s"]["mean"]
    assert saved == pytest.approx(1000 / PREFILL, abs=0.01)


def test_synthetic_prompts_keep_their_exact_text_length_beside_images(cli, sim, tmp_path):
    s = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, template_tokens=3, image_tokens=300, ttft_ms=1,
            tpot_ms=0.1)
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--dataset", "synthetic", "--prompt-tokens", "40",
                               "--images", "2", "--image-size", "16x16", "--num-prompts", "4", "--max-tokens", "2"],
                              tmp_path / "out")
    assert code == 0 and summary["prompts"]["usage_checked"] == summary["prompts"]["usage_exact"] == 4
    assert all(r["prompt_text_tokens"] == 40 and r["prompt_image_tokens"] == 600 for r in rows)


def test_dataset_images_are_sent_as_the_server_received_them(cli, sim, tmp_path):
    log = tmp_path / "sim.jsonl"
    s = sim(ttft_ms=2, tpot_ms=1, log_chunks=str(log))
    pics = tmp_path / "set" / "pics"
    pics.mkdir(parents=True)
    files = [synthetic_image(1, i, 0, (40 + i, 30), "png") for i in range(3)]
    for i, data in enumerate(files):
        (pics / f"{i}.png").write_bytes(data)
    dataset = tmp_path / "set" / "rows.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "one", "prompt": "what is in it", "image": "pics/0.png"},
        {"id": "two", "prompt": "compare", "images": ["pics/1.png", "pics/2.png"]}]))
    code, _, rows = cli(["single", "--endpoint", s.base_url, "--dataset", str(dataset), "--num-prompts", "2",
                        "--max-tokens", "2"], tmp_path / "out")
    assert code == 0
    truth = _truth(log, rows)
    got = {r["prompt_id"]: (r["images"], r["image_bytes"], truth[r["response_id"]]["image_bytes"]) for r in rows}
    assert got == {"one": (1, len(files[0]), len(files[0])), "two": (2, len(files[1]) + len(files[2]),
                                                                    len(files[1]) + len(files[2]))}


def test_a_bad_dataset_image_is_one_line_naming_file_and_row(tmp_path):
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"prompt": "b", "image": "gone.png"}) + "\n")
    proc = _cli(["single", "--endpoint", "http://127.0.0.1:9/v1", "--dataset", str(dataset),
                 "--output", str(tmp_path / "o")])
    line = _one_error_line(proc)
    assert proc.returncode == 2 and "row 2" in line and "gone.png" in line


# -- transcriptions ----------------------------------------------------------------------------------

def _transcription_sim(sim, log, **extra):
    return sim(ttft_ms=5, tpot_ms=2, prefill_tokens_per_s=10_000, audio_tokens_per_s=50, transcript_words_per_s=3,
               log_chunks=str(log), **extra)


def test_streamed_transcription_vllm_time_to_first_text_latency_and_rtfx(cli, sim, tmp_path):
    log = tmp_path / "sim.jsonl"
    s = _transcription_sim(sim, log)
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--api", "transcriptions",
                               "--audio-seconds", "4", "--concurrency", "2", "--num-prompts", "6"], tmp_path / "out")
    assert code == 0 and summary["counts"]["completed"] == 6
    truth = _truth(log, rows)
    for r in rows:
        t = truth[r["response_id"]]
        assert t["audio_seconds"] == r["audio_seconds"] == 4.0 and t["audio_bytes"] == 44 + 4 * 16000 * 2
        assert (r["completion_tokens"], r["prompt_tokens"], r["token_source"]) == (12, 200, "usage")
        assert t["generated_tokens"] == 12 and t["prompt_tokens"] == 200 and t["dialect"] == "vllm"
        # first text: prefill of 200 audio tokens (20 ms) + 5 ms; then 11 words 2 ms apart
        assert _first_token_s(t) == pytest.approx(0.025, abs=1e-6)
        assert _first_token_s(t) <= r["ttft_s"] < _first_token_s(t) + 0.015
        last = (t["sent_ns"][-1] - t["recv_ns"]) / 1e9
        assert last == pytest.approx(0.025 + 11 * 0.002, abs=0.005)
        assert last <= r["e2e_s"] < last + 0.015
        assert r["rtfx"] == pytest.approx(4.0 / r["e2e_s"])
    m = summary["metrics"]
    assert m["audio_seconds_total"] == 24.0 and m["audio_seconds_per_s"] == pytest.approx(24.0 / m["window_s"])
    assert m["rtfx"]["count"] == 6 and m["rtfx"]["mean"] == pytest.approx(sum(r["rtfx"] for r in rows) / 6)
    assert summary["config"]["api"] == "transcriptions" and summary["config"]["audio_seconds"] == 4.0
    # the report reads the run like any other
    assert main(["report", str(tmp_path / "out"), "--format", "csv", "--output", str(tmp_path / "r.csv")]) == 0
    assert "sim-model,throughput,1,6," in (tmp_path / "r.csv").read_text()


@pytest.mark.parametrize("stream, transport", [(True, "fast"), (False, "fast"), (True, "httpx")])
def test_transcription_in_openais_dialect(cli, sim, tmp_path, stream, transport):
    log = tmp_path / "sim.jsonl"
    s = _transcription_sim(sim, log, transcription_dialect="openai")
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api", "transcriptions", "--audio-seconds", "2",
                               "--num-prompts", "3", "--transport", transport, *([] if stream else ["--no-stream"])],
                              tmp_path / "out")
    assert code == 0 and summary["counts"]["completed"] == 3
    for r, t in _in_order(log, rows):
        assert (r["completion_tokens"], r["prompt_tokens"], r["token_source"]) == (6, 100, "usage")
        end = (t["end_ns"] - t["recv_ns"]) / 1e9
        assert end == pytest.approx(0.015 + 5 * 0.002, abs=0.005) and end <= r["e2e_s"] < end + 0.015
        if stream:
            assert r["content_chunks"] == 6 and _first_token_s(t) <= r["ttft_s"] < _first_token_s(t) + 0.015
        else:
            assert r["ttft_s"] is None and r["content_chunks"] == 1


def test_plain_transcription_vllm_duration_usage_and_dataset_audio(cli, sim, tmp_path):
    log = tmp_path / "sim.jsonl"
    s = _transcription_sim(sim, log)
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.wav").write_bytes(synthetic_wav(5, 0, 1.5))
    dataset = tmp_path / "set" / "clips.jsonl"
    dataset.write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n" + json.dumps({"id": "b", "prompt": "x"}) + "\n")
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api", "transcriptions", "--dataset", str(dataset),
                               "--audio-seconds", "3", "--num-prompts", "2", "--no-stream"], tmp_path / "out")
    assert code == 0
    by_id = {r["prompt_id"]: (r, t) for r, t in _in_order(log, rows)}
    assert by_id["a"][0]["audio_seconds"] == by_id["a"][1]["audio_seconds"] == 1.5
    assert by_id["a"][1]["filename"] == "a.wav" and by_id["b"][1]["audio_seconds"] == 3.0
    for r, _ in by_id.values():  # a duration usage counts no tokens: one content chunk, no TTFT
        assert r["token_source"] == "chunks" and r["ttft_s"] is None and r["rtfx"] == r["audio_seconds"] / r["e2e_s"]
    assert summary["metrics"]["audio_seconds_total"] == 4.5


def test_stream_options_refused_fall_back_for_the_run(cli, sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1, reject_stream_options=True, usage_always=True)
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--api", "transcriptions", "--audio-seconds", "1",
                               "--num-prompts", "3"], tmp_path / "out")
    assert code == 0 and summary["counts"]["completed"] == 3 and summary["run"]["stream_options_rejected"] is True
    assert [r["attempts"] for r in rows] == [3, 1, 1]  # usage on every chunk, then at the end, then none


def test_a_server_without_the_endpoint_is_one_line_naming_the_path(sim, tmp_path):
    s = sim(transcription_dialect="none")
    proc = _cli(["single", "--endpoint", s.base_url, "--api", "transcriptions", "--num-prompts", "3",
                 "--output", str(tmp_path / "o")])
    line = _one_error_line(proc)
    assert proc.returncode == 2 and "/v1/audio/transcriptions answered 404" in line and "lists sim-model" in line


def test_the_key_never_reaches_a_file_or_the_console(sim, tmp_path):
    key = "sk-media-SECRET-5150"
    s = sim(api_key=key, ttft_ms=1, tpot_ms=1)
    runs = [["--api", "transcriptions", "--audio-seconds", "0.5"], ["--images", "1", "--image-size", "8x8"]]
    texts = []
    for i, extra in enumerate(runs):
        proc = _cli(["single", "--endpoint", s.base_url, "--api-key", key, "--num-prompts", "2", "--max-tokens", "2",
                     *extra, "--output", str(tmp_path / str(i))])
        assert proc.returncode == 0, proc.stderr
        texts += [proc.stdout, proc.stderr] + [p.read_text() for p in (tmp_path / str(i)).iterdir()]
    assert all(key not in text for text in texts)
