"""Open-loop load shapes: the schedule's statistics (pure, seeded) and its execution against the
test server over loopback (starts on time, --max-concurrency waits in queue_s, phases)."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.scheduler.shapes import OpenLoop


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
