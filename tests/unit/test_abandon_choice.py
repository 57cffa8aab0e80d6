"""Abandoned requests (--cancel-rate P --cancel-after S): the seeded choice, the record, the
statistics that leave them out, the options, and how a run of nothing but abandoned requests ends."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadtest.cli.main import build_parser
from loadtest.cli.sweep import base_config
from loadtest.client.abandon import abandon_draw, abandonment, abandons
from loadtest.config import RunConfig
from loadtest.judge import slo
from loadtest.judge.verdict import kept_share, kept_up
from loadtest.measure.metrics import compute_metrics
from loadtest.measure.record import ABANDONED, build_record
from loadtest.run.outcome import EXIT_FAILED, EXIT_OK, failure
from loadtest.transport import Exchange

MS = 1_000_000


def chosen(seed: int, rate: float, n: int = 1000) -> set[int]:
    return {i for i in range(n) if abandons(seed, i, rate)}


# -- the seeded choice ------------------------------------------------------------------------------
def test_same_seed_same_requests_another_seed_others():
    assert chosen(7, 0.3) == chosen(7, 0.3)
    assert chosen(7, 0.3) != chosen(8, 0.3)
    # A function of (seed, index) alone: asked in any order, one index at a time, the same answer.
    order = list(range(1000))[::-1]
    assert {i for i in order if abandons(7, i, 0.3)} == chosen(7, 0.3)
    # A lower rate picks a subset of a higher one's (one draw per request, compared with P).
    assert chosen(7, 0.1) <= chosen(7, 0.3)


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.9])
def test_share_within_binomial_bounds(seed, rate):
    n = 1000
    k = len(chosen(seed, rate, n))
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(k - n * rate) <= 4 * sd, (k, n * rate, sd)  # 4 sd: one in ~16,000 by chance, and the hash is fixed


def test_draws_are_uniform_in_0_1():
    draws = [abandon_draw(3, i) for i in range(2000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert abs(sum(draws) / len(draws) - 0.5) < 0.02
    deciles = [sum(1 for d in draws if j / 10 <= d < (j + 1) / 10) for j in range(10)]
    assert min(deciles) > 140 and max(deciles) < 260  # ~200 each


def test_rate_0_abandons_none_rate_1_all():
    assert chosen(5, 0.0) == set()
    assert chosen(5, 1.0) == set(range(1000))


def test_abandonment_of_a_config():
    base = RunConfig(command="throughput", base_url="http://x/v1", model="m", seed=4)
    off = abandonment(base)
    assert [off(i) for i in range(50)] == [None] * 50
    on = abandonment(RunConfig(command="throughput", base_url="http://x/v1", model="m", seed=4, cancel_rate=0.5,
                               cancel_after_s=0.25))
    assert {i for i in range(50) if on(i) is not None} == chosen(4, 0.5, 50)
    assert {on(i) for i in range(50)} == {None, 0.25}


# -- the record and the statistics ----------------------------------------------------------------------
def _event(text: str) -> bytes:
    return b'data: {"choices":[{"delta":{"content":"%b"}}]}\n\n' % text.encode()


def _ok(i: int, ttft_ms: int, n: int) -> object:
    pieces = [((ttft_ms + k * 10) * MS, _event("x")) for k in range(n)]
    ex = Exchange(t_start_ns=0, status=200, content_type="text/event-stream", pieces=pieces, t_end_ns=pieces[-1][0])
    return build_record(ex, request_id=i, prompt_id=str(i), run_t0_ns=0, stream=True, tokenizer=None)


def _abandoned(i: int, ttft_ms: int | None, n: int, after_ms: int) -> object:
    pieces = [] if ttft_ms is None else [((ttft_ms + k * 10) * MS, _event("y")) for k in range(n)]
    ex = Exchange(t_start_ns=0, status=200, content_type="text/event-stream", pieces=pieces,
                  error_kind=ABANDONED, error="abandoned by the client", abandoned_ns=after_ms * MS)
    return build_record(ex, request_id=i, prompt_id=str(i), run_t0_ns=0, stream=True, tokenizer=None)


def test_abandoned_record_keeps_what_arrived():
    rec = _abandoned(0, 20, 3, 50)
    assert not rec.ok and rec.error_kind == "abandoned"
    assert rec.abandoned_after_s == pytest.approx(0.050) and rec.ttft_s == pytest.approx(0.020)
    assert rec.partial_tokens == 3 and rec.completion_tokens is None and rec.e2e_s is None and rec.end_s is None
    before_any = _abandoned(1, None, 0, 0)
    assert before_any.ttft_s is None and before_any.partial_tokens == 0 and before_any.abandoned_after_s == 0.0
    assert json.loads(rec.to_json())["abandoned_after_s"] == pytest.approx(0.050)


def test_abandoned_requests_stay_out_of_every_statistic():
    done = [_ok(0, 100, 5), _ok(1, 200, 5)]
    gone = [_abandoned(2, 10, 4, 50), _abandoned(3, None, 0, 1)]  # a faster TTFT that must not count
    out = compute_metrics([*done, *gone], window_s=2.0)
    alone = compute_metrics(done, window_s=2.0)
    assert out["counts"] == {"requests": 4, "completed": 2, "failed": 0, "cancelled": 0, "abandoned": 2,
                             "rate_limited": 0}
    assert out["errors"] == {}
    m, a = out["metrics"], alone["metrics"]
    for name in ("ttft_s", "e2e_s", "tpot_s", "itl_s", "tokens_per_s"):
        assert m[name] == a[name], name
    assert m["ttft_s"]["min"] == pytest.approx(0.100)
    assert m["completion_tokens_total"] == 10 and m["output_tokens_per_s"] == a["output_tokens_per_s"] == 5.0
    assert m["requests_per_s"] == 1.0
    assert m["abandoned_tokens_received"] == 4 and a["abandoned_tokens_received"] == 0


def test_a_run_of_nothing_but_abandoned_requests_says_it_measured_nothing():
    result = compute_metrics([_abandoned(i, None, 0, 1) for i in range(4)], window_s=None)
    code, message = failure(result, abort=None, interrupted=False, worker_failure=None, duration_s=None)
    assert code == EXIT_FAILED and message is not None
    assert "4 of 4 measured requests were abandoned" in message and "nothing was measured" in message
    assert "no request succeeded" not in message
    # One completed request among them: a normal run.
    mixed = compute_metrics([_ok(0, 10, 2), *[_abandoned(i, None, 0, 1) for i in range(1, 4)]], window_s=1.0)
    assert failure(mixed, abort=None, interrupted=False, worker_failure=None, duration_s=None) == (EXIT_OK, None)


def test_slo_goodput_leaves_abandoned_requests_out(tmp_path: Path):
    rows = tmp_path / "requests.jsonl"
    rows.write_bytes(b"".join(r.to_json() + b"\n" for r in [_ok(0, 100, 5), _ok(1, 400, 5), _abandoned(2, 10, 2, 50)]))
    block = slo.evaluate({"metrics": {"window_s": 1.0}}, rows, slo.parse(["ttft=0.2"]), attainment=0.5)
    assert block["good_requests"] == 1 and block["good_fraction"] == 0.5 and block["met"] is True


def test_verdict_expects_completions_only_from_requests_not_abandoned():
    metrics = {"requests_per_s": 5.0, "achieved_rate_per_s": 10.0}
    assert kept_up(metrics, 10.0)[0] is False  # without abandonment: half the rate completed
    share = kept_share({"requests": 100, "abandoned": 50})
    assert share == 0.5
    ok, why = kept_up(metrics, 10.0, share)
    assert ok and "not abandoned" in why
    assert kept_up({"requests_per_s": 3.0, "achieved_rate_per_s": 10.0}, 10.0, share)[0] is False
    assert kept_share({"requests": 0}) == 1.0 and kept_share({"requests": 10}) == 1.0  # old summaries: no key


# -- the options ---------------------------------------------------------------------------------------
def _config(command: str, *extra: str) -> RunConfig:
    from loadtest.cli.run import config_from_args

    ns = build_parser().parse_args([command, "--endpoint", "http://127.0.0.1:9/v1", *extra])
    if command in ("single", "throughput"):
        return config_from_args(ns)
    return base_config(ns, by="concurrency", first=1.0, command=command)


@pytest.mark.parametrize("command,extra", [("single", ()), ("throughput", ("--concurrency", "2")),
                                           ("sweep", ("--concurrency", "1,2")), ("capacity", ("--slo", "ttft=1"))])
def test_every_run_command_takes_the_options(command, extra):
    cfg = _config(command, *extra, "--cancel-rate", "0.25", "--cancel-after", "150ms")
    assert (cfg.cancel_rate, cfg.cancel_after_s) == (0.25, 0.15)
    assert cfg.to_json()["cancel_rate"] == 0.25 and cfg.to_json()["cancel_after_s"] == 0.15
    plain = _config(command, *extra)
    assert (plain.cancel_rate, plain.cancel_after_s) == (None, None)


def test_cancel_rate_alone_lets_go_at_once():
    cfg = _config("single", "--cancel-rate", "1")
    assert (cfg.cancel_rate, cfg.cancel_after_s) == (1.0, 0.0)
