"""Multi-turn sessions end to end against the test server, whose --log-chunks line is the truth:
each turn's messages (role, content hash), its exact prompt tokens, its prefix-cache hit and the
--session-header value. A session's turns never overlap; each carries the previous turn's messages
plus the reply (the server's actual one, or the dataset's recorded one) plus the next user turn;
think time is in no latency but in the session's duration. Bad combinations: one line, exit 2."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli.main import main
from loadtest.sim.generate import token_text
from loadtest.sim.state import content_hash
from loadtest.tokens import load_tokenizer

pytestmark = pytest.mark.timeout(120)

P, T, TURNS, N = 256, 16, 3, 4
PREFILL_TOKENS_PER_S = 8000.0  # 256 uncached tokens: 32 ms


def _server(sim: Any, log: Path) -> Any:
    return sim(prompt_tokenizer="cl100k_base", tokenize_endpoint=True, ttft_ms=1, tpot_ms=0.1,
               prefill_tokens_per_s=PREFILL_TOKENS_PER_S, prefix_cache_tokens=8192, prefix_block_tokens=16,
               log_chunks=str(log), log_header="x-session-id", replies_from_prompt=True)


def _truth(log: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The server's line of each of the run's replies, by response id (the probe left out)."""
    ids = {r["response_id"] for r in rows}
    return {t["id"]: t for t in map(json.loads, log.read_text().splitlines()) if t["id"] in ids}


def _by_session(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["session_id"]].append(r)
    return {k: sorted(v, key=lambda r: r["turn"]) for k, v in out.items()}


def _reply(rec: dict[str, Any], word: str = "tok") -> str:
    """The sim's reply is ' tok0 tok1 ...' (sim/generate.py), or with --replies-from-prompt
    ' w<hash>_0 w<hash>_1 ...' with the word it logged: the text, from the turn's token count."""
    return token_text(0, rec["completion_tokens"], word.encode()).decode()


def _reply_hash(rec: dict[str, Any], word: str = "tok") -> str:
    return content_hash(_reply(rec, word))


