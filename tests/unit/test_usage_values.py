"""A server's usage values, checked (loadtest/measure/usage.py): every dialect that reads usage, fed
every kind of bad count, without a network. A bad count never crashes the record, never gives a
negative or absurd rate, falls back to counting, and is named in usage_invalid."""

from __future__ import annotations

import json

import orjson
import pytest

from loadtest.measure.pooling import PooledRequest, read_answer
from loadtest.measure.record import build_record
from loadtest.measure.usage import MAX_COUNT, SHOWN_CHARS, count, shown
from loadtest.transport import Exchange

MS = 1_000_000

BAD = [("a string", "abc"), ("a numeric string", "12"), ("true", True), ("false", False), ("a fraction", 3.7),
       ("negative", -3), ("negative float", -2.0), ("past 64 bits", 2**70), ("past 2^53", MAX_COUNT + 1),
       ("huge float", 1e300), ("an object", {"n": 4}), ("a list", [4])]


@pytest.mark.parametrize("value, expected", [(0, 0), (7, 7), (MAX_COUNT, MAX_COUNT), (12.0, 12), (0.0, 0),
                                             (None, None)] + [(v, None) for _, v in BAD])
def test_a_count_is_a_non_negative_integer_up_to_2_53(value, expected):
    assert count(value) == expected
    assert count(value).__class__ is (int if expected is not None else type(None))


def test_raw_values_are_shown_as_json_cut_short():
    assert shown("abc") == '"abc"'
    assert shown(2**70) == str(2**70)  # past 64 bits: not JSON-able by orjson, shown as Python writes it
    long = shown("x" * 500)
    assert len(long) == SHOWN_CHARS and long.endswith("...")


def dumps(obj: object) -> bytes:
    """As a server would write it (json, not orjson: a count past 64 bits must be writable)."""
    return json.dumps(obj).encode()


def sse(objs: list[dict], *, typed: bool = False) -> list[tuple[int, bytes]]:
    out = []
    for i, o in enumerate(objs):
        head = b"event: " + o["type"].encode() + b"\n" if typed else b""
        out.append(((10 + i) * MS, head + b"data: " + dumps(o) + b"\n\n"))
    return out


def record(pieces: list[tuple[int, bytes]], *, stream: bool = True, ctype: str = "text/event-stream"):
    ex = Exchange(t_start_ns=0, status=200, content_type=ctype, pieces=pieces, t_end_ns=pieces[-1][0] + MS)
    return build_record(ex, request_id=1, prompt_id="p", run_t0_ns=0, stream=stream, tokenizer=None)


def chat(usage: object) -> list[tuple[int, bytes]]:
    return sse([{"id": "r", "choices": [{"delta": {"content": w}}]} for w in ("a", "b", "c", "d")]
               + [{"id": "r", "choices": [], "usage": usage}])


def responses(usage: object) -> list[tuple[int, bytes]]:
    return sse([{"type": "response.output_text.delta", "delta": w} for w in ("a", "b", "c", "d")]
               + [{"type": "response.completed", "response": {"id": "r", "status": "completed", "usage": usage}}],
               typed=True)


def messages(usage: object) -> list[tuple[int, bytes]]:
    return sse([{"type": "message_start", "message": {"id": "m", "type": "message", "usage": {"input_tokens": 5}}}]
               + [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
                  for w in ("a", "b", "c", "d")]
               + [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage},
                  {"type": "message_stop"}], typed=True)


def transcript(usage: object) -> list[tuple[int, bytes]]:
    return sse([{"type": "transcript.text.delta", "delta": w} for w in ("a", "b", "c", "d")]
               + [{"type": "transcript.text.done", "text": "abcd", "usage": usage}], typed=True)


