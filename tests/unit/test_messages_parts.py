"""The Anthropic Messages API (--api messages) without a server: its events read into the record
(TTFT, tokens, usage mapping, thinking, errors), its body and headers, its key, and 529 retried.

The streamed shapes are those llama.cpp's /v1/messages sends (captured from the pinned xllamacpp)
and Anthropic documents (thinking blocks with signature_delta, message_delta's cumulative usage,
the error event)."""

from __future__ import annotations

import orjson
import pytest

from loadtest.measure.chunks import Stream
from loadtest.measure.record import build_record
from loadtest.measure.sse import parse_stream
from loadtest.transport import Exchange

MS = 1_000_000


def event(obj: dict) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def start(usage: dict, mid: str = "msg_1") -> bytes:
    return event({"type": "message_start", "message": {"id": mid, "type": "message", "role": "assistant",
                                                       "content": [], "model": "m", "stop_reason": None,
                                                       "usage": usage}})


def block_start(index: int, block: dict) -> bytes:
    return event({"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, d: dict) -> bytes:
    return event({"type": "content_block_delta", "index": index, "delta": d})


def text(index: int, t: str) -> bytes:
    return delta(index, {"type": "text_delta", "text": t})


def end(stop: str, usage: dict) -> list[bytes]:
    return [event({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}),
            event({"type": "message_stop"})]


def exchange(events: list[tuple[int, bytes]], *, status=200, ctype="text/event-stream") -> Exchange:
    pieces = [(t * MS, b) for t, b in events]
    return Exchange(t_start_ns=0, status=status, content_type=ctype, pieces=pieces, t_end_ns=pieces[-1][0])


def build(ex: Exchange, stream: bool = True):
    return build_record(ex, request_id=1, prompt_id="p", run_t0_ns=0, stream=stream, tokenizer=None)


def test_a_llamacpp_stream_gives_ttft_tokens_and_the_prompt_with_its_cache():
    """message_start (its usage a placeholder) and the empty text block's opening do not end TTFT;
    prompt_tokens = input + cache read, cached_tokens = cache read, source 'anthropic'."""
    ex = exchange([
        (2, start({"cache_read_input_tokens": 36, "input_tokens": 1, "output_tokens": 0})),
        (3, block_start(0, {"type": "text", "text": ""})),
        (3, event({"type": "ping"})),
        (40, text(0, "I")), (50, text(0, "'m")), (60, text(0, " glad")), (70, text(0, " to")),
        (80, event({"type": "content_block_stop", "index": 0})),
        *[(81, e) for e in end("max_tokens", {"output_tokens": 4})],
    ])
    r = build(ex)
    assert r.ok and r.ttft_s == pytest.approx(0.040) and r.ttft_content_s == pytest.approx(0.040)
    assert (r.completion_tokens, r.token_source, r.prompt_tokens) == (4, "usage", 37)
    assert (r.cached_tokens, r.cached_tokens_source, r.cache_creation_tokens) == (36, "anthropic", None)
    assert r.finish_reason == "length" and r.response_id == "msg_1" and r.content_chunks == 4
    assert r.chunk_tokens == [1, 1, 1, 1] and r.tpot_s == pytest.approx(0.010)
    assert r.reasoning_tokens is None and r.chunks == 10


def test_thinking_is_reasoning_timed_apart_from_the_first_visible_text():
    """TTFT ends at the first thinking token, ttft_content_s at the first text; the signature and
    the block boundaries carry no tokens; usage's cache fields all count into the prompt."""
    ex = exchange([
        (1, start({"input_tokens": 5, "cache_read_input_tokens": 32, "cache_creation_input_tokens": 16,
                   "output_tokens": 1})),
        (2, block_start(0, {"type": "thinking", "thinking": ""})),
        (20, delta(0, {"type": "thinking_delta", "thinking": " hmm"})),
        (25, delta(0, {"type": "thinking_delta", "thinking": " so"})),
        (26, delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"})),
        (26, event({"type": "content_block_stop", "index": 0})),
        (27, block_start(1, {"type": "text", "text": ""})),
        (30, text(1, " yes")), (35, text(1, " it")),
        (36, event({"type": "content_block_stop", "index": 1})),
        *[(37, e) for e in end("end_turn", {"output_tokens": 4})],
    ])
    r = build(ex)
    assert r.ttft_s == pytest.approx(0.020) and r.ttft_content_s == pytest.approx(0.030)
    assert (r.completion_tokens, r.reasoning_tokens, r.prompt_tokens) == (4, 2, 53)
    assert (r.cached_tokens, r.cache_creation_tokens, r.finish_reason) == (32, 16, "stop")


def test_tool_input_is_generated_output_and_message_delta_usage_completes_message_start():
    ex = exchange([
        (1, start({"input_tokens": 9, "output_tokens": 1})),
        (2, block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}})),
        (10, delta(0, {"type": "input_json_delta", "partial_json": '{"q": '})),
        (12, delta(0, {"type": "input_json_delta", "partial_json": '"x"}'})),
        *[(13, e) for e in end("tool_use", {"output_tokens": 6, "input_tokens": 9, "cache_read_input_tokens": 0})],
    ])
    r = build(ex)
    assert r.ttft_s == pytest.approx(0.010) and r.content_chunks == 2
    assert (r.completion_tokens, r.prompt_tokens, r.cached_tokens, r.finish_reason) == (6, 9, 0, "tool_calls")


