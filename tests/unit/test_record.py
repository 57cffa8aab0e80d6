"""The record builder against hand-made exchanges: every measurement rule, no network."""

from __future__ import annotations

import orjson
import pytest

from loadtest.measure.chunks import Stream
from loadtest.measure.record import build_record
from loadtest.measure.sse import one_event_per_piece, parse_stream
from loadtest.tokens import load_tokenizer
from loadtest.transport import Exchange

MS = 1_000_000


def chunk(delta=None, *, finish=None, usage=None, choices=True, text=None, **extra) -> bytes:
    obj: dict = {"id": "x1", **extra}
    if choices:
        c: dict = {"index": 0, "finish_reason": finish}
        if text is not None:
            c["text"] = text
        else:
            c["delta"] = delta or {}
        obj["choices"] = [c]
    else:
        obj["choices"] = []
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def exchange(events: list[tuple[int, bytes]], *, status=200, end_ms=None, ctype="text/event-stream") -> Exchange:
    pieces = [(t * MS, b) for t, b in events]
    return Exchange(t_start_ns=0, status=status, content_type=ctype, pieces=pieces,
                    t_end_ns=(end_ms * MS) if end_ms is not None else pieces[-1][0])


def build(ex: Exchange, stream: bool = True, tokenizer=None):
    return build_record(ex, request_id=1, prompt_id="p", run_t0_ns=0, stream=stream, tokenizer=tokenizer)


def usage(n: int, p: int = 7) -> dict:
    return {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}


def test_role_and_empty_chunks_do_not_stop_ttft_and_add_no_itl():
    ex = exchange([
        (1, chunk({"role": "assistant", "content": ""})),
        (50, chunk({"content": "a"})),
        (51, chunk({"content": ""})),
        (60, chunk({"content": "b"})),
        (61, chunk({"content": ""})),
        (70, chunk({"content": "c"})),
        (71, chunk({}, finish="stop")),
        (72, chunk(choices=False, usage=usage(3))),
        (80, b"data: [DONE]\n\n"),
    ])
    r = build(ex)
    assert r.ok and r.ttft_s == pytest.approx(0.050)
    assert r.completion_tokens == 3 and r.token_source == "usage" and r.prompt_tokens == 7
    assert r.content_chunks == 3 and r.chunks == 9
    assert r.chunk_offsets_s == pytest.approx([0.050, 0.060, 0.070])
    # TPOT over content only: the usage chunk at 72 ms and [DONE] at 80 ms do not count.
    assert r.tpot_s == pytest.approx(0.010)
    assert r.e2e_s == pytest.approx(0.080)
    assert r.tokens_per_s == pytest.approx(3 / 0.080)
    assert r.finish_reason == "stop"


def test_multi_token_chunks_with_per_chunk_usage():
    ex = exchange([
        (40, chunk({"content": "a b c d"}, usage=usage(4))),
        (60, chunk({"content": "e f"}, usage=usage(6))),
        (100, chunk({"content": "g h i j"}, usage=usage(10))),
    ])
    r = build(ex)
    assert r.chunk_tokens == [4, 2, 4]
    # 6 tokens after the first chunk, over 60 ms.
    assert r.tpot_s == pytest.approx(0.010)
    assert r.completion_tokens == 10


def test_first_chunk_one_token_rest_by_text_when_nothing_else_is_known():
    ex = exchange([(10, chunk({"content": "x"})), (20, chunk({"content": "y z"})), (30, chunk({"content": "w"})),
                   (40, chunk(choices=False, usage=usage(5)))])
    r = build(ex)
    assert r.chunk_tokens == [1, 3, 1] and r.token_source == "usage" and r.chunk_token_source == "text_share"
    assert r.tpot_s == pytest.approx(0.020 / 4)


def test_tokenizer_counts_when_no_usage_and_chunks_as_last_resort():
    tok = load_tokenizer("cl100k_base")
    ex = exchange([(10, chunk({"content": "Hello"})), (20, chunk({"content": " world, friends"}))])
    r = build(ex, tokenizer=tok)
    assert r.token_source == "tokenizer"
    assert r.completion_tokens == tok.count("Hello world, friends") == 4
    assert sum(r.chunk_tokens) == pytest.approx(4)
    r2 = build(ex)
    assert r2.token_source == "chunks" and r2.completion_tokens == 2


def test_reasoning_counts_for_ttft_and_visible_ttft_is_separate():
    ex = exchange([(20, chunk({"reasoning_content": "hmm"})), (90, chunk({"content": "yes"})),
                   (91, chunk(choices=False, usage=usage(2)))])
    r = build(ex)
    assert r.ttft_s == pytest.approx(0.020)
    assert r.ttft_content_s == pytest.approx(0.090)


