"""Agentic tool loops end to end against the test server, whose --log-chunks line is the truth: the
calls each reply sent ([id, name, arguments]) and each request's messages (role, content hash, and
the tool_call_id a tool message answers, or the calls an assistant message carries back). The
client's assembled arguments must be exactly what the sim streamed in pieces; each round's request
must carry the previous one's messages, the assistant's calls and one result per call of exactly N
tokens; the tool pause is in no latency; rounds per task and the --max-tool-rounds cut-off are
counted exactly. Bad input: one line, exit 2."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from loadtest.prompts.synthetic import exact_text, word_pool
from loadtest.prompts.tools import SYNTHETIC_TOOLS
from loadtest.sim.state import content_hash
from loadtest.tokens import load_tokenizer

pytestmark = pytest.mark.timeout(120)

N_RESULT, WAIT_S = 12, 0.25


def _truth(log: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = {r["response_id"] for r in rows}
    return {t["id"]: t for t in map(json.loads, log.read_text().splitlines()) if t["id"] in ids}


def _tasks(rows: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[(r["session_id"], r["turn"])].append(r)
    return {k: sorted(v, key=lambda r: r["tool_round"]) for k, v in out.items()}


def _round_messages(prev: dict[str, Any], result_hash: str) -> list[Any]:
    """What the request after ``prev`` (a reply of tool calls) must carry beyond prev's messages."""
    calls = prev["tool_calls"]
    return [["assistant", content_hash(None), calls], *(["tool", result_hash, cid] for cid, _, _ in calls)]


