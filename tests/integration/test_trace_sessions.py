"""Trace rows sharing a session_id, replayed as multi-turn sessions against the test server, whose
--log-chunks line is the truth: when it received each turn (recv_ns, on the client's clock), when
it ended the previous reply, the messages it was sent ([role, content hash]), its exact prompt tokens
and the session header. A session's turns never overlap; each carries the previous turn's messages
+ the actual reply + the next user turn; first turns (and loose rows) start on their offsets within
the open loop's send lag; a later turn whose previous reply came early is held until its offset, and
one whose reply came late goes at once with its lateness recorded."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from loadtest.sim.generate import token_text
from loadtest.sim.state import content_hash

pytestmark = pytest.mark.timeout(120)

LAG_S = 0.05  # the open loop's send lag and a hold's wake-up, with room for a busy test host

# (start_s, prompt_tokens | messages, max_tokens, session): a and b synthesised, c given as messages, 3 loose rows
ROWS: list[tuple[float, Any, int, str | None]] = [
    (0.00, 24, 6, "a"), (0.02, 12, 3, None), (0.05, 20, 8, "b"),
    (0.06, 6, 3, "b"),  # 10 ms after b's first turn, whose reply takes 20 + 7 x 2 ms: late
    (0.10, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first question please"}], 4, "c"),
    (0.20, 9, 2, None), (0.30, 8, 5, "a"),
    (0.35, [{"role": "user", "content": "second question"}], 3, "c"),
    (0.40, [{"role": "user", "content": "a loose one"}], 2, None), (0.50, 7, 4, "b"), (0.60, 10, 4, "a"),
    (0.70, [{"role": "system", "content": "not sent"}, {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": "recorded, not sent"}, {"role": "user", "content": "third one"}], 2, "c"),
]


def _trace(path: Path, rows: list[tuple[float, Any, int, str | None]]) -> Path:
    lines = []
    for t, given, n_out, sid in rows:
        row: dict[str, Any] = {"start_s": t, "max_tokens": n_out}
        row.update({"messages": given} if isinstance(given, list) else {"prompt_tokens": given})
        if sid is not None:
            row["session_id"] = sid
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines))
    return path


def _words(row: tuple[float, Any, int, str | None], first: bool) -> int:
    """The turn's own tokens as the sim counts them (whitespace words): a synthesised row's count; a
    messages row's last user message, and on a first turn the messages before it."""
    given = row[1]
    if not isinstance(given, list):
        return int(given)
    last = max(k for k, m in enumerate(given) if m["role"] == "user")
    return sum(len(m["content"].split()) for m in (given[:last + 1] if first else given[last:last + 1]))


def _run(sim: Any, cli: Any, tmp: Path, rows: list[tuple[float, Any, int, str | None]], *extra: str) -> Any:
    log = tmp / "sim.jsonl"
    server = sim(ttft_ms=20, tpot_ms=2, tokenize_endpoint=True, output_tokens=2, log_chunks=str(log),
                 log_header="x-session-id")
    code, summary, recs = cli(["throughput", "--endpoint", server.base_url, "--model", "sim-model", "--trace",
                               str(_trace(tmp / "t.jsonl", rows)), "--session-header", "x-session-id", *extra],
                              tmp / "out")
    ids = {r["response_id"] for r in recs}
    truth = {t["id"]: t for t in map(json.loads, log.read_text().splitlines()) if t["id"] in ids}
    return code, summary, recs, truth


