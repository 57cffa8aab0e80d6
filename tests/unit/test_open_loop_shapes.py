"""Open-loop load shapes without a server (split from tests/integration/test_open_loop.py): the
schedule's statistics (pure, seeded), a dealt share of it run on time, and bad load options."""

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