def test_an_overloaded_error_event_mid_stream_fails_the_request_with_what_arrived():
    ex = exchange([
        (1, start({"input_tokens": 3, "output_tokens": 1})),
        (2, block_start(0, {"type": "text", "text": ""})),
        (10, text(0, " a")), (11, text(0, " b")),
        (12, event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ])
    r = build(ex)
    assert not r.ok and r.error_kind == "stream_error" and "Overloaded" in r.error
    assert r.partial_tokens == 2  # message_start's output_tokens is no count: the chunks that arrived


def test_a_non_streamed_message_with_thinking_and_a_tool_call():
    body = orjson.dumps({"id": "msg_7", "type": "message", "role": "assistant", "model": "m",
                         "content": [{"type": "thinking", "thinking": "abcdef", "signature": "sig"},
                                     {"type": "text", "text": "xy"},
                                     {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                         "stop_reason": "tool_use", "stop_sequence": None,
                         "usage": {"input_tokens": 4, "cache_read_input_tokens": 2, "output_tokens": 10}})
    r = build(exchange([(30, body)], ctype="application/json"), stream=False)
    assert r.ok and r.ttft_s is None and r.response_id == "msg_7" and r.finish_reason == "tool_calls"
    assert (r.completion_tokens, r.prompt_tokens, r.cached_tokens) == (10, 6, 2)
    assert r.reasoning_tokens == 6  # one piece: thinking's share of its text, 6 of 10 characters ("abcdef", "xy", "{}")


def test_anthropic_error_bodies_are_one_line_with_their_message():
    body = b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
    r = build(exchange([(1, body)], status=401, ctype="application/json"))
    assert r.error_kind == "auth" and r.error == "HTTP 401: invalid x-api-key"
    r = build(exchange([(1, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')],
                       status=529, ctype="application/json"))
    assert r.error_kind == "server_error" and r.error == "HTTP 529: Overloaded"


def test_split_reads_and_crlf_parse_as_one_stream():
    body = (start({"input_tokens": 2, "output_tokens": 1}) + text(0, " a") + text(0, " b")
            + b"".join(end("end_turn", {"output_tokens": 2}))).replace(b"\n", b"\r\n")
    cut = body.index(b'" b"') + 2
    s = Stream()
    s.read_events(parse_stream([(1, body[:cut]), (2, body[cut:])]))
    assert s.texts == [" a", " b"] and s.times == [1, 2] and s.usage["completion_tokens"] == 2


# -- the request side ---------------------------------------------------------------------------------

def test_the_body_carries_max_tokens_and_the_prompt_as_messages_without_stream_options():
    from loadtest.client.payloads import base_body, build_body, request_path
    from loadtest.config import RunConfig
    from loadtest.prompts.sources import Prompt

    cfg = RunConfig(command="single", base_url="http://x/v1", model="claude", api="messages", max_tokens=32)
    assert request_path(cfg) == "/messages"
    body = orjson.loads(build_body(Prompt(id="a", text="hello"), base_body(cfg, "claude"), api="messages",
                                   include_usage=True))
    assert body == {"model": "claude", "max_tokens": 32, "stream": True,
                    "messages": [{"role": "user", "content": "hello"}]}
    traced = Prompt(id="b", text="q", messages=({"role": "system", "content": "be brief"},
                                                {"role": "user", "content": "q"}), max_tokens=5)
    body = orjson.loads(build_body(traced, base_body(cfg, "claude"), api="messages", include_usage=False))
    assert body["system"] == "be brief" and body["messages"] == [{"role": "user", "content": "q"}]
    assert body["max_tokens"] == 5


def test_the_key_goes_in_x_api_key_with_the_version_and_comes_from_anthropic_api_key(monkeypatch):
    from loadtest.client.auth import auth_hint, build_auth, hosted_fields
    from loadtest.config import RunConfig
    from loadtest.errors import ConfigError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-never-sent")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-1")
    common = {"api_key": None, "api_key_env": None, "headers": [], "azure": False, "api_version": None,
              "insecure": False, "max_retries": 5, "rpm_limit": None, "tpm_limit": None,
              "endpoint": "https://api.anthropic.com/v1", "model": "c"}
    fields = hosted_fields(**common, api="messages")
    assert fields["api_key"] == "sk-ant-secret-1" and hosted_fields(**common)["api_key"] == "sk-openai-never-sent"
    cfg = RunConfig(command="single", base_url="https://api.anthropic.com/v1", model="c", api="messages", **fields)
    headers = build_auth(cfg).headers
    assert headers == {"x-api-key": "sk-ant-secret-1", "anthropic-version": "2023-06-01"}
    assert "ANTHROPIC_API_KEY" in auth_hint(cfg) and "x-api-key" in auth_hint(cfg)
    mine = RunConfig(command="single", base_url="http://x/v1", model="c", api="messages",
                     headers=(("Anthropic-Version", "2024-01-01"),))
    assert build_auth(mine).headers == {"Anthropic-Version": "2024-01-01"}  # no key, the user's version
    with pytest.raises(ConfigError, match="--azure"):
        hosted_fields(**{**common, "azure": True}, api="messages")


def test_529_overloaded_is_retried_as_a_429_after_retry_after():
    from loadtest.client.retry import RetryPolicy

    policy = RetryPolicy()
    assert policy.rate_limited(Exchange(t_start_ns=0, status=529))
    assert policy.delay_s(Exchange(t_start_ns=0, status=529, limit_headers={"retry-after": "3"}), 1) == 3.0
    assert not policy.rate_limited(Exchange(t_start_ns=0, status=500))
