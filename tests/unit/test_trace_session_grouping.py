"""Trace sessions without a server: rows sharing a session_id grouped into one job in turn order, a
window that keeps or drops a session whole by its first row, the turn a row gives (its last user
message, or its exact token count with no template taken off), the session loop's hold hook and
per-turn lengths, and what a session trace refuses (one line, exit 2)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from loadtest.client.trace import TracePlan
from loadtest.config import RunConfig
from loadtest.errors import DatasetError
from loadtest.measure.record import RequestRecord, cancelled_record
from loadtest.prompts.sources import Prompt
from loadtest.prompts.trace import TraceRow, load_trace
from loadtest.prompts.tracesessions import Job, group_jobs, job_prompts, later_turns, turn_of, window_keys
from loadtest.prompts.tracetext import trace_prompts
from loadtest.run.sessions import SessionLoop
from loadtest.scheduler.replay import ReplaySpec, replay
from loadtest.transport import Exchange


class Words:
    name = "words"

    def count(self, text: str) -> int:
        return len(text.split())


POOL = [f"w{chr(97 + i)}{chr(97 + j)}" for i in range(26) for j in range(26)]


def _row(line: int, t: float, sid: str | None = None, n_in: int | None = 8, n_out: int = 4,
         messages: list[dict[str, Any]] | None = None) -> TraceRow:
    return TraceRow(line, t, n_out, None if messages else n_in, messages=tuple(messages) if messages else None,
                    session_id=sid)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# rows in offset order: a at 0, 2, 5; loose at 1 and 3; b at 1.5, 2.5, 9; c at 6 (one row)
ROWS = [_row(1, 0.0, "a"), _row(2, 1.0), _row(3, 1.5, "b"), _row(4, 2.0, "a"), _row(5, 2.5, "b"), _row(6, 3.0),
        _row(7, 5.0, "a"), _row(8, 6.0, "c"), _row(9, 9.0, "b")]


def test_rows_sharing_a_session_id_are_one_job_in_turn_order() -> None:
    jobs = group_jobs(ROWS)
    assert jobs == [Job((0, 3, 6), "a"), Job((1,)), Job((2, 4, 8), "b"), Job((5,)), Job((7,), "c")]
    assert later_turns(jobs) == {3, 6, 4, 8}
    assert window_keys(ROWS) == [0.0, 1.0, 1.5, 0.0, 1.5, 3.0, 0.0, 6.0, 1.5]
    assert group_jobs([_row(1, 0.0), _row(2, 0.5)]) == [Job((0,)), Job((1,))]  # no session: as before


def test_rows_of_one_instant_keep_the_files_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [{"start_s": 1.0, "prompt_tokens": 5, "max_tokens": 2, "session_id": 7},
                                         {"start_s": 0.0, "prompt_tokens": 6, "max_tokens": 2, "session_id": "7"},
                                         {"start_s": 1.0, "prompt_tokens": 7, "max_tokens": 2, "session_id": 7}])
    rows = load_trace(path).rows
    assert [r.line for r in rows] == [2, 1, 3] and {r.session_id for r in rows} == {"7"}
    assert group_jobs(rows) == [Job((0, 1, 2), "7")]


def test_a_window_keeps_or_drops_a_session_whole_by_its_first_row() -> None:
    offsets = [r.offset_s for r in ROWS]
    s = replay(offsets, ReplaySpec(window=(1.0, 4.0)), keys=window_keys(ROWS))
    # a (first row at 0) is dropped with its rows at 2 and 5; b (at 1.5) kept with its row at 9, past END
    assert s.indices == (1, 2, 4, 5, 8) and s.times == pytest.approx([0.0, 0.5, 1.5, 2.0, 8.0])
    assert replay(offsets, ReplaySpec(window=(1.0, 4.0))).indices == (1, 2, 3, 4, 5)  # by own offsets: cut
    s = replay(offsets, ReplaySpec(speed=2, max_idle_s=1.0), keys=window_keys(ROWS))  # all kept, later rows timed too
    assert s.indices == tuple(range(9)) and s.times == pytest.approx([0, 0.5, 0.75, 1, 1.25, 1.5, 2.5, 3, 4])


def test_a_turn_is_the_last_user_message_and_the_first_rows_earlier_messages_lead() -> None:
    first = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "earlier"},
             {"role": "assistant", "content": "recorded"}, {"role": "user", "content": [{"type": "text", "text": "q1"}]}]
    later = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "q2"},
             {"role": "assistant", "content": "trailing, ignored"}]
    rows = [_row(1, 0.0, "s", messages=first, n_out=3), _row(2, 0.2), _row(3, 0.5, "s", messages=later, n_out=6),
            _row(4, 0.9, "s", n_in=5, n_out=2)]
    plan = trace_prompts(rows, stem="t", counter=Words(), pool=POOL, overhead=2, seed=0,
                         later=later_turns(group_jobs(rows)))
    assert len(plan.prompts[3].text.split()) == 5  # a later turn: exactly its tokens, no template taken off
    assert len(plan.prompts[1].text.split()) == 6 and plan.expected == {"t-2": 8}  # a loose row: as ever
    prompts = job_prompts(rows, plan.prompts, group_jobs(rows), [0.0, 0.2, 0.5, 0.9], "t.jsonl")
    s, loose = prompts
    assert loose is plan.prompts[1]
    assert s.id == "t-1" and s.turns == ("q1", "q2", plan.prompts[3].text) and s.text == "q1"
    assert s.messages == tuple(first[:3]) and s.max_tokens == 3 and s.turn_max_tokens == (3, 6, 2)
    assert s.turn_offsets_s == pytest.approx((0.0, 0.5, 0.9))
    with pytest.raises(DatasetError, match=r"^t.jsonl:4: a row of session 's' needs a last user message"):
        turn_of(_row(4, 0.0, "s", messages=[{"role": "assistant", "content": "no user"}]), "t.jsonl")


def test_mooncake_rows_carry_their_session_id(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.jsonl", [{"timestamp": 0, "input_length": 600, "output_length": 2, "hash_ids": [1, 2],
                                          "session_id": "u1"},
                                         {"timestamp": 500, "input_length": 30, "output_length": 3, "hash_ids": [3],
                                          "session_id": "u1"}])
    assert [(r.session_id, r.offset_s) for r in load_trace(path).rows] == [("u1", 0.0), ("u1", 0.5)]
    _write(path, [{"timestamp": 0, "input_length": 6, "output_length": 2, "session_id": "u"},
                  {"delay": 500, "input_length": 6, "output_length": 2, "session_id": "u"}])
    with pytest.raises(DatasetError, match=r"m.jsonl:2: delay .* is not supported"):
        load_trace(path)
    _write(path, [{"start_s": 0, "prompt_tokens": 6, "max_tokens": 2, "session_id": ["x"]}])
    with pytest.raises(DatasetError, match=r"m.jsonl:1: session_id must be"):
        load_trace(path)


def test_the_plan_schedules_one_job_per_session_and_counts_them(tmp_path: Path) -> None:
    trace = load_trace(_write(tmp_path / "t.jsonl", [
        {"start_s": t, "prompt_tokens": 4, "max_tokens": n, **({"session_id": sid} if sid else {})}
        for t, n, sid in ((0.0, 2, "a"), (0.5, 3, None), (1.0, 9, "a"), (2.0, 4, "b"))]))
    schedule = replay([r.offset_s for r in trace.rows], ReplaySpec(speed=2), keys=window_keys(trace.rows))
    jobs = group_jobs(trace.rows)
    plan = trace_prompts(trace.rows, stem="t", counter=Words(), pool=POOL, overhead=0, seed=0,
                         later=later_turns(jobs))
    plan.prompts = job_prompts(trace.rows, plan.prompts, jobs, schedule.times, "t")
    tp = TracePlan(trace, schedule, plan, jobs)
    cfg = tp.configure(RunConfig(command="throughput", base_url="http://x/v1", model="m", trace="t", warmup=1))
    assert cfg.trace_schedule_s == pytest.approx((0.0, 0.25, 1.0)) and cfg.num_prompts == 2 and cfg.max_tokens == 9
    block = tp.block(cfg)
    assert (block["rows_used"], block["sessions"], block["session_starts"], block["rows_chained"], block["jobs"]) == (
        4, 2, 2, 1, 3)
    assert plan.prompts[0].turn_offsets_s == pytest.approx((0.0, 0.5))


def _loop(hold: Any, sent: list[Prompt]) -> tuple[SessionLoop, list[RequestRecord]]:
    records: list[RequestRecord] = []

    async def send(prompt: Prompt, headers: dict[str, str] | None, session: str) -> Exchange:
        sent.append(prompt)
        return None  # type: ignore[return-value]

    def record(ex: Any, rid: int, pid: str, warmup: bool, on_reply: Any) -> RequestRecord:
        on_reply(f"reply {rid}", [])  # (visible text, tool calls)
        rec = cancelled_record(request_id=rid, prompt_id=pid, t_start_ns=0, run_t0_ns=0, warmup=warmup, reason="")
        rec.ok, rec.completion_tokens = True, 5
        return rec

    cfg = RunConfig(command="throughput", base_url="http://x/v1", model="m")
    loop = SessionLoop(cfg, send, record, None, records.append, asyncio.Event(), 3, lambda sid: None,  # type: ignore[arg-type]
                       hold=hold)
    return loop, records


def test_the_session_loop_awaits_the_hold_before_each_later_turn_and_asks_each_turns_length() -> None:
    calls: list[tuple[int, Any]] = []

    async def hold(session: Prompt, turn: int, sched: Any) -> tuple[float, float]:
        calls.append((turn, sched[0]))
        return (0.25, 0.0) if turn == 1 else (0.0, 0.125)

    sent: list[Prompt] = []
    loop, records = _loop(hold, sent)
    session = Prompt("t-1", "q1", max_tokens=3, turns=("q1", "q2", "q3"), turn_max_tokens=(3, 6, 2),
                     turn_offsets_s=(0.0, 0.5, 0.9))
    asyncio.run(loop.run(1, session, (4.0, 0.0, "measured"), False))
    assert calls == [(1, 4.0), (2, 4.0)]
    assert [p.max_tokens for p in sent] == [3, 6, 2]
    assert [m["content"] for m in sent[2].messages] == ["q1", "reply 3", "q2", "reply 4", "q3"]
    assert [(r.id, r.turn, r.held_s, r.late_s, r.max_tokens, r.stopped_early) for r in records] == [
        (3, 0, None, None, 3, False), (4, 1, 0.25, 0.0, 6, True), (5, 2, 0.0, 0.125, 2, False)]
    assert [r.scheduled_s for r in records] == [4.0, None, None]  # later turns: no schedule, no send lag


def test_without_a_hold_sessions_are_as_before() -> None:
    sent: list[Prompt] = []
    loop, records = _loop(None, sent)
    asyncio.run(loop.run(0, Prompt("p", "q1", turns=("q1", "q2")), (None, None, "measured"), False))
    assert [p.max_tokens for p in sent] == [None, None]
    assert [(r.held_s, r.late_s, r.max_tokens) for r in records] == [(None, None, None)] * 2


@pytest.mark.parametrize(("extra", "says"), [
    (["--think-time", "1"], ("--trace replays its sessions at their recorded times with the actual replies: "
                             "leave out --think-time")),
    (["--history", "recorded"], "leave out --history recorded"),
    (["--session-rate", "2"], "leave out --session-rate"),
    (["--api", "completions"], "replay as multi-turn sessions, which need --api chat"),
    (["--cancel-rate", "0.5"], "which do not combine with --cancel-rate"),
    (["--multi-turn"], "sessions do not combine with --trace"),
])
def test_what_a_session_trace_refuses_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  extra: list[str], says: str) -> None:
    trace = _write(tmp_path / "t.jsonl", [{"start_s": 0, "prompt_tokens": 4, "max_tokens": 2, "session_id": "a"},
                                          {"start_s": 1, "prompt_tokens": 4, "max_tokens": 2, "session_id": "a"}])
    code = main(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--trace", str(trace), *extra,
                 "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("loadtest: error: ") and says in err[0], err


def test_a_session_header_goes_with_a_trace() -> None:
    from loadtest.cli.main import build_parser
    from loadtest.cli.run import config_from_args

    ns = build_parser().parse_args(["throughput", "--endpoint", "http://x/v1", "--trace", "t.jsonl",
                                    "--session-header", "x-session-id"])
    cfg = config_from_args(ns)
    assert cfg.session_header == "x-session-id" and not cfg.sessions
