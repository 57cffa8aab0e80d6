"""--api messages (Anthropic's Messages API) against the test server playing the hosted API, whose
--log-chunks line is the truth of every reply: tokens, chunks and first-token time, cached and
cache-written tokens, and (--log-header x-api-key) the header the key came in. Thinking is timed
apart from the first visible text; 429 and 529 are retried as the provider asks; an overloaded
event mid-stream fails the request; the key never reaches a file or the console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_bad_input import _cli, _one_error_line

pytestmark = pytest.mark.timeout(120)

KEY = "sk-ant-SECRET-5150"
TTFT_MS, TPOT_MS, THINK = 20.0, 2.0, 3


@pytest.fixture
def anthropic_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key in $ANTHROPIC_API_KEY, and an OpenAI key beside it that must never be sent."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-NOT-FOR-ANTHROPIC")
    return KEY


def _truth(log: Path, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sim's lines of the run's replies, by response id (the overhead probe's left out)."""
    ids = {r["response_id"] for r in rows}
    return {t["id"]: t for t in map(json.loads, log.read_text().splitlines()) if t["id"] in ids}


def _messages(cli: Any, server: Any, out: Path, *extra: str, n: int = 6, max_tokens: int = 10, concurrency: int = 1):
    return cli(["throughput", "--endpoint", server.base_url, "--api", "messages", "--num-prompts", str(n),
                "--concurrency", str(concurrency), "--max-tokens", str(max_tokens), *extra], out)