def test_session_rows_replay_as_conversations_on_the_traces_clock(sim: Any, cli: Any, tmp_path: Path) -> None:
    code, summary, recs, truth = _run(sim, cli, tmp_path, ROWS)
    assert code == 0 and len(recs) == len(ROWS) and all(r["ok"] for r in recs)
    assert len({r["id"] for r in recs}) == len(ROWS)
    origin_ns = summary["run"]["clock_origin_ns"]
    by_line = {r["prompt_id"]: r for r in recs if not r.get("turn")}
    first_sched = by_line["t-1"]["scheduled_s"]  # the trace's first row: offset 0
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        if r["session_id"] is not None:
            sessions[r["session_id"]].append(r)
    assert len(sessions) == 3
    rows_of = {sid: [(line, row) for line, row in enumerate(ROWS, 1) if row[3] == sid] for sid in "abc"}
    late = 0
    for turns in sessions.values():
        turns.sort(key=lambda r: r["turn"])
        sid = next(s for s, rows in rows_of.items() if f"t-{rows[0][0]}" == turns[0]["prompt_id"])
        rows = rows_of[sid]
        assert [r["turn"] for r in turns] == [0, 1, 2] and {r["prompt_id"] for r in turns} == {f"t-{rows[0][0]}"}
        assert {truth[r["response_id"]]["header"] for r in turns} == {turns[0]["session_id"]}
        offset0 = rows[0][1][0]
        expected_tokens = 0
        for k, (r, (line, row)) in enumerate(zip(turns, rows)):
            t = truth[r["response_id"]]
            assert r["max_tokens"] == row[2] == r["completion_tokens"] and r["stopped_early"] is False
            expected_tokens += _words(row, k == 0)
            assert r["prompt_tokens"] == t["prompt_tokens"] == expected_tokens  # exact, history included
            expected_tokens += r["completion_tokens"]  # the actual reply: the sim's words
            received_s = (t["recv_ns"] - origin_ns) / 1e9
            if k == 0:  # on the open loop's schedule, within its send lag
                assert r["scheduled_s"] - first_sched == pytest.approx(offset0, abs=1e-6)
                assert 0 <= r["start_s"] - r["scheduled_s"] <= summary["metrics"]["send_lag_s"]["max"] < LAG_S
                assert r["held_s"] is None and r["late_s"] is None
                continue
            prev, tp = turns[k - 1], truth[turns[k - 1]["response_id"]]
            assert r["scheduled_s"] is None and r["queue_s"] is None  # no send lag of its own
            # never overlapping: sent after the reply ended, server side and client side
            assert t["recv_ns"] > max(tp["sent_ns"]) and t["recv_ns"] >= tp["end_ns"] and r["start_s"] >= prev["end_s"]
            if isinstance(row[1], list):
                user = row[1][max(i for i, m in enumerate(row[1]) if m["role"] == "user")]["content"]
                assert t["messages"][-1] == ["user", content_hash(user)]
            assert t["messages"][:-1] == tp["messages"] + [["assistant", content_hash(
                token_text(0, prev["completion_tokens"]).decode())]]
            assert t["messages"][-1][0] == "user" and len(t["messages"]) == len(tp["messages"]) + 2
            due = turns[0]["scheduled_s"] + row[0] - offset0
            if r["late_s"] > 0:  # the reply came after the offset: sent at once, lateness recorded
                late += 1
                assert r["held_s"] == 0 and prev["end_s"] > due
                assert r["late_s"] == pytest.approx(r["start_s"] - due, abs=LAG_S)
            else:  # held until its own offset, not a moment earlier
                assert r["held_s"] > 0 and r["late_s"] == 0
                assert received_s >= due and r["start_s"] >= due and r["start_s"] - due < LAG_S
                assert prev["end_s"] + r["held_s"] <= due + LAG_S
    assert late >= 1  # b's second turn, 10 ms after a first turn that takes ~34 ms
    for r in recs:
        if r["session_id"] is None:  # loose rows: as before, on their offsets, no header
            assert truth[r["response_id"]]["header"] is None and r["held_s"] is None
            line = int(r["prompt_id"].split("-")[1])
            assert r["scheduled_s"] - first_sched == pytest.approx(ROWS[line - 1][0], abs=1e-6)
            assert r["prompt_tokens"] == _words(ROWS[line - 1], True)
    t = summary["trace"]
    assert (t["rows_used"], t["sessions"], t["session_starts"], t["rows_chained"], t["jobs"]) == (12, 3, 3, 6, 6)
    assert t["turns_held"] + t["turns_late"] == 6 and t["turns_late"] == late and t["late_s_max"] > 0
    assert t["stopped_early"] == 0 and t["completions_checked"] == 12
    block = summary["sessions"]
    assert block["sessions"] == 3 and [b["requests"] for b in block["by_turn"]] == [3, 3, 3]
    assert summary["prompts"]["usage_checked"] == 4 and summary["prompts"]["usage_mismatched"] == 0


def test_a_window_keeps_sessions_whole_and_speed_scales_their_turns(sim: Any, cli: Any, tmp_path: Path) -> None:
    rows: list[tuple[float, Any, int, str | None]] = [
        (0.0, 8, 2, "x"), (0.4, 6, 2, None), (1.0, 8, 2, "y"), (1.2, 5, 2, "x"), (1.6, 5, 2, "y"), (3.4, 5, 2, "y")]
    # window 0.4:2.0 at speed 2: x (first row at 0) goes whole, with its row at 1.2; y (at 1.0) stays whole,
    # with its row at 3.4, past the window's end
    code, summary, recs, _ = _run(sim, cli, tmp_path, rows, "--trace-window", "0.4:2.0", "--replay-speed", "2")
    assert code == 0 and all(r["ok"] for r in recs)
    assert sorted(r["prompt_id"] for r in recs) == ["t-2", "t-3", "t-3", "t-3"]
    y = sorted((r for r in recs if r["session_id"] is not None), key=lambda r: r["turn"])
    loose = next(r for r in recs if r["session_id"] is None)
    assert y[0]["scheduled_s"] - loose["scheduled_s"] == pytest.approx(0.3, abs=1e-6)  # (1.0 - 0.4) / 2
    for r, offset in zip(y[1:], (0.3, 1.2)):  # (1.6 - 1.0) / 2, (3.4 - 1.0) / 2
        assert r["held_s"] > 0 and r["start_s"] >= y[0]["scheduled_s"] + offset
        assert r["start_s"] - (y[0]["scheduled_s"] + offset) < LAG_S
    t = summary["trace"]
    assert (t["rows_used"], t["rows_outside_window"], t["session_starts"], t["rows_chained"]) == (4, 2, 1, 2)
