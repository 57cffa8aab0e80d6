"""The slowest open-loop runs of tests/integration/test_open_loop.py (2-3 s each: the seeded schedule
on time, timed warm-up and cool-down, a closed-loop ramp-up), moved whole so that make test-fast
stays under 2 minutes."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.scheduler.shapes import OpenLoop
from test_open_loop import _rate_run


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
