"""Open-loop load shapes: the schedule's statistics (pure, seeded) and its execution against the
test server over loopback (starts on time, --max-concurrency waits in queue_s, phases)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtest.scheduler.shapes import OpenLoop


def _gaps(shape: OpenLoop, n: int) -> np.ndarray:
    return np.diff(shape.times(n + 1))


def test_poisson_gaps_have_the_rate_and_cv_1_and_are_seeded():
    n, rate = 20_000, 10.0
    g = _gaps(OpenLoop(rate, "poisson", seed=3), n)
    # mean of n exponential gaps: sd = mean / sqrt(n); 4 sigma
    assert abs(g.mean() - 1 / rate) < 4 * (1 / rate) / math.sqrt(n)
    assert abs(g.std() / g.mean() - 1.0) < 0.03
    assert np.array_equal(OpenLoop(rate, seed=3).times(500), OpenLoop(rate, seed=3).times(500))
    assert not np.array_equal(OpenLoop(rate, seed=3).times(500), OpenLoop(rate, seed=4).times(500))
    it = OpenLoop(rate, seed=3).iter_times()  # the unbounded form draws the same schedule
    assert np.array_equal([next(it) for _ in range(5000)], OpenLoop(rate, seed=3).times(5000))
    assert OpenLoop(rate, seed=3).times(1)[0] == 0.0  # the first request goes at the origin


@pytest.mark.parametrize("k", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_the_cv_and_keeps_the_rate(k):
    g = _gaps(OpenLoop(20.0, "gamma", burstiness=k, seed=1), 40_000)
    assert g.mean() == pytest.approx(1 / 20.0, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(1 / math.sqrt(k), rel=0.05)


def test_constant_is_constant_and_inf_is_all_at_once():
    g = _gaps(OpenLoop(8.0, "constant"), 100)
    assert np.allclose(g, 0.125)
    assert np.array_equal(OpenLoop(math.inf).times(50), np.zeros(50))


def test_ramp_up_rises_linearly_to_the_rate():
    shape = OpenLoop(100.0, "constant", ramp_up_s=2.0)
    t = shape.times(1000)
    assert np.all(np.diff(t) >= 0)
    # Cumulative rate R t^2 / 2S before S: 100 in the first 2 s, 25 in the first 1 s, then 100/s.
    assert abs(np.sum(t < 2.0) - 100) <= 1 and abs(np.sum(t < 1.0) - 25) <= 1
    assert abs(np.sum((t >= 2.0) & (t < 4.0)) - 200) <= 1
    assert shape.expected_count(4.0) == pytest.approx(300)


def test_bad_shapes_are_refused():
    for bad in (dict(rate=0), dict(rate=-1), dict(rate=1, burstiness=0), dict(rate=1, ramp_up_s=-1),
                dict(rate=float("nan"))):
        with pytest.raises(ValueError):
            OpenLoop(**bad)


def _rate_run(cli, s, tmp_path, *extra, n=200):
    return cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "8", *extra,
                *(["--num-prompts", str(n)] if "--duration" not in extra else [])], tmp_path)


def test_poisson_run_starts_requests_on_the_seeded_schedule(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=1)
    code, summary, rows = _rate_run(cli, s, tmp_path, "--request-rate", "100", "--seed", "7")
    assert code == 0 and summary["counts"]["completed"] == 200
    rows.sort(key=lambda r: r["id"])
    sched = np.array([r["scheduled_s"] for r in rows])
    want = OpenLoop(100.0, seed=7).times(200)
    assert np.allclose(sched - sched[0], want, atol=2e-6)  # exactly the seeded schedule
    lag = np.array([r["start_s"] - r["scheduled_s"] - r["queue_s"] for r in rows])
    assert np.all(lag >= 0)
    m = summary["metrics"]
    assert m["send_lag_s"]["count"] == 200 and m["send_lag_s"]["p50"] < 0.002
    # Achieved start rate = (n-1) / span of the actual starts, vs the schedule's own span.
    assert m["achieved_rate_per_s"] == pytest.approx(199 / want[-1], rel=0.05)
    assert summary["run"]["load"]["kind"] == "open_loop" and summary["config"]["request_rate"] == 100.0
    assert all(r["phase"] == "measured" for r in rows)


def test_max_concurrency_waits_land_in_queue_s_not_in_ttft(cli, sim, tmp_path):
    s = sim(ttft_ms=40, tpot_ms=2, output_tokens=10)
    code, summary, rows = _rate_run(cli, s, tmp_path, "--request-rate", "inf", "--max-concurrency", "4", n=20)
    assert code == 0 and summary["counts"]["completed"] == 20
    assert s.stats()["max_active_requests"] == 4
    queued = sorted(r["queue_s"] for r in rows)
    assert queued[:4] == pytest.approx([0, 0, 0, 0], abs=0.003)
    # Waves of 4 replies of ~58 ms each: the last wave waited ~4 x 58 ms.
    assert queued[-1] > 0.2
    for r in rows:
        assert 0.040 <= r["ttft_s"] < 0.040 + 0.015  # the wait is never inside TTFT
    assert summary["metrics"]["queue_s"]["max"] == pytest.approx(queued[-1])


def test_sim_max_concurrency_queues_on_the_server(cli, sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=5, output_tokens=5, max_concurrency=2)
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "4",
                               "--num-prompts", "16", "--max-tokens", "5"], tmp_path)
    assert code == 0 and s.stats()["max_active_requests"] == 2
    # Two of every four requests wait a whole reply (20 + 4 x 5 ms) at the server: inside their TTFT.
    ttfts = sorted(r["ttft_s"] for r in rows)
    assert ttfts[0] < 0.035 and ttfts[-1] > 0.055


def test_timed_warmup_and_cooldown_are_marked_and_left_out(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=1)
    code, summary, rows = _rate_run(cli, s, tmp_path, "--request-rate", "40", "--arrival", "constant",
                                    "--duration", "1.5", "--warmup", "510ms", "--cooldown", "0.5")
    assert code == 0
    phases = {p: [r for r in rows if r["phase"] == p] for p in ("warmup", "measured", "cooldown")}
    # Constant 40/s from t=0: starts at k/40 s (boundaries between starts, not on them):
    # warm-up [0, 0.51) = 21, measured [0.51, 2.01) = 60, cooldown [2.01, 2.51) = 20.
    assert len(phases["warmup"]) == 21 and len(phases["measured"]) == 60
    assert 18 <= len(phases["cooldown"]) <= 20
    assert all(r["warmup"] for r in phases["warmup"] + phases["cooldown"])
    assert summary["counts"]["requests"] == 60 and summary["metrics"]["window_s"] == 1.5
    assert summary["metrics"]["requests_per_s"] == pytest.approx(40, rel=0.02)


@pytest.mark.parametrize("args, message", [
    (["--max-concurrency", "4", "--concurrency", "2"], "--max-concurrency needs --request-rate"),
    (["--request-rate", "5", "--burstiness", "2"], "--burstiness applies to --arrival gamma"),
    (["--concurrency", "2", "--warmup", "5s"], "need --duration"),
    (["--request-rate", "0"], "rate must be > 0"),
    ([], "--concurrency N (closed loop) or --request-rate R"),
])
def test_bad_load_options_are_one_line(args, message, capsys):
    from loadtest.cli.main import main

    try:
        code = main(["throughput", "--endpoint", "http://127.0.0.1:9/v1", *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def _max_in_flight(rows, until_s: float | None = None) -> int:
    events = sorted([(r["start_s"], 1) for r in rows if until_s is None or r["start_s"] < until_s]
                    + [(r["end_s"], -1) for r in rows if until_s is None or r["start_s"] < until_s])
    n = best = 0
    for _, d in events:
        n += d
        best = max(best, n)
    return best


def test_closed_loop_ramp_up_adds_workers_one_by_one(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=1, output_tokens=4)
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "4",
                               "--ramp-up", "0.8", "--duration", "1.5", "--max-tokens", "4"], tmp_path)
    assert code == 0
    t0 = min(r["start_s"] for r in rows)
    for r in rows:
        r["start_s"] -= t0
        r["end_s"] = r["end_s"] - t0 if r["end_s"] is not None else r["start_s"]
    # Workers join at 0, 0.2, 0.4 and 0.6 s: one in flight before 0.2 s, all four after 0.6 s.
    assert _max_in_flight(rows, until_s=0.18) == 1
    assert _max_in_flight(rows) == 4
    assert summary["run"]["load"] == {"kind": "closed_loop", "concurrency": 4, "ramp_up_s": 0.8}


def test_run_open_loop_takes_a_dealt_share_of_a_schedule():
    """Scale-out: a client given every 3rd start of one shared schedule runs exactly those, with
    their own request indices, at their absolute times."""
    import asyncio
    from time import perf_counter_ns

    from loadtest.scheduler.loops import run_open_loop

    shared = OpenLoop(200.0, seed=5).times(30)
    mine = list(range(1, 30, 3))
    calls: list[tuple[int, int, int]] = []

    async def job(i: int, scheduled_ns: int, queue_ns: int) -> None:
        calls.append((i, scheduled_ns, perf_counter_ns()))

    async def main() -> str:
        origin = perf_counter_ns() + 5_000_000
        ended = await run_open_loop(iter(shared[mine]), job, origin_ns=origin, count=None, deadline_ns=None,
                                    stop=asyncio.Event(), indices=mine)
        for (i, sched, actual), k in zip(calls, mine):
            assert i == k and sched == origin + int(shared[k] * 1e9) and actual >= sched
        return ended

    assert asyncio.run(main()) == "done" and [c[0] for c in calls] == mine