DIALECTS = {  # name: (stream of 4 content chunks ending in this usage, the completion field's own name)
    "chat": (chat, "completion_tokens"),
    "responses": (responses, "output_tokens"),
    "messages": (messages, "output_tokens"),
    "transcriptions": (transcript, "output_tokens"),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("what, value", BAD)
def test_a_bad_completion_count_falls_back_to_the_chunks_and_is_named(dialect, what, value):
    make, field = DIALECTS[dialect]
    rec = record(make({field: value, "input_tokens": 5, "prompt_tokens": 5}))
    assert rec.ok and rec.completion_tokens == 4 and rec.token_source == "chunks"
    assert rec.usage_invalid == {f"usage.{field}": shown(value)}
    assert rec.tokens_per_s is not None and rec.tokens_per_s > 0
    assert rec.prompt_tokens == 5  # the valid field of the same usage still counts
    orjson.dumps(rec)  # the record is writable (a 2^70 count once crashed here)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_valid_and_integral_float_counts_are_taken(dialect):
    make, field = DIALECTS[dialect]
    rec = record(make({field: 9.0, "input_tokens": 5, "prompt_tokens": 5}))
    assert rec.completion_tokens == 9 and rec.completion_tokens.__class__ is int
    assert rec.token_source == "usage" and rec.usage_invalid is None


@pytest.mark.parametrize("what, value", BAD)
def test_bad_detail_and_prompt_counts_are_ignored_field_by_field(what, value):
    rec = record(chat({"completion_tokens": 4, "prompt_tokens": value,
                       "prompt_tokens_details": {"cached_tokens": value, "image_tokens": value},
                       "completion_tokens_details": {"reasoning_tokens": value}}))
    assert rec.completion_tokens == 4 and rec.token_source == "usage"
    assert rec.prompt_tokens is None and rec.cached_tokens is None and rec.reasoning_tokens is None
    assert rec.prompt_image_tokens is None
    assert set(rec.usage_invalid) == {"usage.prompt_tokens", "usage.prompt_tokens_details.cached_tokens",
                                      "usage.prompt_tokens_details.image_tokens",
                                      "usage.completion_tokens_details.reasoning_tokens"}


def test_usage_that_is_not_an_object_and_details_that_are_not_objects():
    rec = record(chat("lots"))
    assert rec.ok and rec.completion_tokens == 4 and rec.usage_invalid == {"usage": '"lots"'}
    rec = record(chat({"completion_tokens": 4, "prompt_tokens_details": "x", "completion_tokens_details": [1]}))
    assert rec.completion_tokens == 4 and rec.usage_invalid == {"usage.prompt_tokens_details": '"x"',
                                                                "usage.completion_tokens_details": "[1]"}


def test_null_counts_are_absent_not_invalid():
    rec = record(chat({"completion_tokens": 4, "prompt_tokens": None, "prompt_tokens_details": None}))
    assert rec.completion_tokens == 4 and rec.prompt_tokens is None and rec.usage_invalid is None


@pytest.mark.parametrize("what, value", BAD)
def test_anthropic_prompt_parts_must_all_be_counts(what, value):
    rec = record(messages({"output_tokens": 4, "cache_read_input_tokens": value}))
    assert rec.completion_tokens == 4 and rec.cached_tokens is None
    assert rec.prompt_tokens == 5  # input_tokens of message_start; the bad cache read left out
    assert rec.usage_invalid == {"usage.cache_read_input_tokens": shown(value)}


def test_a_failed_request_with_bad_usage_counts_its_partial_tokens_from_the_chunks():
    pieces = chat({"completion_tokens": "many"})[:-1] + [(20 * MS, b"data: {oops\n\n")]
    pieces.insert(3, (13 * MS, b'data: {"choices":[],"usage":{"completion_tokens":-1}}\n\n'))
    rec = record(pieces)
    assert not rec.ok and rec.error_kind == "malformed" and rec.partial_tokens == 4
    assert rec.usage_invalid == {"usage.completion_tokens": "-1"}


@pytest.mark.parametrize("what, value", BAD)
def test_non_streamed_bodies(what, value):
    body = dumps({"id": "r", "choices": [{"message": {"content": "abcd"}, "finish_reason": "stop"}],
                         "usage": {"completion_tokens": value, "prompt_tokens": 3}})
    rec = record([(10 * MS, body)], stream=False, ctype="application/json")
    assert rec.ok and rec.completion_tokens == 1 and rec.token_source == "chunks" and rec.prompt_tokens == 3
    assert rec.usage_invalid == {"usage.completion_tokens": shown(value)}


@pytest.mark.parametrize("what, value", BAD)
def test_embeddings_and_rerank_usage(what, value):
    req = PooledRequest("embeddings", "t", ("t",))
    body = dumps({"data": [{"index": 0, "embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": value,
                                                                                  "total_tokens": 6}})
    facts = read_answer(body, req)
    assert facts.problem is None and facts.prompt_tokens == 6
    assert facts.usage_invalid == {"usage.prompt_tokens": shown(value)}
    rerank = PooledRequest("rerank", "q", ("a", "b"))
    body = dumps({"results": [{"index": 0, "relevance_score": 0.5}], "meta": {"billed_units": {
        "input_tokens": value}}})
    facts = read_answer(body, rerank)
    assert facts.prompt_tokens is None and facts.usage_invalid == {"meta.billed_units.input_tokens": shown(value)}
