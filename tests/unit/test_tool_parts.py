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


# -- the summary's tools block --------------------------------------------------------------------
def _rec(task: str, rnd: int, start: float, end: float, calls: int | None, ok: bool = True, **kw: Any) -> dict[str, Any]:
    return {"session_id": task, "turn": 0, "tool_round": rnd, "start_s": start, "end_s": end, "ok": ok,
            "warmup": kw.get("warmup", False), "tool_calls": calls if ok else None, "ttft_s": kw.get("ttft", 0.1),
            "e2e_s": end - start, "prompt_tokens": kw.get("pt", 10), "error_kind": None if ok else kw.get("kind", "server_error")}


def test_the_tools_block_counts_how_tasks_ended() -> None:
    from loadtest.measure.tools import tool_block

    rows = [
        _rec("a", 0, 0.0, 1.0, 2, ttft=0.2, pt=10), _rec("a", 1, 1.5, 2.0, 0, ttft=0.4, pt=30),    # completed, 2 requests
        _rec("b", 0, 0.0, 0.5, 1, ttft=0.6, pt=10), _rec("b", 1, 1.0, 1.2, 1, pt=20),
        _rec("b", 2, 1.7, 2.0, 3, pt=40),                                                          # at max rounds (2)
        _rec("c", 0, 0.0, 0.3, 1), _rec("c", 1, 0.8, 0.9, None, ok=False),                         # failed in round 1
        _rec("d", 0, 0.0, 0.1, 1), _rec("d", 1, 0.6, 0.6, None, ok=False, kind="cancelled"),       # stopped on the way
        _rec("e", 0, 0.0, 4.0, 0),                                                                 # completed at once
        _rec("w", 0, 0.0, 9.0, 0, warmup=True),                                                    # warm-up: left out
    ]
    b = tool_block(rows, max_rounds=2)
    assert (b["tasks"], b["tasks_completed"], b["tasks_failed"], b["tasks_at_max_rounds"]) == (5, 2, 1, 1)
    assert b["tool_calls"] == 2 + 5 + 1 + 1
    assert b["requests_per_task"]["mean"] == pytest.approx((2 + 3 + 2 + 2 + 1) / 5) and b["requests_per_task"]["max"] == 3
    assert b["loop_latency_s"]["count"] == 2 and (b["loop_latency_s"]["min"], b["loop_latency_s"]["max"]) == (2.0, 4.0)
    r0, r1, r2 = b["by_round"]
    assert (r0["round"], r0["requests"], r0["ok"], r0["ttft_s_p50"], r0["prompt_tokens_mean"]) == (0, 5, 5, 0.1, 10)
    assert (r1["requests"], r1["ok"], r1["ttft_s_mean"], r1["prompt_tokens_mean"]) == (4, 2, pytest.approx(0.25), 25)
    assert (r2["round"], r2["requests"], r2["e2e_s_mean"]) == (2, 1, pytest.approx(0.3))


def test_the_sessions_block_leaves_tool_rounds_out_of_turns() -> None:
    from loadtest.measure.sessions import session_block

    rows = [{**_rec("s0", 0, 0.0, 1.0, 1), "cached_tokens": None}, {**_rec("s0", 1, 1.5, 3.0, 0), "cached_tokens": None}]
    b = session_block(rows)
    assert b is not None and [t["turn"] for t in b["by_turn"]] == [0] and b["by_turn"][0]["requests"] == 1
    assert b["duration_s"]["max"] == 3.0 and b["turns_ok"]["max"] == 1  # the round counts in the session's time


# -- the sim's side --------------------------------------------------------------------------------
def _sim_plan(config: Any, messages: list[dict[str, Any]], tools: Any = SYNTHETIC_TOOLS, seed: int = 7) -> Any:
    from loadtest.sim.generate import plan_request
    from loadtest.sim.tools import plan_tool_calls

    body = {"messages": messages, "tools": list(tools) if tools else None, "max_tokens": 4, "stream": True}
    plan = plan_request(config, True, body, False, seed=seed)
    plan_tool_calls(config, body, plan)
    return plan


def test_the_sim_replies_with_tool_calls_for_its_first_rounds_per_user_turn() -> None:
    from loadtest.sim import SimConfig
    from loadtest.sim.tools import tool_choices

    config = SimConfig(tool_call_rounds=1, tool_calls_per_round=3)
    user = [{"role": "user", "content": "hi"}]
    plan = _sim_plan(config, user)
    assert plan.finish_reason == "tool_calls" and [c[:2] for c in plan.tool_calls] == [
        ("call_7_0", "search_documents"), ("call_7_1", "run_python"), ("call_7_2", "search_documents")]
    assert plan.n_tokens == len(plan.tool_pieces) and all(json.loads(a) for _, _, a in plan.tool_calls)
    assert _sim_plan(config, user, seed=7).tool_calls == plan.tool_calls  # seeded
    # every piece streamed once, in order: the calls' arguments reassemble exactly
    events = [orjson.loads(c) for t in range(plan.n_tokens) for c in tool_choices(plan, t, t + 1)]
    s = Stream()
    s.read_sse([(i, b"data: " + orjson.dumps({"choices": [e]}) + b"\n\n") for i, e in enumerate(events)])
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in s.calls()] == list(plan.tool_calls)
    calls = s.calls()
    answered = [*user, {"role": "assistant", "content": None, "tool_calls": calls},
                *({"role": "tool", "tool_call_id": c["id"], "content": "r"} for c in calls)]
    assert _sim_plan(config, answered).tool_calls is None  # one round per user turn: now text
    assert _sim_plan(config, [*answered, {"role": "assistant", "content": "ok"}, *user]).tool_calls is not None
    assert _sim_plan(config, user, tools=None).tool_calls is None
    assert _sim_plan(SimConfig(), user).tool_calls is None


@pytest.mark.parametrize("messages,says", [
    ([{"role": "tool", "tool_call_id": "a", "content": "x"}], "messages with role 'tool' must be a response to a preceeding"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}, {"id": "b"}]},
      {"role": "tool", "tool_call_id": "a", "content": "x"}, {"role": "user", "content": "q"}],
     "The following tool_call_ids did not have response messages: b"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]}, {"role": "tool", "tool_call_id": "z", "content": "x"}],
     "'tool_call_id' of 'z' not found in 'tool_calls' of previous message"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]}, {"role": "tool", "content": "x"}],
     "Missing required parameter: 'messages.[1].tool_call_id'"),
])
def test_the_sim_checks_tool_messages_as_openai_does(messages: list[dict[str, Any]], says: str) -> None:
    from loadtest.sim.generate import RequestError
    from loadtest.sim.tools import check_tool_messages

    with pytest.raises(RequestError) as err:
        check_tool_messages(messages)
    assert err.value.status == 400 and says in err.value.message


def test_sim_tool_options_round_trip() -> None:
    import argparse

    from loadtest.cli.serve import sim_config, sim_options
    from loadtest.errors import ConfigError
    from loadtest.sim import SimConfig

    cfg = SimConfig(tool_call_rounds=2, tool_calls_per_round=3)
    parser = argparse.ArgumentParser()
    sim_options(parser)
    assert sim_config(parser.parse_args(cfg.to_args())) == cfg
    with pytest.raises(ConfigError):
        SimConfig(tool_calls_per_round=0)