def test_streamed_replies_agree_with_the_servers_truth(sim: Any, cli: Any, tmp_path: Path, anthropic_key: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Shared prefixes hit the sim's prefix cache: cache_read and cache_creation as it logged them;
    TTFT ends at the first thinking token (not at message_start, a block's opening or a ping, all
    sent on receipt) and ttft_content_s at the first text token; output tokens from usage."""
    log = tmp_path / "sim.jsonl"
    s = sim(api_key=KEY, ttft_ms=TTFT_MS, tpot_ms=TPOT_MS, reasoning_tokens=THINK, tokenize_endpoint=True,
            prefix_cache_tokens=4096, prefix_block_tokens=8, log_chunks=str(log), log_header="x-api-key")
    code, summary, rows = _messages(cli, s, tmp_path / "out", "--dataset", "synthetic",
                                    "--prompt-tokens", "40", "--shared-prefix-tokens", "24")
    assert code == 0 and summary["counts"]["completed"] == 6 and summary["config"]["api"] == "messages"
    assert summary["run"]["stream_options_sent"] is False and summary["prompts"]["usage_mismatched"] == 0
    truth = _truth(log, rows)
    assert len(truth) == 6
    t0 = summary["run"]["clock_origin_ns"]
    for r in rows:
        t = truth[r["response_id"]]
        assert t["header"] == KEY  # the key travelled as x-api-key (the OpenAI key was never sent)
        assert r["response_id"].startswith("msg_") and r["finish_reason"] == "length"
        assert r["completion_tokens"] == t["generated_tokens"] == 10 and r["token_source"] == "usage"
        assert r["prompt_tokens"] == t["prompt_tokens"] == 40
        assert r["cached_tokens"] == t["cached_tokens"] and r["cached_tokens_source"] == "anthropic"
        assert r["cache_creation_tokens"] == t["cache_creation_tokens"]
        assert r["reasoning_tokens"] == THINK and r["content_chunks"] == len(t["tokens"]) == 10
        # The first chunk the client stamped is the first token the sim wrote, not an earlier event,
        # and the first visible text the sim's first token after the thinking ones: each stamped after
        # the sim wrote it (message_start, written 20 ms before, would be earlier) and within 50 ms.
        first_ns = t0 + (r["start_s"] + r["ttft_s"]) * 1e9
        content_ns = t0 + (r["start_s"] + r["ttft_content_s"]) * 1e9
        for stamp, k in ((first_ns, 0), (content_ns, THINK)):
            assert t["sent_ns"][k] <= stamp + 1e3 and stamp - t["sent_ns"][k] < 0.05e9
        assert t["recv_ns"] + TTFT_MS * 1e6 <= t["sent_ns"][0] and TTFT_MS / 1e3 <= r["ttft_s"] < r["ttft_content_s"]
        sent_tpot_s = (t["sent_ns"][-1] - t["sent_ns"][0]) / 9 / 1e9  # one token per chunk: 9 gaps
        assert sum(r["chunk_tokens"]) == 10 and r["tpot_s"] == pytest.approx(sent_tpot_s, abs=1e-3)
    assert [r["cached_tokens"] for r in sorted(rows, key=lambda r: r["start_s"])] == [0] + [24] * 5
    b = summary["prefix_cache"]
    assert b["source"] == "anthropic usage" and b["hit_rate"] == 5 * 24 / (6 * 40)
    assert b["cache_creation_tokens_total"] == sum(t["cache_creation_tokens"] for t in truth.values()) > 0
    m = summary["metrics"]
    assert m["reasoning_tokens_total"] == 6 * THINK and m["visible_tokens_total"] == 6 * (10 - THINK)
    out = capsys.readouterr()
    for text in [out.out, out.err] + [p.read_text() for p in (tmp_path / "out").iterdir() if p.is_file()]:
        assert KEY not in text and "sk-openai-NOT-FOR-ANTHROPIC" not in text


def test_non_streamed_messages(sim: Any, cli: Any, tmp_path: Path, anthropic_key: str) -> None:
    s = sim(api_key=KEY, ttft_ms=5, tpot_ms=1, reasoning_tokens=THINK)
    code, summary, rows = _messages(cli, s, tmp_path / "out", "--no-stream", n=3)
    assert code == 0 and summary["counts"]["completed"] == 3
    for r in rows:
        assert r["completion_tokens"] == 10 and r["ttft_s"] is None and r["finish_reason"] == "length"
        assert r["reasoning_tokens"] == THINK  # the thinking block's share of the text: 15 of 50 characters
        assert r["cached_tokens"] == 0 and r["cache_creation_tokens"] == 0 and r["prompt_tokens"] > 0


def test_rate_limits_and_overload_are_retried_as_the_provider_asks(sim: Any, cli: Any, tmp_path: Path,
                                                                  anthropic_key: str) -> None:
    """429 rate_limit_error (every 4th arrival) and 529 overloaded_error (every 3rd valid request),
    both with retry-after 0: every request completes, each answer counted and none in a latency."""
    s = sim(api_key=KEY, ttft_ms=2, tpot_ms=1, rate_limit_every=4, overload_every=3, retry_after_s=0)
    code, summary, rows = _messages(cli, s, tmp_path / "out", n=12, max_tokens=4, concurrency=2)
    stats = s.stats()
    assert code == 0 and summary["counts"]["completed"] == 12 and not summary["errors"]
    assert sum(r["attempts"] for r in rows) == stats["requests_received"]
    refused = stats["requests_received"] - 12  # every attempt that did not complete: a 429 or a 529
    assert stats["rate_limited"] >= 1 and refused > stats["rate_limited"]  # some were 529s
    assert summary["counts"]["rate_limited"] == sum(r["rate_limited"] for r in rows) == refused
    assert all(r["e2e_s"] < 0.5 for r in rows)


def test_overload_without_retries_and_an_overloaded_event_mid_stream(sim: Any, cli: Any, tmp_path: Path,
                                                                     anthropic_key: str) -> None:
    s = sim(api_key=KEY, ttft_ms=2, tpot_ms=1, overload_every=2)
    code, summary, rows = _messages(cli, s, tmp_path / "nr", "--no-retry", n=4, max_tokens=4)
    assert code == 0 and summary["counts"]["failed"] == 2 and summary["counts"]["rate_limited"] == 2
    failed = [r for r in rows if not r["ok"]]
    assert all(r["status"] == 529 and r["error"] == "HTTP 529: Overloaded" for r in failed)
    s = sim(api_key=KEY, ttft_ms=2, tpot_ms=1, stream_error_after_tokens=3, fail_every=2)
    code, summary, rows = _messages(cli, s, tmp_path / "mid", n=4, max_tokens=6)
    assert code == 0 and summary["counts"]["failed"] == 2 and summary["counts"]["completed"] == 2
    failed = [r for r in rows if not r["ok"]]
    assert all(r["error_kind"] == "stream_error" and "Overloaded" in r["error"] for r in failed)
    assert all(r["partial_tokens"] == 3 and r["status"] == 200 for r in failed)


def test_a_refused_key_and_a_missing_endpoint_are_one_line(sim: Any, tmp_path: Path) -> None:
    s = sim(api_key=KEY, ttft_ms=1, tpot_ms=1)
    bad = _cli(["single", "--endpoint", s.base_url, "--api", "messages", "--model", "sim-model", "--num-prompts", "2",
                "--output", str(tmp_path / "bad")], env={"ANTHROPIC_API_KEY": "sk-ant-wrong-7777"})
    line = _one_error_line(bad)
    assert bad.returncode == 2 and "invalid x-api-key" in line and "ANTHROPIC_API_KEY" in line
    assert "sk-ant-wrong-7777" not in bad.stdout + bad.stderr
    unnamed = _cli(["single", "--endpoint", s.base_url, "--api", "messages", "--num-prompts", "2",
                    "--output", str(tmp_path / "unnamed")], env={"ANTHROPIC_API_KEY": "sk-ant-wrong-7777"})
    line = _one_error_line(unnamed)  # no --model: /v1/models, asked with the same x-api-key, refuses it
    assert unnamed.returncode == 2 and "refused the API key" in line and "ANTHROPIC_API_KEY" in line
    gone = _cli(["single", "--endpoint", s.root_url + "/other/v1", "--api", "messages", "--model", "sim-model",
                 "--num-prompts", "2", "--output", str(tmp_path / "gone")], env={"ANTHROPIC_API_KEY": KEY})
    line = _one_error_line(gone)
    assert gone.returncode == 2 and "/other/v1/messages answered 404" in line and "--api" in line
    sdk = _cli(["single", "--endpoint", s.base_url, "--api", "messages", "--transport", "openai",
                "--output", str(tmp_path / "sdk")])
    assert sdk.returncode == 2 and "--transport fast or httpx" in _one_error_line(sdk)


def test_models_lists_with_anthropics_auth(sim: Any, anthropic_key: str, capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest.cli.main import main

    s = sim(api_key=KEY)
    assert main(["models", "--endpoint", s.base_url, "--api", "messages"]) == 0
    assert "sim-model" in capsys.readouterr().out
    assert main(["models", "--endpoint", s.base_url, "--api", "messages", "--api-key", "sk-ant-nope-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ANTHROPIC_API_KEY" in err and "sk-ant-nope-1" not in err


def test_the_report_compares_a_messages_run_with_a_chat_run(sim: Any, cli: Any, tmp_path: Path,
                                                            anthropic_key: str) -> None:
    from loadtest.cli.main import main

    s = sim(api_key=KEY, ttft_ms=2, tpot_ms=1, reasoning_tokens=2)
    code, _, _ = _messages(cli, s, tmp_path / "messages", n=3)
    assert code == 0
    code, _, _ = cli(["single", "--endpoint", s.base_url, "--api-key", KEY, "--num-prompts", "3", "--max-tokens", "10"],
                     tmp_path / "chat")
    assert code == 0
    assert main(["report", str(tmp_path / "messages"), str(tmp_path / "chat"), "--format", "json",
                 "--output", str(tmp_path / "r.json")]) == 0
    report = (tmp_path / "r.json").read_text()
    assert "api=messages" in report and "api=chat" in report and KEY not in report
