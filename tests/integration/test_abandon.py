"""Abandoned requests against the test server, on every transport: the client lets go on time,
the server sees the disconnect and stops sending, the records say what arrived, and the summary's
statistics are those of the completed requests alone."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from loadtest.cli.main import main
from loadtest.client.abandon import abandons
from loadtest.measure.record import build_record
from loadtest.transport import make_transport

TRANSPORTS = ["fast", "httpx", "openai"]
TOKENS = 48            # 20 ms TTFT + 47 x 10 ms: a reply takes ~0.5 s
SEED = 3


def _run(cli, s, out, *extra: str, n: int = 12, concurrency: int = 4):
    return cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", str(concurrency),
                "--num-prompts", str(n), "--max-tokens", str(TOKENS), "--seed", str(SEED), *extra], out)


def _expected(n: int, rate: float) -> set[int]:
    return {i for i in range(n) if abandons(SEED, i, rate)}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mid_decode_abandonment(cli, sim, tmp_path, transport):
    log = tmp_path / "chunks.jsonl"
    s = sim(ttft_ms=20, tpot_ms=10, log_chunks=str(log))
    n = 12
    code, summary, rows = _run(cli, s, tmp_path / "run", "--transport", transport, "--cancel-rate", "0.5",
                               "--cancel-after", "0.12", n=n)
    assert code == 0
    gone = [r for r in rows if r["error_kind"] == "abandoned"]
    done = [r for r in rows if r["ok"]]
    expected = _expected(n, 0.5)
    assert 0 < len(expected) < n and {r["id"] for r in gone} == expected  # the seeded choice, nothing else
    assert len(done) == n - len(expected)

    # The client let go at ~0.12 s after the start, after the first token and long before the last.
    # The first token is due at 20 ms: 100 ms to spare (with 30 ms, the openai transport missed it
    # under a busy loop beside the suite).
    for r in gone:
        assert 0.118 <= r["abandoned_after_s"] < 0.12 + 0.05, r
        assert r["ttft_s"] is not None and 0.020 <= r["ttft_s"] < 0.12, r
        assert 1 <= r["partial_tokens"] <= 12, r  # tokens written at 20, 30, ..., 120 ms
        assert r["completion_tokens"] is None and r["e2e_s"] is None and r["end_s"] is None
    assert all(r["completion_tokens"] == TOKENS and r["e2e_s"] > 0.45 for r in done)

    # The server saw each of them disconnect and stopped generating for it.
    stats = s.stats()
    assert stats["requests_aborted"] == len(gone) and stats["requests_completed"] == len(done)
    unsent = len(gone) * TOKENS - (stats["tokens_sent"] - len(done) * TOKENS)
    assert unsent > len(gone) * (TOKENS - 20)  # each abandoned reply stopped within its first ~12 tokens
    received = sum(r["partial_tokens"] for r in gone)
    assert 0 <= stats["tokens_sent"] - len(done) * TOKENS - received <= 2 * len(gone)  # in flight at the close
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(sum(e["tokens"]) for e in entries if e["completed"]) == [TOKENS] * len(done)
    assert all(sum(e["tokens"]) < TOKENS for e in entries if not e["completed"])  # ended early by the disconnect

    # Counts add up; abandoned requests are neither completed nor failed, and no statistic has them.
    c = summary["counts"]
    assert c["abandoned"] == len(gone) and c["completed"] == len(done) and c["failed"] == 0 and c["cancelled"] == 0
    assert c["requests"] == c["completed"] + c["failed"] + c["cancelled"] + c["abandoned"] == n
    assert summary["errors"] == {}
    m = summary["metrics"]
    for name in ("ttft_s", "e2e_s", "tpot_s", "tokens_per_s"):
        values = np.array([r[name] for r in done])
        assert m[name]["count"] == len(done)
        for stat, value in (("mean", values.mean()), ("p50", np.percentile(values, 50)),
                            ("p99", np.percentile(values, 99)), ("min", values.min()), ("max", values.max())):
            assert m[name][stat] == pytest.approx(float(value), rel=1e-9), (name, stat)
    assert m["completion_tokens_total"] == len(done) * TOKENS
    assert m["output_tokens_per_s"] == pytest.approx(len(done) * TOKENS / m["window_s"])
    assert m["abandoned_tokens_received"] == received
    assert summary["config"]["cancel_rate"] == 0.5 and summary["config"]["cancel_after_s"] == 0.12


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_abandoned_at_once_gets_no_token(cli, sim, tmp_path, transport):
    s = sim(ttft_ms=100, tpot_ms=5)
    n = 8
    code, summary, rows = _run(cli, s, tmp_path / "run", "--transport", transport, "--cancel-rate", "0.5",
                               "--cancel-after", "0", n=n)
    assert code == 0
    gone = [r for r in rows if r["error_kind"] == "abandoned"]
    assert {r["id"] for r in gone} == _expected(n, 0.5) and gone
    for r in gone:
        assert r["ttft_s"] is None and r["partial_tokens"] == 0 and r["content_chunks"] == 0
        assert 0.0 <= r["abandoned_after_s"] < 0.09  # before the first token was due (100 ms)
    stats = s.stats()
    # Every abandoned request reached the server (received, then aborted), and not one token went out for it.
    assert stats["requests_received"] == n and stats["requests_aborted"] == len(gone)
    assert stats["tokens_sent"] == (n - len(gone)) * TOKENS
    assert summary["counts"]["abandoned"] == len(gone) and summary["metrics"]["abandoned_tokens_received"] == 0


def test_the_same_requests_are_abandoned_by_scaled_out_workers(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=2)
    n = 16
    code, summary, rows = _run(cli, s, tmp_path / "two", "--cancel-rate", "0.4", "--cancel-after", "0.02",
                               "--workers", "2", n=n)
    assert code == 0
    assert {r["id"] for r in rows if r["error_kind"] == "abandoned"} == _expected(n, 0.4)
    assert summary["counts"]["abandoned"] == len(_expected(n, 0.4)) and summary["counts"]["failed"] == 0
    assert all(w["failed"] == 0 for w in summary["run"]["workers"])  # abandoned is not a worker's failure
    assert s.stats()["requests_aborted"] == len(_expected(n, 0.4))


def test_every_request_abandoned_says_so_in_one_line(sim, tmp_path, capsys):
    s = sim(ttft_ms=50, tpot_ms=5)
    code = main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--num-prompts", "3", "--max-tokens",
                 "8", "--cancel-rate", "1", "--output", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.startswith("loadtest: error:")]
    assert code == 2 and len(err) == 1
    assert "0/3 requests completed, 0 failed, 3 abandoned" in captured.out  # the console summary
    assert "abandoned: 3 requests let go 0.000 s after sending (--cancel-rate 1.0), 0 tokens" in captured.out
    assert "3 of 3 measured requests were abandoned" in err[0] and "nothing was measured" in err[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["abandoned"] == 3 and summary["counts"]["failed"] == 0
    assert summary["run"]["ended"] == "done"  # not aborted: abandoned requests say nothing about the server


@pytest.mark.parametrize("args,says", [
    (["--cancel-rate", "1.5"], "argument --cancel-rate: must be a share between 0 and 1, got '1.5'"),
    (["--cancel-rate", "-0.1"], "argument --cancel-rate: must be a share between 0 and 1"),
    (["--cancel-rate", "half"], "argument --cancel-rate: 'half' is not a number"),
    (["--cancel-rate", "0.5", "--cancel-after", "-1"], "argument --cancel-after: duration must be >= 0"),
    (["--cancel-after", "1"], "--cancel-after needs --cancel-rate"),
])
def test_bad_values_one_line_exit_2(tmp_path, refused, args, says):
    argv = ["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--concurrency", "2", *args,
            "--output", str(tmp_path / "out")]
    refused(argv, tmp_path / "out", says)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_connection_is_closed_at_once_never_pooled_half_read(sim, transport):
    """One connection in the pool: the abandoned request's socket is closed when the client lets go
    (the server has dropped the reply before the client asks it anything else), and the next
    request gets its own complete reply, not the rest of the abandoned one's stream."""
    s = sim(ttft_ms=10, tpot_ms=10)
    body = json.dumps({"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40,
                       "stream": True}).encode()

    async def go():
        t = make_transport(transport, s.base_url, max_connections=1, headers={})
        try:
            first = await t.post("/chat/completions", body, 30.0, abandon_after_s=0.05)
            let_go = time.monotonic()
            # the close and the stats request travel on different connections: the server may take
            # the stats request first, so it is asked again (for up to 1 s) until it saw the abort
            stats = await asyncio.to_thread(s.stats)
            while stats["requests_aborted"] == 0 and time.monotonic() - let_go < 1.0:
                await asyncio.sleep(0.01)
                stats = await asyncio.to_thread(s.stats)
            seen_s = time.monotonic() - let_go
            second = await t.post("/chat/completions", body, 30.0)
            return first, stats, seen_s, second
        finally:
            await t.aclose()

    first, stats, seen_s, second = asyncio.run(go())
    assert first.error_kind == "abandoned" and first.abandoned_ns is not None and first.t_end_ns is None
    assert 0.048 <= (first.abandoned_ns - first.t_start_ns) / 1e9 < 0.08
    assert stats["requests_aborted"] == 1 and stats["active_requests"] == 0 and seen_s < 1.0
    rec = build_record(second, request_id=1, prompt_id="p", run_t0_ns=0, stream=True, tokenizer=None)
    assert rec.ok and rec.completion_tokens == 40 and rec.content_chunks == 40
    assert s.stats()["requests_completed"] == 1
