"""Hosted APIs against the test server in its hosted-API modes (loopback): 429s retried after
exactly what the provider asks, counted apart from failures and kept out of latency; client-side
RPM/TPM budgets that hold the achieved rate; the max_completion_tokens fallback; Azure URLs and
headers; the Responses API; reasoning tokens; provider stream quirks."""

from __future__ import annotations

import json

import pytest


def run(cli, s, tmp_path, *extra: str, n: int = 6, max_tokens: int = 8, command: str = "single", name: str = "out"):
    args = [command, "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", str(max_tokens), *extra]
    if "--duration" not in extra:
        args += ["--num-prompts", str(n)]
    return cli(args, tmp_path / name)


# -- 429: retried, counted apart, outside latency --------------------------------------------------

def test_a_third_of_requests_rate_limited_all_complete_at_concurrency(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, rate_limit_every=3, retry_after_s=0.05)
    code, summary, rows = run(cli, s, tmp_path, "--concurrency", "4", n=30, command="throughput")
    assert code == 0 and summary["counts"]["completed"] == 30 and not summary["errors"]
    assert summary["counts"]["rate_limited"] == s.stats()["rate_limited"] == sum(r["rate_limited"] for r in rows)
    assert summary["counts"]["rate_limited"] >= 10  # every 3rd arrival, retries included
    assert sum(r["attempts"] for r in rows) == s.stats()["requests_received"]


def test_no_retry_records_429s_as_rate_limited_failures(cli, sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=1, rate_limit_every=2, retry_after_s=5)
    code, summary, rows = run(cli, s, tmp_path, "--no-retry", n=4)
    assert code == 0
    assert summary["counts"]["failed"] == 2 and summary["counts"]["rate_limited"] == 2
    assert summary["errors"]["rate_limited"]["count"] == 2
    failed = [r for r in rows if not r["ok"]]
    assert all(r["status"] == 429 and r["attempts"] == 1 and r["retry_wait_s"] == 0.0 for r in failed)


# -- dialects ----------------------------------------------------------------------------------------

def test_max_tokens_rejected_falls_back_to_max_completion_tokens_once(cli, sim, tmp_path, capsys):
    s = sim(ttft_ms=2, tpot_ms=1, reject_max_tokens=True)
    code, summary, rows = run(cli, s, tmp_path, n=4)
    assert code == 0 and summary["counts"]["completed"] == 4
    assert [r["attempts"] for r in rows] == [2, 1, 1, 1]
    assert all(r["completion_tokens"] == 8 for r in rows)
    assert summary["run"]["max_completion_tokens_sent"] is True
    # At concurrency, every request in flight at the switch adapts too; stream_options stays on.
    code, summary, rows = run(cli, s, tmp_path, "--concurrency", "4", n=12, command="throughput", name="conc")
    assert code == 0 and summary["counts"]["completed"] == 12 and summary["run"]["stream_options_sent"] is True
    assert all(r["token_source"] == "usage" for r in rows) and sum(r["attempts"] for r in rows) <= 12 + 4


def test_responses_api_streaming_and_not(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=2, reasoning_tokens=3)
    code, summary, rows = run(cli, s, tmp_path, "--api", "responses", n=3, max_tokens=10)
    assert code == 0 and summary["counts"]["completed"] == 3
    for r in rows:
        assert r["completion_tokens"] == 10 and r["reasoning_tokens"] == 3 and r["token_source"] == "usage"
        assert r["finish_reason"] == "length" and r["response_id"].startswith("resp_")
        assert r["content_chunks"] == 7  # hidden reasoning sends no text
        assert 0.010 + 3 * 0.002 <= r["ttft_s"] < 0.010 + 3 * 0.002 + 0.02  # first visible token
    assert summary["metrics"]["reasoning_tokens_total"] == 9 and summary["metrics"]["visible_tokens_total"] == 21
    code, summary, rows = run(cli, s, tmp_path, "--api", "responses", "--no-stream", n=2, max_tokens=10, name="plain")
    assert code == 0 and all(r["completion_tokens"] == 10 and r["reasoning_tokens"] == 3 for r in rows)
    assert all(r["prompt_tokens"] is not None and r["ttft_s"] is None for r in rows)


def test_reasoning_tokens_from_usage_and_from_the_stream(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, reasoning_tokens=4)
    code, summary, rows = run(cli, s, tmp_path, n=3, max_tokens=10)
    assert code == 0 and all(r["reasoning_tokens"] == 4 and r["completion_tokens"] == 10 for r in rows)
    assert all(r["ttft_content_s"] > r["ttft_s"] for r in rows)
    m = summary["metrics"]
    assert m["reasoning_tokens_total"] == 12 and m["visible_tokens_total"] == 18
    assert m["visible_tokens_per_s"] == pytest.approx(18 / m["window_s"])
    s2 = sim(ttft_ms=5, tpot_ms=1, reasoning_tokens=4, usage=False)
    code, _, rows = run(cli, s2, tmp_path, n=2, max_tokens=10, name="nousage")
    assert code == 0 and all(r["reasoning_tokens"] == 4 and r["token_source"] == "chunks" for r in rows)