def test_synthetic_sessions_carry_the_actual_history(sim: Any, cli: Any, tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    code, summary, rows = cli(["throughput", "--endpoint", _server(sim, log).base_url, "--dataset", "synthetic",
                               "--prompt-tokens", str(P), "--turns", str(TURNS), "--turn-prompt-tokens", str(T),
                               "--num-prompts", str(N), "--concurrency", "2", "--max-tokens", "8",
                               "--think-time", "0.05", "--session-header", "x-session-id"], tmp_path / "out")
    assert code == 0 and len(rows) == N * TURNS and all(r["ok"] for r in rows)
    assert len({r["id"] for r in rows}) == N * TURNS  # every turn its own record id
    truth = _truth(log, rows)
    count = load_tokenizer("cl100k_base").count
    sessions = _by_session(rows)
    assert len(sessions) == N
    for sid, turns in sessions.items():
        assert [r["turn"] for r in turns] == list(range(TURNS))
        assert turns[0]["think_s"] is None and all(r["think_s"] > 0 for r in turns[1:])
        for k, r in enumerate(turns):
            t = truth[r["response_id"]]
            assert t["header"] == sid  # the session header: the same value on every turn of the session
            assert r["prompt_tokens"] == t["prompt_tokens"]  # exact against the server
            expected = P + k * T + sum(count(_reply(p, truth[p["response_id"]]["word"])) for p in turns[:k])
            assert t["prompt_tokens"] == expected
            assert len(t["messages"]) == 2 * k + 1 and t["messages"][-1][0] == "user"
            if k:
                prev = turns[k - 1]
                # strictly sequential, the think time between the reply and the next start
                assert r["start_s"] >= prev["end_s"] + r["think_s"] - 1e-3
                assert t["messages"][:2 * k - 1] == truth[prev["response_id"]]["messages"]
                # the reply the server really sent this conversation (its words hash its prompt)
                assert t["messages"][2 * k - 1] == ["assistant", _reply_hash(prev, truth[prev["response_id"]]["word"])]
                assert r["cached_tokens"] > 0  # the history hit the server's prefix cache
        span = turns[-1]["end_s"] - turns[0]["start_s"]
        assert span >= sum(r["e2e_s"] for r in turns) + sum(r["think_s"] for r in turns[1:]) - 1e-3
    assert {truth[r["response_id"]]["header"] for r in rows} == set(sessions)  # one id per session
    block = summary["sessions"]
    assert block["sessions"] == N and block["sessions_with_failed_turn"] == 0
    assert [b["turn"] for b in block["by_turn"]] == list(range(TURNS))
    assert block["by_turn"][0]["prompt_tokens_mean"] == P and block["by_turn"][0]["cached_tokens_mean"] == 0
    assert block["by_turn"][1]["cached_tokens_mean"] == P  # turn 0's prompt, cached in whole blocks of 16
    assert block["by_turn"][1]["ttft_s_p50"] < block["by_turn"][0]["ttft_s_p50"]  # the cache saves prefill
    assert block["turns_ok"]["min"] == TURNS and block["duration_s"]["count"] == N
    assert summary["prompts"]["usage_mismatched"] == 0 and summary["prompts"]["turns"] == TURNS


def test_each_session_keeps_its_connection(sim: Any, cli: Any, tmp_path: Path) -> None:
    """A session's turns share one kept-alive connection (the server numbers its connections), as
    one user's client would; sessions in flight at once hold different ones, and a finished
    session's connection goes back to the pool (no more connections than sessions in flight)."""
    log = tmp_path / "sim.jsonl"
    server = sim(ttft_ms=1, tpot_ms=0.5, log_chunks=str(log))
    code, _, rows = cli(["throughput", "--endpoint", server.base_url, "--dataset", "synthetic", "--prompt-tokens",
                         "16", "--turns", "4", "--num-prompts", "6", "--concurrency", "2", "--max-tokens", "4",
                         "--think-time", "0.02"], tmp_path / "out")
    assert code == 0 and len(rows) == 24 and all(r["ok"] for r in rows)
    truth = _truth(log, rows)
    used: dict[str, set[int]] = {sid: {truth[r["response_id"]]["connection"] for r in turns}
                                 for sid, turns in _by_session(rows).items()}
    assert all(len(conns) == 1 for conns in used.values()), used
    assert len({c for conns in used.values() for c in conns}) <= 2  # two sessions in flight: two connections


def test_think_time_is_in_no_latency(sim: Any, cli: Any, tmp_path: Path) -> None:
    server = sim(ttft_ms=5, tpot_ms=1)
    code, summary, rows = cli(["single", "--endpoint", server.base_url, "--dataset", "synthetic", "--prompt-tokens",
                               "16", "--turns", "3", "--num-prompts", "2", "--max-tokens", "4", "--think-time", "0.3"],
                              tmp_path / "out")
    assert code == 0 and len(rows) == 6
    thinks = [r["think_s"] for r in rows if r["turn"]]
    assert sum(thinks) > 0.3 and len(set(thinks)) == 4  # seeded exponential, mean 0.3: a pause each
    assert max(r["e2e_s"] for r in rows) < 0.1 and max(r["ttft_s"] for r in rows) < 0.1
    for turns in _by_session(rows).values():
        assert turns[-1]["end_s"] - turns[0]["start_s"] >= sum(r["think_s"] for r in turns[1:])
    durations = summary["sessions"]["duration_s"]
    assert durations["max"] >= max(sum(r["think_s"] for r in t[1:]) for t in _by_session(rows).values())
    # the same seed draws the same pauses
    code2, _, rows2 = cli(["single", "--endpoint", server.base_url, "--dataset", "synthetic", "--prompt-tokens",
                           "16", "--turns", "3", "--num-prompts", "2", "--max-tokens", "4", "--think-time", "0.3"],
                          tmp_path / "out2")
    assert code2 == 0 and sorted(r["think_s"] for r in rows2 if r["turn"]) == sorted(thinks)


def _conversations(path: Path) -> list[dict[str, Any]]:
    rows = [{"id": f"c{i}", "messages": [
        {"role": "system", "content": f"You are helper {i}."},
        {"role": "user", "content": f"first question {i}"},
        {"role": "assistant", "content": f"recorded answer one {i}"},
        {"role": "user", "content": f"second question {i}"},
        {"role": "assistant", "content": f"recorded answer two {i}"},
        {"role": "user", "content": f"third question {i}"}]} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


@pytest.mark.parametrize("history", ["actual", "recorded"])
def test_dataset_sessions_history(sim: Any, cli: Any, tmp_path: Path, history: str) -> None:
    log = tmp_path / "sim.jsonl"
    data = _conversations(tmp_path / "chats.jsonl")
    server = sim(ttft_ms=1, tpot_ms=0.1, log_chunks=str(log))
    code, summary, rows = cli(["throughput", "--endpoint", server.base_url, "--dataset", str(tmp_path / "chats.jsonl"),
                               "--multi-turn", "--history", history, "--session-rate", "50", "--num-prompts", "3",
                               "--max-tokens", "5"], tmp_path / "out")
    assert code == 0 and len(rows) == 9 and all(r["ok"] for r in rows)
    truth = _truth(log, rows)
    recorded = {row["id"]: [m["content"] for m in row["messages"]] for row in data}
    for turns in _by_session(rows).values():
        contents = recorded[turns[0]["prompt_id"]]
        assert turns[0]["scheduled_s"] is not None and all(r["scheduled_s"] is None for r in turns[1:])
        for k, r in enumerate(turns):
            sent = truth[r["response_id"]]["messages"]
            assert sent[0] == ["system", content_hash(contents[0])]
            assert [h for role, h in sent if role == "user"] == [content_hash(contents[1 + 2 * j]) for j in range(k + 1)]
            replies = [h for role, h in sent if role == "assistant"]
            want = ([content_hash(contents[2 + 2 * j]) for j in range(k)] if history == "recorded"
                    else [_reply_hash(p) for p in turns[:k]])
            assert replies == want
    assert summary["config"]["history"] == history and summary["config"]["session_rate"] == 50


@pytest.mark.parametrize("args,says", [
    (["--turns", "3"], "--turns N needs --dataset synthetic"),
    (["--dataset", "synthetic", "--prompt-tokens", "8", "--turn-prompt-tokens", "4"], "--turn-prompt-tokens needs sessions"),
    (["--think-time", "1"], "--think-time needs sessions"),
    (["--session-header", "x-s"], "--session-header needs sessions"),
    (["--multi-turn", "--history", "recorded", "--dataset", "synthetic", "--prompt-tokens", "8"],
     "--multi-turn runs a conversation file"),
    (["--dataset", "synthetic", "--prompt-tokens", "8", "--turns", "2", "--history", "recorded"],
     "--history recorded needs --multi-turn"),
    (["--dataset", "synthetic", "--prompt-tokens", "8", "--turns", "2", "--api", "completions"], "sessions need --api chat"),
    (["--multi-turn", "--session-rate", "2", "--concurrency", "2"], "--session-rate starts sessions open-loop"),
    (["--multi-turn", "--cancel-rate", "0.5", "--concurrency", "2"], "sessions do not combine with --cancel-rate"),
    (["--turns", "0"], "argument --turns"),
])
def test_bad_combinations_one_line_exit_2(tmp_path: Path, refused: Any, args: list[str], says: str) -> None:
    argv = ["throughput", "--endpoint", "http://127.0.0.1:9/v1", *args, "--output", str(tmp_path / "out")]
    refused(argv, tmp_path / "out", says)


def test_multi_turn_on_the_builtin_set_is_one_line(tmp_path: Path, capsys: Any, sim: Any) -> None:
    server = sim()
    code = main(["single", "--endpoint", server.base_url, "--multi-turn", "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "--multi-turn needs a file of conversations" in err
