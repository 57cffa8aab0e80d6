"""Trace replay without a server: each format's parser (tests/fixtures/traces/, small synthetic
samples), bad rows as one ``FILE:LINE: ...`` line, the schedule's window, speed and idle compression,
Mooncake's shared blocks, and the options --trace refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.cli.main import main
from loadtest.errors import DatasetError
from loadtest.prompts.trace import AZURE, BURSTGPT, JSONL, MOONCAKE, load_trace
from loadtest.prompts.tracetext import trace_prompts
from loadtest.scheduler.replay import ReplaySpec, replay

TRACES = Path(__file__).parents[1] / "fixtures" / "traces"


class Words:
    """The sim's own prompt counter: whitespace-separated words."""

    name = "words"

    def count(self, text: str) -> int:
        return len(text.split())


POOL = [f"w{chr(97 + i)}{chr(97 + j)}" for i in range(26) for j in range(26)]


def test_mooncake_parses_with_ms_offsets_and_hash_ids() -> None:
    t = load_trace(TRACES / "mooncake.jsonl")
    assert t.format == MOONCAKE and t.skipped == 0
    assert [r.offset_s for r in t.rows] == [0.0, 0.5, 1.0, 1.0, 4.0]
    assert [r.input_tokens for r in t.rows] == [1100, 1030, 700, 300, 1024]
    assert [r.output_tokens for r in t.rows] == [6, 4, 5, 3, 7]
    assert t.rows[1].hash_ids == (0, 1, 3) and t.rows[3].line == 4


def test_burstgpt_parses_and_skips_rows_without_a_response() -> None:
    t = load_trace(TRACES / "burstgpt.csv")
    assert t.format == BURSTGPT
    assert [(r.line, r.offset_s, r.input_tokens, r.output_tokens) for r in t.rows] == [
        (2, 0.0, 120, 30), (4, 2.25, 200, 12), (5, 4.0, 48, 8)]
    assert t.skipped == 1 and t.skip_reasons == {"no output tokens": 1}


def test_azure_parses_seven_digit_fractions() -> None:
    t = load_trace(TRACES / "azure.csv")
    assert t.format == AZURE
    assert [r.offset_s for r in t.rows] == pytest.approx([0.0, 4.314579, 4.31941], abs=1e-6)
    assert [(r.input_tokens, r.output_tokens) for r in t.rows] == [(374, 44), (396, 109), (879, 8)]


def test_our_jsonl_takes_messages_or_prompt_tokens() -> None:
    t = load_trace(TRACES / "requests.jsonl")
    assert t.format == JSONL and [r.offset_s for r in t.rows] == [0.0, 0.25, 1.5]
    assert t.rows[0].input_tokens == 40 and t.rows[0].session_id == "a"
    assert t.rows[1].input_tokens is None and t.rows[1].messages[1]["content"] == "say hello twice"
    assert [r.output_tokens for r in t.rows] == [5, 3, 9] and t.rows[2].line == 4  # the blank line counts


