"""The pure parts of multi-turn sessions: reading conversations, the seeded think times, record ids,
and the summary's sessions block."""

from __future__ import annotations

import pytest

from loadtest.config import RunConfig
from loadtest.errors import DatasetError
from loadtest.measure.sessions import session_block
from loadtest.prompts.sessions import session_of_row, sessions_from_rows
from loadtest.prompts.sources import Prompt
from loadtest.run.console import session_lines
from loadtest.run.sessions import stride, think_times


def test_a_conversation_row_becomes_its_user_turns_and_recorded_replies() -> None:
    row = {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "a"},
                             {"from": "gpt", "value": "A"}, {"from": "human", "value": "b"},
                             {"from": "human", "value": "c"}, {"from": "gpt", "value": "C"}]}
    assert session_of_row(row) == ([{"role": "system", "content": "be brief"}], ["a", "b", "c"], ["A", None, "C"])
    assert session_of_row({"messages": [{"role": "assistant", "content": "x"}]}) is None


def test_recorded_history_needs_every_reply_but_the_last() -> None:
    rows = [{"id": "r", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}]
    assert sessions_from_rows(rows, "f", prefix="f", recorded=False)[0].turns == ("a", "b")
    with pytest.raises(DatasetError, match="--history recorded needs one"):
        sessions_from_rows(rows, "f", prefix="f", recorded=True)


def test_think_times_are_seeded_per_session_with_the_mean_asked() -> None:
    cfg = RunConfig(command="single", base_url="http://x/v1", model="m", think_time_s=2.0)
    a, b = think_times(cfg, 0), think_times(cfg, 0)
    draws = [a() for _ in range(4000)]
    assert draws[:5] == [b() for _ in range(5)] and draws[:5] != [think_times(cfg, 1)() for _ in range(5)]
    assert sum(draws) / len(draws) == pytest.approx(2.0, rel=0.06)
    assert think_times(RunConfig(command="single", base_url="http://x/v1", model="m"), 0)() == 0.0


def test_stride_is_the_longest_session() -> None:
    assert stride([Prompt("a", "x", turns=("x", "y")), Prompt("b", "x", turns=("x", "y", "z")), Prompt("c", "x")]) == 3


def _rec(sid: str, turn: int, start: float, end: float, ok: bool = True, **kw: object) -> dict[str, object]:
    return {"session_id": sid, "turn": turn, "start_s": start, "end_s": end, "ok": ok, "warmup": False,
            "ttft_s": kw.get("ttft_s", 0.1), "e2e_s": end - start, "prompt_tokens": kw.get("pt", 10),
            "cached_tokens": kw.get("ct"), "error_kind": None if ok else "server_error"}


def test_the_sessions_block() -> None:
    rows = [_rec("s0", 0, 0.0, 1.0, ttft_s=0.4, pt=10, ct=0), _rec("s0", 1, 3.0, 3.5, ttft_s=0.2, pt=30, ct=10),
            _rec("s1", 0, 0.5, 1.0, ttft_s=0.6, pt=10, ct=0), _rec("s1", 1, 2.0, 2.1, ok=False),
            {**_rec("s2", 0, 0.0, 0.1), "warmup": True}]
    b = session_block(rows)
    assert b is not None and b["sessions"] == 2 and b["sessions_with_failed_turn"] == 1
    t0, t1 = b["by_turn"]
    assert (t0["requests"], t0["ok"], t0["ttft_s_p50"], t0["prompt_tokens_mean"]) == (2, 2, 0.5, 10)
    assert (t1["requests"], t1["ok"], t1["ttft_s_mean"], t1["cached_tokens_mean"]) == (2, 1, 0.2, 10)
    assert b["duration_s"]["max"] == 3.5 and b["duration_s"]["min"] == 0.5  # first start to last ok end
    assert (b["turns_ok"]["min"], b["turns_ok"]["max"]) == (1, 2)
    assert session_block([{"ok": True, "warmup": False}]) is None


def test_console_shows_the_sessions_by_turn() -> None:
    rows = [{"session_id": f"s{i}", "turn": k, "ok": True, "start_s": i + k * 0.1, "end_s": i + k * 0.1 + 0.05,
             "ttft_s": 0.02 - k * 0.005, "e2e_s": 0.05, "prompt_tokens": 64 + 72 * k, "cached_tokens": 64 * k}
            for i in range(2) for k in range(3)]
    summary = {"sessions": session_block(rows),
               "trace": {"session_starts": 2, "sessions": 2, "rows_chained": 4, "turns_held": 3, "turns_late": 1,
                         "late_s_max": 0.0042}}
    lines = session_lines(summary)
    assert lines[0] == ("sessions: 2, 0 with a failed turn  |  turns ok mean 3.00  |  duration p50 0.250 s, "
                        "max 0.250 s (pauses between turns included)")
    assert lines[1] == "trace sessions: 2 (4 rows chained as later turns): 3 turns held for their offset, 1 late, max 4.2 ms"
    table = [line.split() for line in lines[4:]]
    assert table == [["0", "2/2", "20.0", "20.0", "0.050", "64.0", "0.0"],
                     ["1", "2/2", "15.0", "15.0", "0.050", "136.0", "64.0"],
                     ["2", "2/2", "10.0", "10.0", "0.050", "208.0", "128.0"]]
    assert session_lines({"sessions": None}) == []
