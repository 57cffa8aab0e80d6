"""The slowest client-against-sim tests of tests/integration/test_client_sim.py (2-5 s each on the C
and the pure-Python path), moved whole so that make test-fast stays under 2 minutes: exact TTFT/TPOT
at concurrency 1, multi-token chunks, usage, broken streams, throughput, duration mode, timeouts."""

from __future__ import annotations

import json
import time

import pytest

from test_client_sim import TPOT_TOL_S, TTFT_TOL_S, single

pytestmark = pytest.mark.usefixtures("hot_path")  # every test on the C and the pure-Python path


def server_ttfts(sim, rows) -> list[float]:
    """What the server itself took to the first token of each row's request (receipt to write).
    Requests one at a time complete in order, so the server's list lines up with the rows. The
    client's tolerance is counted from this, not from the nominal TTFT: a server that woke late in
    this shared VM is not the client's error."""
    ttfts = sim.stats()["ttft_server_s"]
    assert len(ttfts) == len(rows)
    return ttfts


@pytest.mark.parametrize("transport", ["fast", "httpx"])
def test_ttft_tpot_and_tokens_exact_at_concurrency_1(cli, sim, tmp_path, transport):
    s = sim(ttft_ms=50, tpot_ms=5, role_chunk=True)
    code, summary, rows = single(cli, s, tmp_path, "--transport", transport)
    assert code == 0
    m = summary["metrics"]
    assert summary["counts"] == {"requests": 5, "completed": 5, "failed": 0, "cancelled": 0, "rate_limited": 0,
                                 "abandoned": 0}
    # The 5 ms holds for the default transport; httpx spends ~2 ms of its own before the
    # request is written (see README, Performance), so it gets twice the margin.
    tol = TTFT_TOL_S if transport == "fast" else 2 * TTFT_TOL_S
    for r, server_ttft in zip(rows, server_ttfts(s, rows)):
        # The role chunk arrives at once; TTFT must wait for the first content.
        assert 0.050 <= server_ttft <= r["ttft_s"] < max(0.050, server_ttft) + tol
        assert abs(r["tpot_s"] - 0.005) < TPOT_TOL_S
        assert r["completion_tokens"] == 20 and r["token_source"] == "usage"
        assert r["tokens_per_s"] == pytest.approx(20 / r["e2e_s"])
        assert r["e2e_s"] >= 0.050 + 19 * 0.005
    assert abs(m["itl_s"]["mean"] - 0.005) < TPOT_TOL_S and m["itl_s"]["count"] == 5 * 19
    assert summary["token_source"] == {"usage": 5}
    assert m["completion_tokens_total"] == 100


def test_multi_token_chunks_keep_tpot_and_itl_per_token(cli, sim, tmp_path):
    s = sim(ttft_ms=30, tpot_ms=4, tokens_per_chunk=4, usage_per_chunk=True)
    code, summary, rows = single(cli, s, tmp_path, max_tokens=24)
    assert code == 0
    for r, server_ttft in zip(rows, server_ttfts(s, rows)):
        assert r["content_chunks"] == 6 and r["chunk_tokens"] == [4, 4, 4, 4, 4, 4]
        # The first chunk is written when its 4th token is due: 30 + 3 * 4 ms.
        assert 0.042 <= server_ttft <= r["ttft_s"] < max(0.042, server_ttft) + TTFT_TOL_S
        assert abs(r["tpot_s"] - 0.004) < TPOT_TOL_S
    itl = summary["metrics"]["itl_s"]
    assert itl["count"] == 5 * 5 and itl["weight"] == 5 * 20
    assert abs(itl["mean"] - 0.004) < TPOT_TOL_S


