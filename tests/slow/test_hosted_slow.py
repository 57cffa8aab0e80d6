"""The slowest hosted-API tests of tests/integration/test_hosted.py (timed 429 retries and the client-side
rate and token budgets, 2-5 s each), moved whole so that make test-fast stays under 2 minutes."""

from __future__ import annotations

import json

import pytest

from loadtest.tokens import estimator_for
from test_hosted import run


@pytest.mark.parametrize("transport", ["fast", "httpx"])
def test_429_is_retried_after_exactly_retry_after_and_kept_out_of_latency(cli, sim, tmp_path, transport):
    s = sim(ttft_ms=5, tpot_ms=1, rate_limit_every=3, retry_after_s=0.3)
    code, summary, rows = run(cli, s, tmp_path, "--transport", transport)
    assert code == 0 and summary["counts"]["completed"] == 6 and not summary["errors"]
    # The sim refuses its 3rd and 6th arrivals: requests 3 and 5 (the retry of 3 is the 4th arrival).
    assert [r["attempts"] for r in rows] == [1, 1, 2, 1, 2, 1]
    assert [r["rate_limited"] for r in rows] == [0, 0, 1, 0, 1, 0]
    assert summary["counts"]["rate_limited"] == 2 == s.stats()["rate_limited"]
    for r in rows:
        if r["attempts"] == 2:
            assert 0.3 <= r["retry_wait_s"] < 0.3 + 0.05  # retry-after-ms: 300, honoured, not backed off
        else:
            assert r["retry_wait_s"] == 0.0
        assert r["e2e_s"] < 0.1  # the attempt that succeeded, never the wait before it
        assert r["limit_wait_s"] is None
    m = summary["metrics"]
    assert m["attempts_total"] == 8
    assert m["retry_wait_s_total"] == pytest.approx(sum(r["retry_wait_s"] for r in rows))
    assert m["e2e_s"]["max"] < 0.1


def test_server_rpm_limit_answers_429_with_headers_and_the_run_says_the_limit_was_measured(cli, sim, tmp_path):
    # A 30-request burst passes; past it the sim allows one request each 2 s and says so (retry-after-ms).
    s = sim(ttft_ms=1, tpot_ms=0, rpm_limit=30)
    code, summary, rows = run(cli, s, tmp_path, "--concurrency", "2", n=32, command="throughput", max_tokens=2)
    assert code == 0 and summary["counts"]["completed"] == 32
    assert summary["counts"]["rate_limited"] >= 1
    waited = [r["retry_wait_s"] for r in rows if r["rate_limited"]]
    assert waited and max(waited) <= 4.5  # the sim's computed waits (~2 s each), not a blind backoff
    assert summary["metrics"]["limited_by"] == "provider" and summary["metrics"]["wait_share"] > 0.5
    assert summary["run"]["provider_limits"] == {"requests": "30"}  # as its x-ratelimit-limit-requests said


def test_rpm_limit_holds_the_achieved_rate(cli, sim, tmp_path):
    s = sim(ttft_ms=2, tpot_ms=0)
    code, summary, rows = run(cli, s, tmp_path, "--concurrency", "8", "--rpm-limit", "6000", n=300,
                              command="throughput", max_tokens=2)
    assert code == 0 and summary["counts"]["completed"] == 300
    assert summary["metrics"]["requests_per_min"] == pytest.approx(6000, rel=0.05)
    assert all(r["limit_wait_s"] is not None for r in rows)
    assert summary["metrics"]["limited_by"] == "client_limit"


def test_tpm_limit_charges_prompt_plus_max_tokens(cli, sim, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": "hello world"}) + "\n" for _ in range(5)))
    per_request = estimator_for("sim-model").count("hello world") + 18
    s = sim(ttft_ms=2, tpot_ms=0)
    rate = 50  # requests/s
    code, summary, _ = run(cli, s, tmp_path, "--concurrency", "8", "--dataset", str(data), "--tpm-limit",
                           str(per_request * rate * 60), n=150, command="throughput", max_tokens=18)
    assert code == 0 and summary["counts"]["completed"] == 150
    assert summary["metrics"]["requests_per_s"] == pytest.approx(rate, rel=0.05)