@pytest.mark.usefixtures("hot_path")
def test_provider_stream_quirks_parse_into_the_right_record(cli, sim, tmp_path):
    """': keep-alive' / ': PROCESSING' comments, a choices:[] chunk, 'data:' without a space, and
    no usage in the stream: tokens, TTFT and chunks as for a plain stream."""
    s = sim(ttft_ms=20, tpot_ms=2, sse_comments=True, empty_choices_chunks=True, data_no_space=True, usage=False)
    code, summary, rows = run(cli, s, tmp_path, n=3, max_tokens=12)
    assert code == 0 and summary["counts"]["completed"] == 3
    for r in rows:
        assert r["completion_tokens"] == 12 and r["content_chunks"] == 12 and r["token_source"] == "chunks"
        assert 0.020 <= r["ttft_s"] < 0.040 and r["tpot_s"] == pytest.approx(0.002, abs=0.0005)


def test_hosted_preset_runs_with_its_key(cli, sim, tmp_path):
    from loadtest.sim.config import HOSTED

    s = sim(api_key="sk-sim", **HOSTED, ttft_ms=2, tpot_ms=1)
    code, summary, rows = run(cli, s, tmp_path, "--api-key", "sk-sim", n=3)
    assert code == 0 and summary["counts"]["completed"] == 3
    assert summary["run"]["max_completion_tokens_sent"] and all(r["reasoning_tokens"] == 8 for r in rows)


def test_responses_api_events_split_across_reads_and_an_error_event():
    """Responses API event shapes straight through the parser (no server can send these faults on
    demand): a delta split across two reads, usage from response.completed; an error event fails it."""
    from loadtest.measure.chunks import Stream
    from loadtest.measure.sse import parse_stream

    body = (b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_9","status":"in_progress"}}\n\n'
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":" a"}\n\n'
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":" b"}\n\n'
            b'event: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_9","status":"completed",'
            b'"usage":{"input_tokens":3,"output_tokens":7,"output_tokens_details":{"reasoning_tokens":5}}}}\n\n')
    cut = body.index(b'" b"') + 2
    s = Stream()
    s.read_events(parse_stream([(1, body[:cut]), (2, body[cut:])]))
    assert s.texts == [" a", " b"] and s.times == [1, 2] and s.first_content_ns == 1
    assert (s.usage["completion_tokens"], s.usage["prompt_tokens"], s.usage["reasoning_tokens"]) == (7, 3, 5)
    assert s.finish_reason == "stop" and s.response_id == "resp_9" and s.error_kind is None
    bad = Stream()
    bad.read_events(parse_stream([(1, body[:cut] + b'"}\n\nevent: error\ndata: {"type":"error","code":"server_error","message":"overloaded"}\n\n')]))
    assert bad.error_kind == "stream_error" and "overloaded" in (bad.error or "")


def test_a_provider_that_only_rate_limits_stops_the_run_with_advice(sim, tmp_path, capsys):
    from loadtest.cli.main import main

    s = sim(ttft_ms=1, tpot_ms=1, rate_limit_every=1, retry_after_s=0.01)
    code = main(["single", "--endpoint", s.base_url, "--model", "sim-model", "--max-retries", "2", "--num-prompts", "5",
                 "--output", str(tmp_path / "o"), "--quiet"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "rate limited" in err[0] and "--rpm-limit" in err[0]
    rows = [json.loads(line) for line in (tmp_path / "o" / "requests.jsonl").read_text().splitlines()]
    assert all(r["attempts"] == 3 and r["rate_limited"] == 3 and r["error_kind"] == "rate_limited" for r in rows)


def test_sim_hosted_flag_fills_what_other_flags_leave_at_default():
    import argparse

    from loadtest.cli.serve import sim_config as config_from_args, sim_options as add_arguments
    from loadtest.sim.config import HOSTED

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--hosted", "--rpm-limit", "60", "--api-key", "mine"]))
    assert cfg.rpm_limit == 60 and cfg.api_key == "mine" and cfg.tpm_limit == HOSTED["tpm_limit"]
    assert cfg.sse_comments and cfg.empty_choices_chunks and cfg.reject_max_tokens and cfg.reasoning_tokens == 8
    assert config_from_args(parser.parse_args(["--hosted"])).api_key == "sk-sim"
    assert config_from_args(parser.parse_args(cfg.to_args())) == cfg  # round-trips without --hosted