@pytest.mark.parametrize("reject", [False, True], ids=["stream-options-taken", "stream-options-rejected"])
@pytest.mark.parametrize("usage_always", [False, True], ids=["usage-when-asked", "usage-always"])
def test_usage_when_asked_or_always_counts_exactly(cli, sim, tmp_path, usage_always, reject):
    """Engines differ, and releases of one engine differ: OpenAI, vLLM and transformers serve >=
    5.25 send usage only when stream_options.include_usage asks for it; transformers serve <= 5.23
    sent it on every stream; TGI-like servers reject stream_options. Whatever the server does, the
    client counts from usage whenever the server sends it, exactly as the server's log says it
    generated, and the summary says what was sent."""
    log = tmp_path / "chunks.jsonl"
    s = sim(ttft_ms=5, tpot_ms=1, usage_always=usage_always, reject_stream_options=reject, early_stops=True,
            log_chunks=str(log))
    code, summary, rows = single(cli, s, tmp_path / "run", n=6, max_tokens=12)
    assert code == 0 and summary["counts"]["completed"] == 6
    assert summary["run"]["stream_options_sent"] is not reject
    assert summary["run"]["stream_options_rejected"] is reject
    from_usage = usage_always or not reject
    assert summary["token_source"] == ({"usage": 6} if from_usage else {"chunks": 6})
    truth = {e["id"]: sum(e["tokens"]) for e in map(json.loads, log.read_text().splitlines()) if e["completed"]}
    assert len(set(truth.values())) > 1  # early stops: lengths differ, so max_tokens cannot stand in
    for r in rows:
        assert r["completion_tokens"] == truth[r["response_id"]]  # one token per chunk: chunks are exact too
        assert r["token_source"] == ("usage" if from_usage else "chunks")


@pytest.mark.parametrize("option,kind", [("stream_error_after_tokens", "stream_error"),
                                         ("disconnect_after_tokens", "disconnect"),
                                         ("malformed_after_tokens", "malformed")])
def test_broken_streams_are_failed_requests_with_a_kind(cli, sim, tmp_path, option, kind):
    s = sim(ttft_ms=5, tpot_ms=1, fail_every=2, **{option: 3})
    code, summary, rows = single(cli, s, tmp_path, n=6, max_tokens=8)
    assert code == 0  # failed requests are data, not a failed run
    assert summary["counts"]["completed"] == 3 and summary["counts"]["failed"] == 3
    assert summary["errors"][kind]["count"] == 3
    failed = [r for r in rows if not r["ok"]]
    assert all(r["error_kind"] == kind and r["ttft_s"] is None and r["completion_tokens"] is None for r in failed)


def test_throughput_requests_per_min_matches_the_servers_count(cli, sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=2, output_tokens=30)
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--concurrency", "8",
                                   "--num-prompts", "48", "--warmup", "8", "--max-tokens", "64"], tmp_path)
    assert code == 0
    stats = s.stats()
    assert stats["requests_completed"] == 56  # 8 warm-up + 48 measured
    assert summary["counts"]["completed"] == 48 and len(rows) == 56
    assert sum(r["warmup"] for r in rows) == 8
    m = summary["metrics"]
    # 48 requests, 8 at a time, each ~20 + 29 * 2 = 78 ms: 6 waves ~0.47 s.
    assert 0.46 <= m["window_s"] < 0.60
    assert m["requests_per_min"] == pytest.approx(48 / m["window_s"] * 60)
    assert m["output_tokens_per_s"] == pytest.approx(48 * 30 / m["window_s"])
    assert all(r["finish_reason"] == "stop" for r in rows)


def test_duration_mode_window_and_cancelled_in_flight(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=10, output_tokens=25)  # ~0.25 s per request
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--concurrency", "4",
                                   "--duration", "1.1", "--max-tokens", "64"], tmp_path)
    assert code == 0
    assert summary["metrics"]["window_s"] == 1.1
    c = summary["counts"]
    assert c["completed"] == 16 and c["cancelled"] == 4 and c["failed"] == 0
    assert summary["metrics"]["requests_per_min"] == pytest.approx(16 / 1.1 * 60)
    assert summary["config"]["duration_s"] == 1.1 and summary["config"]["num_prompts"] is None


@pytest.mark.parametrize("transport", ["fast", "httpx"])
def test_per_request_timeout(cli, sim, tmp_path, transport):
    s = sim(ttft_ms=3000, tpot_ms=1)
    t0 = time.monotonic()
    code, summary, rows = cli(["single", "--endpoint", s.base_url, "--model", "sim-model", "--timeout", "0.3",
                               "--transport", transport], tmp_path)
    elapsed = time.monotonic() - t0
    assert code == 2 and summary["run"]["ended"] == "aborted"
    assert [r["error_kind"] for r in rows] == ["timeout"] * 3
    assert all(r["e2e_s"] is None and r["ttft_s"] is None for r in rows)  # not measured, not 0
    assert 3 * 0.3 <= elapsed < 3 * 0.3 + 1.5  # each request cut at its deadline, then the run stops
    assert "timed out" in summary["run"]["error"]