def test_tool_rounds_carry_the_assembled_calls_and_exact_results(sim: Any, cli: Any, tmp_path: Path,
                                                                 hot_path: str) -> None:
    log = tmp_path / "sim.jsonl"
    server = sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.2, chunk_tokens_max=3,
                 tool_call_rounds=2, tool_calls_per_round=2, log_chunks=str(log))
    code, summary, rows = cli(["throughput", "--endpoint", server.base_url, "--tools", "synthetic", "--concurrency", "2",
                               "--num-prompts", "4", "--max-tokens", "8", "--tool-result-tokens", str(N_RESULT),
                               "--tool-latency", str(WAIT_S)], tmp_path / "out")
    assert code == 0 and len(rows) == 4 * 3 and all(r["ok"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    truth = _truth(log, rows)
    count = load_tokenizer("cl100k_base").count
    # the canned result: the seeded words the client made, exactly N tokens by the server's tokenizer
    counter = load_tokenizer("cl100k_base")
    result, n = exact_text(N_RESULT, counter, word_pool(counter), "tool-result-0")
    assert n == N_RESULT == count(result)
    t0 = summary["run"]["clock_origin_ns"]
    tasks = _tasks(rows)
    assert len(tasks) == 4
    for recs in tasks.values():
        assert [r["tool_round"] for r in recs] == [0, 1, 2] and [r["tool_calls"] for r in recs] == [2, 2, 0]
        assert recs[0]["tool_wait_s"] is None and all(WAIT_S <= r["tool_wait_s"] < WAIT_S + 0.1 for r in recs[1:])
        assert recs[-1]["finish_reason"] == "length" and all(r["finish_reason"] == "tool_calls" for r in recs[:2])
        for k, r in enumerate(recs):
            t = truth[r["response_id"]]
            assert r["prompt_tokens"] == t["prompt_tokens"] and r["completion_tokens"] == t["generated_tokens"]
            assert t0 + r["start_s"] * 1e9 <= t["recv_ns"]  # the client's clock started before the sim got it
            if not k:
                assert [m[0] for m in t["messages"]] == ["user"]
                continue
            prev = truth[recs[k - 1]["response_id"]]
            assert [name for _, name, _ in prev["tool_calls"]] == ["search_documents", "run_python"]
            # previous messages + the assistant's calls as the client assembled them (= what the sim
            # streamed in pieces) + one result per call, answering it by id
            assert t["messages"] == prev["messages"] + _round_messages(prev, content_hash(result))
            args = [json.loads(a) for _, _, a in prev["tool_calls"]]
            assert set(args[0]) == {"query"} and set(args[1]) == {"code"}
            assert t["prompt_tokens"] == prev["prompt_tokens"] + sum(count(a) for _, _, a in prev["tool_calls"]) \
                + 2 * N_RESULT
            # the tool pause: after the previous reply ended (client and sim clocks), in no latency
            assert t["recv_ns"] - prev["end_ns"] >= r["tool_wait_s"] * 1e9
            assert r["start_s"] - recs[k - 1]["end_s"] >= r["tool_wait_s"]
            assert r["e2e_s"] < WAIT_S and r["ttft_s"] < WAIT_S
        loop = recs[-1]["end_s"] - recs[0]["start_s"]
        assert loop >= sum(r["e2e_s"] for r in recs) + sum(r["tool_wait_s"] for r in recs[1:])
    block = summary["tools"]
    assert (block["tasks"], block["tasks_completed"], block["tasks_failed"], block["tasks_at_max_rounds"]) == (4, 4, 0, 0)
    assert block["tool_calls"] == 16 and block["requests_per_task"]["min"] == block["requests_per_task"]["max"] == 3
    assert block["loop_latency_s"]["count"] == 4 and block["loop_latency_s"]["min"] >= 2 * WAIT_S
    assert [(b["round"], b["requests"], b["ok"]) for b in block["by_round"]] == [(0, 4, 4), (1, 4, 4), (2, 4, 4)]
    assert block["by_round"][2]["prompt_tokens_mean"] > block["by_round"][1]["prompt_tokens_mean"]
    assert block["tool_result_tokens"] == N_RESULT and block["tool_result_verified_by_server_tokenize"] is True
    assert summary["config"]["tools"] == ["search_documents", "run_python"] and "tool_result_text" not in summary["config"]
    assert "sessions" not in summary  # one user turn per task: no sessions block


def test_max_tool_rounds_cuts_a_task_off_non_streamed(sim: Any, cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    server = sim(ttft_ms=1, tpot_ms=0.1, tool_call_rounds=5, log_chunks=str(log))
    code, summary, rows = cli(["single", "--endpoint", server.base_url, "--tools", "synthetic", "--num-prompts", "3",
                               "--max-tool-rounds", "2", "--no-stream", "--tool-result-tokens", "4"], tmp_path / "out")
    assert code == 0 and len(rows) == 3 * 3 and all(r["ok"] for r in rows)
    truth = _truth(log, rows)
    for recs in _tasks(rows).values():
        assert [r["tool_round"] for r in recs] == [0, 1, 2] and [r["tool_calls"] for r in recs] == [1, 1, 1]
        assert [r["id"] % 3 for r in recs] == [0, 1, 2]  # ids leave room for every round
        for k in (1, 2):
            t, prev = truth[recs[k]["response_id"]], truth[recs[k - 1]["response_id"]]
            assert t["messages"][:-2] == prev["messages"] and t["messages"][-2] == ["assistant", content_hash(None),
                                                                                  prev["tool_calls"]]
            assert t["messages"][-1][0] == "tool" and t["messages"][-1][2] == prev["tool_calls"][0][0]
    block = summary["tools"]
    assert (block["tasks"], block["tasks_completed"], block["tasks_at_max_rounds"], block["tool_calls"]) == (3, 0, 3, 9)
    assert block["loop_latency_s"]["count"] == 0  # no task got its final answer


def test_tools_in_multi_turn_sessions(sim: Any, cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    server = sim(ttft_ms=1, tpot_ms=0.1, tool_call_rounds=1, log_chunks=str(log))
    code, summary, rows = cli(["single", "--endpoint", server.base_url, "--dataset", "synthetic", "--prompt-tokens", "8",
                               "--turns", "2", "--num-prompts", "2", "--max-tokens", "4", "--tools", "synthetic"],
                              tmp_path / "out")
    assert code == 0 and len(rows) == 2 * 2 * 2 and all(r["ok"] for r in rows)
    truth = _truth(log, rows)
    for sid in {r["session_id"] for r in rows}:
        recs = sorted((r for r in rows if r["session_id"] == sid), key=lambda r: (r["turn"], r["tool_round"]))
        assert [(r["turn"], r["tool_round"], r["tool_calls"]) for r in recs] == [(0, 0, 1), (0, 1, 0), (1, 0, 1),
                                                                               (1, 1, 0)]
        # turn 1 carries turn 0's whole task: user, assistant calls, tool result, final answer
        answered, turn1 = truth[recs[1]["response_id"]]["messages"], truth[recs[2]["response_id"]]["messages"]
        assert turn1[:len(answered)] == answered and [m[0] for m in turn1[len(answered):]] == ["assistant", "user"]
    by_turn = summary["sessions"]["by_turn"]
    assert [(b["turn"], b["requests"]) for b in by_turn] == [(0, 2), (1, 2)]  # tool rounds are not turns
    assert summary["tools"]["tasks"] == 4 and summary["tools"]["tasks_completed"] == 4
    assert summary["prompts"]["usage_mismatched"] == 0  # only first requests are checked against the length


@pytest.mark.parametrize("args,says", [
    (["--tools", "{bad}"], "tools file not found: '{bad}'"),
    (["--tool-latency", "1"], "--tool-latency needs --tools FILE"),
    (["--max-tool-rounds", "2"], "--max-tool-rounds needs --tools FILE"),
    (["--tools", "synthetic", "--api", "completions"], "--tools needs --api chat"),
    (["--tools", "synthetic", "--workers", "2"], "tool loops run in one client process"),
    (["--tools", "synthetic", "--cancel-rate", "0.5"], "--tools does not combine with --cancel-rate"),
    (["--tools", "synthetic", "--max-tool-rounds", "-1"], "argument --max-tool-rounds"),
])
def test_bad_tool_options_one_line_exit_2(tmp_path: Path, refused: Any, args: list[str], says: str) -> None:
    argv = ["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--concurrency", "2", *args,
            "--output", str(tmp_path / "out")]
    refused(argv, tmp_path / "out", says)


def test_a_bad_tools_file_is_one_line_via_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "tools.json"
    path.write_text(json.dumps([SYNTHETIC_TOOLS[0], {"type": "function", "function": {"name": "two words"}}]))
    done = subprocess.run([sys.executable, "-m", "loadtest", "single", "--endpoint", "http://127.0.0.1:9/v1",
                           "--tools", str(path), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"tools file {path}: tool 1: function \"name\" must be 1-64" in lines[0]
