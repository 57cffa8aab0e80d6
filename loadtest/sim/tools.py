"""Tool calls in the test server (``--tool-call-rounds R --tool-calls-per-round M``): a request that
offers ``tools`` gets, for its first R replies after a user message, M tool calls instead of text,
with seeded JSON arguments streamed in several pieces, as a model with a tool parser answers; after R
rounds, text. Kept apart from the per-token path: a reply without tools never comes here.

A tool reply's "tokens" are its argument pieces: each is one whitespace-led word (the sim's own
tokenizer counts it as one token; the first piece of a call is ``{"name":``), so usage, chunk counts
and ``--log-chunks`` stay exact as for text. Each call's first delta carries its ``id``
(``call_<response number>_<k>``), ``type`` and ``function.name`` with empty arguments, as OpenAI's
does; the pieces follow, calls one after another. Tool messages in a request are checked the way
OpenAI checks them (400 with its wording): each answers a call of the assistant message before it,
and every call gets its answer before the conversation goes on.
"""

from __future__ import annotations

import random
import re
from typing import Any

import orjson

from loadtest.sim.config import SimConfig
from loadtest.sim.generate import Plan, RequestError

_PIECE = re.compile(r"\s*\S+")


def check_tool_messages(messages: list[Any]) -> None:
    """RequestError (400, OpenAI's words) when a ``tool`` message answers no call of the assistant
    message before it, or an assistant's tool calls are not all answered before the next message."""
    answered: set[str] | None = None  # the open assistant's call ids (None: no tool message may come)
    waiting: list[str] = []
    opened = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role == "tool":
            if answered is None:
                raise RequestError(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                                        "preceeding message with 'tool_calls'.", param=f"messages.[{i}].role")
            cid = m.get("tool_call_id")
            if not isinstance(cid, str):
                raise RequestError(400, f"Missing required parameter: 'messages.[{i}].tool_call_id'.",
                                   param=f"messages.[{i}].tool_call_id", code="missing_required_parameter")
            if cid not in answered:
                raise RequestError(400, f"Invalid parameter: 'tool_call_id' of '{cid}' not found in 'tool_calls' "
                                        "of previous message.", param=f"messages.[{i}].tool_call_id")
            if cid in waiting:
                waiting.remove(cid)
            continue
        _unanswered(waiting, opened)
        calls = m.get("tool_calls") if role == "assistant" else None
        if calls:
            answered = {c.get("id") for c in calls if isinstance(c, dict)}
            waiting, opened = [c.get("id") for c in calls if isinstance(c, dict)], i
        else:
            answered = None
    _unanswered(waiting, opened)


def _unanswered(waiting: list[str], at: int) -> None:
    if waiting:
        raise RequestError(400, "An assistant message with 'tool_calls' must be followed by tool messages responding "
                                "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                                + ", ".join(map(str, waiting)), param=f"messages.[{at}].role")


def rounds_done(messages: list[Any]) -> int:
    """Assistant messages with tool calls since the last user message: this user turn's rounds so far."""
    n = 0
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") == "user":
            break
        n += m.get("role") == "assistant" and bool(m.get("tool_calls"))
    return n


def _arguments(tool: dict[str, Any], rng: random.Random) -> str:
    """Seeded arguments for the tool's parameters (its properties, else one "input"): a JSON object
    whose whitespace falls only between pieces (a word per piece)."""
    props = ((tool.get("parameters") or {}).get("properties") or {}) if isinstance(tool, dict) else {}
    names = [n for n in props if isinstance(n, str)] or ["input"]
    fields = [orjson.dumps(n).decode() + ': "' + " ".join(f"w{rng.randrange(1000)}" for _ in range(rng.randint(2, 4)))
              + '"' for n in names]
    return "{" + ", ".join(fields) + "}"


def plan_tool_calls(config: SimConfig, body: dict[str, Any], plan: Plan) -> None:
    """Check the request's tool messages; with tools offered and rounds left, make ``plan`` a reply of
    --tool-calls-per-round calls (ids from the plan's seed: the response number)."""
    messages = body.get("messages") or []
    check_tool_messages(messages)
    tools = body.get("tools")
    if not config.tool_call_rounds or not isinstance(tools, list) or rounds_done(messages) >= config.tool_call_rounds:
        return
    functions = [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
                 and isinstance(t["function"].get("name"), str)]
    if not functions:
        return
    calls = []
    for k in range(config.tool_calls_per_round):
        fn = functions[k % len(functions)]
        calls.append((f"call_{plan.seed}_{k}", fn["name"], _arguments(fn, random.Random(f"tool-{plan.seed}-{k}"))))
    plan.tool_calls = tuple(calls)
    plan.tool_pieces = tuple((k, piece) for k, (_, _, args) in enumerate(calls) for piece in _PIECE.findall(args))
    plan.n_tokens = len(plan.tool_pieces)
    plan.reasoning_tokens = 0
    plan.finish_reason = "tool_calls"


def tool_choices(plan: Plan, start: int, end: int) -> list[bytes]:
    """The choices of pieces start..end-1, one SSE event each: the header delta of every call that
    starts there (id, type, name, empty arguments), then one delta with each call's pieces."""
    assert plan.tool_calls is not None
    out: list[bytes] = []
    pieces: dict[int, str] = {}
    for t in range(start, end):
        k, piece = plan.tool_pieces[t]
        if t == 0 or plan.tool_pieces[t - 1][0] != k:
            cid, name, _ = plan.tool_calls[k]
            out.append(_choice([{"index": k, "id": cid, "type": "function",
                                 "function": {"name": name, "arguments": ""}}]))
        pieces[k] = pieces.get(k, "") + piece
    out.append(_choice([{"index": k, "function": {"arguments": p}} for k, p in pieces.items()]))
    return out


def _choice(calls: list[dict[str, Any]]) -> bytes:
    return b'{"index":0,"delta":{"tool_calls":' + orjson.dumps(calls) + b'},"logprobs":null,"finish_reason":null}'


def tool_message(plan: Plan) -> bytes:
    """A non-streamed reply's message: every call whole."""
    assert plan.tool_calls is not None
    return orjson.dumps({"role": "assistant", "content": None, "tool_calls": [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        for cid, name, args in plan.tool_calls]})


def logged_calls(plan: Plan) -> list[list[str]]:
    """What --log-chunks says the reply called: [id, name, arguments] per call."""
    return [list(call) for call in plan.tool_calls or ()]