@pytest.mark.parametrize(("name", "text", "line", "says"), [
    ("m.jsonl", ('{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [1]}\n'
                 '{"timestamp": 5, "input_length": "x", "output_length": 2, "hash_ids": [1]}\n'), 2, "input_length"),
    ("m.jsonl", '{"timestamp": 0, "input_length": 900, "output_length": 2, "hash_ids": [1]}\n', 1, "does not fit"),
    ("o.jsonl", ('{"start_s": 0, "prompt_tokens": 4, "max_tokens": 2}\n\n{"start_s": -1, "prompt_tokens": 4, '
                 '"max_tokens": 2}\n'), 3, "start_s must be >= 0"),
    ("o.jsonl", '{"start_s": 0, "max_tokens": 2}\n', 1, "messages or prompt_tokens"),
    ("o.jsonl", '{"start_s": 0, "prompt_tokens": 4, "max_tokens": 2}\n{not json\n', 2, "invalid JSON"),
    ("b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1,m,5,5,10,x\n2,m,five,5,10,x\n",
     3, "'five' is not a number"),
    ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,5,5\n", 2, "not a date"),
    ("x.csv", "time,in,out\n1,2,3\n", 1, "unknown trace format"),
])
def test_a_bad_row_names_the_file_and_line(tmp_path: Path, name: str, text: str, line: int, says: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError) as err:
        load_trace(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and says in message and "\n" not in message


def test_a_bad_row_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"start_s": 0, "prompt_tokens": 4, "max_tokens": 2}\n{"start_s": 1, "prompt_tokens": 4}\n')
    code = main(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--trace", str(path),
                 "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"loadtest: error: {path}:2: max_tokens must be an integer (missing)"]


def test_speed_window_and_idle_compression() -> None:
    offsets = [0.0, 1.0, 2.0, 12.0, 13.0, 40.0]
    s = replay(offsets, ReplaySpec())
    assert s.times == tuple(offsets) and s.gaps_compressed == 0
    s = replay(offsets, ReplaySpec(speed=10))
    assert s.times == pytest.approx([0.0, 0.1, 0.2, 1.2, 1.3, 4.0]) and s.duration_s == pytest.approx(4.0)
    s = replay(offsets, ReplaySpec(window=(1.5, 13.0)))  # 2 and 12 kept, counted from 1.5
    assert s.indices == (2, 3) and s.times == pytest.approx([0.5, 10.5])
    s = replay(offsets, ReplaySpec(max_idle_s=2.0))  # the 10 s and 27 s gaps become 2 s
    assert s.times == pytest.approx([0.0, 1.0, 2.0, 4.0, 5.0, 7.0])
    assert s.gaps_compressed == 2 and s.idle_removed_s == pytest.approx(8.0 + 25.0)
    s = replay(offsets, ReplaySpec(speed=2, window=(10.0, None), max_idle_s=0.5))  # lead-in 1 s -> 0.5 s
    assert s.indices == (3, 4, 5) and s.times == pytest.approx([0.5, 1.0, 1.5])


def test_mooncake_rows_sharing_hash_ids_share_exactly_their_blocks() -> None:
    rows = load_trace(TRACES / "mooncake.jsonl").rows
    plan = trace_prompts(rows, stem="mooncake", counter=Words(), pool=POOL, overhead=0, seed=3)
    words = [p.text.split() for p in plan.prompts]
    assert [len(w) for w in words] == [1100, 1030, 700, 300, 1024]
    assert [p.max_tokens for p in plan.prompts] == [6, 4, 5, 3, 7]
    assert plan.expected == {"mooncake-1": 1100, "mooncake-2": 1030, "mooncake-3": 700, "mooncake-4": 300,
                             "mooncake-5": 1024}

    def shared(a: list[str], b: list[str]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    assert shared(words[0], words[1]) == 1024  # [0, 1, 2] and [0, 1, 3]
    assert shared(words[0], words[2]) == 512  # [0, 1, 2] and [0, 4]
    assert shared(words[0], words[3]) == 0  # [5]
    assert shared(words[0], words[4]) == 1024 and shared(words[1], words[4]) == 1024
    again = trace_prompts(rows, stem="mooncake", counter=Words(), pool=POOL, overhead=0, seed=3)
    assert [p.text for p in again.prompts] == [p.text for p in plan.prompts]  # seeded


def test_rows_without_hash_ids_start_differently_and_messages_go_as_given() -> None:
    rows = load_trace(TRACES / "requests.jsonl").rows
    plan = trace_prompts(rows, stem="requests", counter=Words(), pool=POOL, overhead=2, seed=0)
    a, b, c = plan.prompts
    assert len(a.text.split()) == 38 and len(c.text.split()) == 10  # the template's 2 tokens taken off
    assert a.text.split()[:2] != c.text.split()[:2]
    assert b.messages == rows[1].messages and b.text == "say hello twice" and b.max_tokens == 3
    assert plan.expected == {"requests-1": 40, "requests-4": 12}


@pytest.mark.parametrize(("extra", "says"), [
    (["--request-rate", "5"], "leave out --request-rate"),
    (["--concurrency", "2"], "leave out --concurrency"),
    (["--num-prompts", "5"], "leave out --num-prompts"),
    (["--duration", "5"], "leave out --duration"),
    (["--dataset", "synthetic", "--prompt-tokens", "5"], "leave out --dataset"),
    (["--workers", "2"], "--workers"),
    (["--trace-window", "5:2"], "--trace-window '5:2'"),
])
def test_trace_conflicts_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                      says: str) -> None:
    code = main(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--trace", str(TRACES / "requests.jsonl"),
                 *extra, "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err


def test_replay_options_need_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--concurrency", "1", "--max-idle", "2",
                 "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and "need --trace FILE" in capsys.readouterr().err