def test_completions_api_text_field():
    r = build(exchange([(30, chunk(text="Once")), (40, chunk(text=" upon")), (41, chunk(text="", finish="length"))]))
    assert r.ttft_s == pytest.approx(0.030) and r.content_chunks == 2 and r.finish_reason == "length"


def test_streamed_error_event_fails_the_request():
    ex = exchange([(10, chunk({"content": "a"})), (20, b'data: {"error": {"message": "boom"}}\n\n')])
    r = build(ex)
    assert not r.ok and r.error_kind == "stream_error" and "boom" in r.error
    assert r.ttft_s is None and r.completion_tokens is None  # failed: nothing reported as measured


def test_malformed_json_in_stream():
    r = build(exchange([(10, chunk({"content": "a"})), (20, b"data: {not json\n\n")]))
    assert not r.ok and r.error_kind == "malformed"


def test_stream_without_done_is_ok():
    r = build(exchange([(10, chunk({"content": "a"})), (20, chunk({}, finish="stop"))]))
    assert r.ok and r.completion_tokens == 1 and r.tpot_s is None  # one token: no decode interval


@pytest.mark.parametrize("status,kind", [(401, "auth"), (403, "auth"), (404, "not_found"), (422, "bad_request"),
                                         (429, "rate_limited"), (500, "server_error"), (503, "server_error"),
                                         (418, "http_error")])
def test_http_errors_are_classified_with_the_servers_message(status, kind):
    body = orjson.dumps({"error": {"message": "nope", "type": "x"}})
    r = build(exchange([(5, body)], status=status, ctype="application/json"))
    assert not r.ok and r.error_kind == kind and r.status == status and "nope" in r.error


def test_non_streaming_response():
    body = orjson.dumps({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"},
                                                 "finish_reason": "stop"}], "usage": usage(2)})
    r = build(exchange([(100, body)], ctype="application/json"), stream=False)
    assert r.ok and r.ttft_s is None and r.tpot_s is None
    assert r.completion_tokens == 2 and r.e2e_s == pytest.approx(0.100)


def test_transport_failure_is_kept():
    ex = Exchange(t_start_ns=0, error_kind="connect", error="connection refused")
    r = build(ex)
    assert not r.ok and r.error_kind == "connect" and r.e2e_s is None


@pytest.mark.parametrize("bad,reason", [(b'data: {"choices": "oops"}\n\n', "unexpected chunk shape"),
                                        (b'data: "just a string"\n\n', "unexpected chunk shape"),
                                        (b'data: {"a":1},{"b":2}\n\n', "invalid JSON")])
def test_chunks_of_the_wrong_shape_are_malformed_and_earlier_ones_still_count(bad, reason):
    r = build(exchange([(10, chunk({"content": "a"})), (20, chunk({"content": "b"})), (30, bad)]))
    assert not r.ok and r.error_kind == "malformed" and reason in r.error
    assert r.content_chunks == 2  # what arrived before the bad chunk was read


def test_integer_ids_and_unknown_fields_are_tolerated():
    body = b'data: {"id": 7, "system_fingerprint": "x", "choices": [{"index": 0, "delta": {"content": "hi", ' \
           b'"extra": [1, 2]}, "logprobs": {"content": []}}], "x_custom": {"a": null}}\n\n'
    r = build(exchange([(10, body), (20, chunk(choices=False, usage=usage(1)))]))
    assert r.ok and r.response_id == "7" and r.completion_tokens == 1 and r.ttft_s == pytest.approx(0.010)


def test_done_mid_stream_ends_nothing():
    r = build(exchange([(10, chunk({"content": "a"})), (15, b"data: [DONE]\n\n"), (20, chunk({"content": "b"}))]))
    assert r.ok and r.chunks == 3 and r.content_chunks == 2 and r.completion_tokens == 2


def test_one_event_per_piece_fast_path_reads_the_same_as_the_general_parser():
    pieces = [(t * MS, b) for t, b in [(5, chunk({"role": "assistant"})), (10, chunk({"content": "a"})),
                                       (20, chunk({"reasoning_content": "b"})), (30, chunk({}, finish="stop")),
                                       (31, chunk(choices=False, usage=usage(3))), (32, b"data: [DONE]\n\n")]]
    assert one_event_per_piece(pieces) is not None
    fast, general = Stream(), Stream()
    fast.read_sse(pieces)
    general.read_events(parse_stream(pieces))
    assert vars(fast) == vars(general)
    assert fast.times == [10 * MS, 20 * MS] and fast.chunks == 6 and fast.usage["completion_tokens"] == 3


def test_an_empty_event_stream_is_read_without_error():
    ex = Exchange(t_start_ns=0, status=200, content_type="text/event-stream", pieces=[], t_end_ns=5 * MS)
    r = build(ex)
    assert r.chunks == 0 and r.content_chunks == 0 and r.ttft_s is None and r.e2e_s == pytest.approx(0.005)
