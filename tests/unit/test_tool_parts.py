"""The pure parts of tool loops: the tools file checked entry by entry, streamed tool-call deltas
assembled by index (interleaved, split anywhere, id and name only in the first delta), the
non-streamed shape, the reply's visible text without the arguments, and the summary's tools block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.errors import DatasetError
from loadtest.measure.chunks import Stream
from loadtest.measure.record import build_record
from loadtest.prompts.tools import SYNTHETIC_TOOLS, load_tools, tool_names
from loadtest.transport import Exchange

MS = 1_000_000
GOOD = {"type": "function", "function": {"name": "get_weather", "description": "the weather",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


# -- the tools file -------------------------------------------------------------------------------
def test_synthetic_tools_are_two_valid_tools() -> None:
    assert tool_names(load_tools("synthetic")) == ["search_documents", "run_python"]
    assert load_tools("synthetic") is SYNTHETIC_TOOLS


def test_a_json_list_and_a_jsonl_file_load_alike(tmp_path: Path) -> None:
    other = {"type": "function", "function": {"name": "lookup"}}
    (tmp_path / "t.json").write_text(json.dumps([GOOD, other]))
    (tmp_path / "t.jsonl").write_text(json.dumps(GOOD) + "\n\n" + json.dumps(other) + "\n")
    assert load_tools(str(tmp_path / "t.json")) == load_tools(str(tmp_path / "t.jsonl")) == (GOOD, other)


@pytest.mark.parametrize("content,says", [
    ("[]", "no tools in it"),
    ("[1, 2", "invalid JSON"),
    ('{"name": "x"}\nnot json\n', "line 2 is not JSON"),
    (json.dumps([{"function": GOOD["function"]}]), 'tool 0: "type" must be "function"'),
    (json.dumps([{"type": "function"}]), '"function" must be an object'),
    (json.dumps([{"type": "function", "function": {"name": "has space"}}]), "function \"name\" must be 1-64"),
    (json.dumps([{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]),
     "'f': \"parameters\" must be a JSON Schema object"),
    (json.dumps([{"type": "function", "function": {"name": "f", "parameters": {"properties": []}}}]),
     "parameters.properties\" must be an object"),
    (json.dumps([{"type": "function", "function": {"name": "f", "params": {}}}]), "unknown field(s) params"),
    (json.dumps([GOOD, GOOD]), "'get_weather' is defined twice"),
])
def test_a_bad_tools_file_is_one_line_naming_file_and_fault(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "tools.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        load_tools(str(path))
    message = str(err.value)
    assert says in message and str(path) in message and "\n" not in message


def test_a_missing_tools_file() -> None:
    with pytest.raises(DatasetError, match="tools file not found: 'nope.json'"):
        load_tools("nope.json")


# -- streamed tool-call deltas --------------------------------------------------------------------
def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return b"data: " + orjson.dumps({"id": "r1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                                     **extra}) + b"\n\n"


def _calls(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(entries)}


def _head(i: int, cid: str, name: str) -> dict[str, Any]:
    return {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}


def _args(i: int, piece: str) -> dict[str, Any]:
    return {"index": i, "function": {"arguments": piece}}


INTERLEAVED = [
    _chunk({"role": "assistant", "content": None}),
    _chunk(_calls(_head(0, "call_a", "search_documents"))),
    _chunk(_calls(_args(0, '{"que'))),
    _chunk(_calls(_head(1, "call_b", "run_python"), _args(1, '{"code": "print(\\"'))),
    _chunk(_calls(_args(0, 'ry": "cats'), _args(1, 'hi\\")"}'))),
    _chunk(_calls(_args(0, ' and dogs"}'))),
    _chunk({}, finish="tool_calls"),
    b'data: {"id":"r1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}\n\n',
    b"data: [DONE]\n\n",
]


def _exchange(events: list[bytes], ctype: str = "text/event-stream") -> Exchange:
    pieces = [(t * MS, b) for t, b in enumerate(events, 1)]
    return Exchange(t_start_ns=0, status=200, content_type=ctype, pieces=pieces, t_end_ns=pieces[-1][0])


def test_interleaved_tool_call_deltas_assemble_by_index() -> None:
    replies: list[tuple[str, list[dict[str, Any]]]] = []
    rec = build_record(_exchange(INTERLEAVED), request_id=1, prompt_id="p", run_t0_ns=0, stream=True,
                       tokenizer=None, on_reply=lambda text, calls: replies.append((text, calls)))
    [(text, calls)] = replies
    assert text == ""  # no visible content: the arguments are not the reply's text
    assert calls == [
        {"id": "call_a", "type": "function", "function": {"name": "search_documents",
                                                          "arguments": '{"query": "cats and dogs"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "run_python",
                                                          "arguments": '{"code": "print(\\"hi\\")"}'}}]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"query": "cats and dogs"},
                                                                       {"code": 'print("hi")'}]
    # the argument pieces are generated text: TTFT at the first piece (not the header chunk), four
    # content chunks timed, the usage's six tokens shared over them
    assert rec.ok and rec.finish_reason == "tool_calls" and rec.content_chunks == 4
    assert rec.ttft_s == pytest.approx(0.003) and rec.completion_tokens == 6 and sum(rec.chunk_tokens) == 6


def test_content_before_the_calls_stays_visible_and_ids_may_be_missing() -> None:
    events = [_chunk({"content": "Let me look."}), _chunk({"content": " ", "tool_calls": [
        {"function": {"name": "lookup", "arguments": '{"a":'}}]}), _chunk(_calls({"function": {"arguments": " 1}"}}))]
    s = Stream()
    s.read_sse([(t, e) for t, e in enumerate(events)])
    assert s.visible_text() == "Let me look. " and s.texts == ["Let me look.", ' {"a":', " 1}"]
    assert s.calls() == [{"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": '{"a": 1}'}}]


def test_a_repeated_name_is_not_doubled() -> None:
    s = Stream()
    s.read_sse([(1, _chunk(_calls({"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}))),
                (2, _chunk(_calls({"index": 0, "id": "c", "function": {"name": "f", "arguments": "}"}})))])
    assert s.calls() == [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


def test_plain_content_has_no_tool_state() -> None:
    s = Stream()
    s.read_sse([(1, _chunk({"content": "a"})), (2, _chunk({"content": " b"}))])
    assert s.tool_calls is None and s.calls() == [] and s.visible_text() == "a b"


def test_a_non_streamed_message_with_tool_calls() -> None:
    body = orjson.dumps({"id": "c", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_x", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}},
            {"id": "call_y", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
    replies: list[Any] = []
    rec = build_record(_exchange([body], "application/json"), request_id=1, prompt_id="p", run_t0_ns=0,
                       stream=False, tokenizer=None, on_reply=lambda text, calls: replies.append((text, calls)))
    assert rec.ok and rec.finish_reason == "tool_calls" and rec.completion_tokens == 5
    assert replies == [("", [{"id": "call_x", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}},
                             {"id": "call_y", "type": "function", "function": {"name": "g", "arguments": "{}"}}])]
