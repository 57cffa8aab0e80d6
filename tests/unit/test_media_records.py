"""The record and the summary of images and transcriptions, from hand-made exchanges: OpenAI's and
vLLM's transcription streams and bodies, the prompt's image/text token split, RTFx, and the
summary's per-second figures."""

from __future__ import annotations

import orjson
import pytest
from test_record import build, chunk, exchange, usage

from loadtest.measure.media import note_media
from loadtest.measure.metrics import compute_metrics
from loadtest.run.console import render_table

MS = 1_000_000


def event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def test_openai_transcription_stream_time_to_first_text_and_token_usage():
    ex = exchange([
        (120, event({"type": "transcript.text.delta", "delta": " Hello"})),
        (150, event({"type": "transcript.text.delta", "delta": " world"})),
        (180, event({"type": "transcript.text.done", "text": " Hello world", "usage": {
            "type": "tokens", "input_tokens": 40, "input_token_details": {"text_tokens": 0, "audio_tokens": 40},
            "output_tokens": 2, "total_tokens": 42}})),
    ])
    rec = build(ex)
    assert rec.ok and rec.ttft_s == pytest.approx(0.120) and rec.e2e_s == pytest.approx(0.180)
    assert (rec.completion_tokens, rec.prompt_tokens, rec.token_source) == (2, 40, "usage")
    assert rec.content_chunks == 2 and rec.chunk_tokens == [1, 1] and rec.finish_reason == "stop"


def test_vllm_transcription_stream_is_chat_shaped():
    head = {"object": "transcription.chunk", "model": "whisper"}
    ex = exchange([
        (90, chunk({"content": " one"}, **head)),
        (100, chunk({"content": " two three"}, **head)),
        (101, chunk({}, finish="stop", **head)),
        (102, chunk(choices=False, usage=usage(3, 1500), **head)),
        (103, b"data: [DONE]\n\n"),
    ])
    rec = build(ex)
    assert rec.ok and rec.ttft_s == pytest.approx(0.090) and rec.completion_tokens == 3 and rec.prompt_tokens == 1500


def test_non_streamed_transcription_bodies():
    duration = exchange([(300, b'{"text": " Hello there.", "usage": {"type": "duration", "seconds": 4}}')],
                        ctype="application/json")
    rec = build(duration, stream=False)
    assert rec.ok and rec.ttft_s is None and rec.e2e_s == pytest.approx(0.3)
    assert rec.token_source == "chunks" and rec.completion_tokens == 1  # a duration usage counts no tokens
    tokens = exchange([(300, b'{"text": "Hi.", "usage": {"type": "tokens", "input_tokens": 9, "output_tokens": 2}}')],
                      ctype="application/json")
    rec = build(tokens, stream=False)
    assert (rec.completion_tokens, rec.prompt_tokens, rec.token_source) == (2, 9, "usage")
    # OpenAI's whisper-1 ignores stream=true and answers JSON: read as a body whose text all came at its end.
    rec = build(exchange([(200, b'{"text": "x"}')], ctype="application/json"), stream=True)
    assert rec.ok and rec.ttft_s == rec.e2e_s == pytest.approx(0.2) and rec.content_chunks == 1


def test_prompt_tokens_split_into_image_and_text():
    def with_details(details):
        return build(exchange([(10, chunk({"content": "a"})),
                               (11, chunk(choices=False, usage={**usage(1, 600), "prompt_tokens_details": details}))]))

    rec = with_details({"cached_tokens": 0, "image_tokens": 512})
    assert (rec.prompt_image_tokens, rec.prompt_text_tokens) == (512, 88)
    rec = with_details({"image_tokens": 500, "text_tokens": 90})
    assert (rec.prompt_image_tokens, rec.prompt_text_tokens) == (500, 90)
    rec = with_details({"cached_tokens": 16})
    assert rec.prompt_image_tokens is None and rec.prompt_text_tokens is None


def _rec(e2e_ms: int, *, ok=True):
    ex = exchange([(e2e_ms // 2, chunk({"content": "a"})), (e2e_ms, chunk(choices=False, usage=usage(1)))])
    rec = build(ex)
    if not ok:
        rec.ok, rec.error_kind = False, "server_error"
    return rec


def test_summary_images_per_second_and_rtfx():
    records = [_rec(100), _rec(200), _rec(400, ok=False)]
    for rec in records:
        note_media(rec, 2, 1000, None)
    m = compute_metrics(records, window_s=2.0)["metrics"]
    assert (m["images_total"], m["images_per_s"], m["image_bytes_total"], m["image_bytes_per_s"]) == (4, 2.0, 2000, 1000)
    assert m["prompt_image_tokens_total"] is None and "rtfx" not in m
    records = [_rec(100), _rec(200), _rec(400, ok=False)]
    for rec in records:
        note_media(rec, None, None, 2.0)
    assert [r.rtfx for r in records] == [pytest.approx(20.0), pytest.approx(10.0), None]
    m = compute_metrics(records, window_s=4.0)["metrics"]
    assert m["audio_seconds_total"] == 4.0 and m["audio_seconds_per_s"] == 1.0
    assert m["rtfx"]["count"] == 2 and m["rtfx"]["mean"] == pytest.approx(15.0) and m["rtfx"]["min"] == pytest.approx(10.0)
    assert "images_total" not in m
    plain = compute_metrics([_rec(100)], window_s=1.0)["metrics"]
    assert not {"images_total", "rtfx", "audio_seconds_total"} & plain.keys()


def test_console_shows_the_media_lines_and_the_rtfx_row():
    records = [_rec(100), _rec(200)]
    for rec in records:
        note_media(rec, None, None, 3.0)
    result = compute_metrics(records, window_s=1.0)
    summary = {**result, "command": "single", "config": {"concurrency": 1}, "run": {"ended": "done"}}
    text = render_table(summary)
    assert "audio: 6.0 s transcribed, 6.0 audio s per s" in text and "RTFx (audio s / e2e s)" in text
