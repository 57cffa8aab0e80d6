"""Scale-out (--workers) without running it (split from tests/integration/test_workers.py): the
dealing of prompts and of the open-loop schedule is exact, and bad worker options are one line."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.config import RunConfig
from loadtest.scheduler.shapes import OpenLoop
from loadtest.scaleout.share import deal, split


def _cfg(**kw) -> RunConfig:
    return RunConfig(command="throughput", base_url="http://127.0.0.1:1/v1", model="m", **kw)


def test_split_spreads_the_remainder():
    assert split(10, 3) == [4, 3, 3] and split(2, 2) == [1, 1] and sum(split(7, 4)) == 7


def test_closed_loop_shares_cover_every_index_once():
    shares = deal(_cfg(concurrency=5, num_prompts=23, warmup=3), 2)
    assert [s.concurrency for s in shares] == [3, 2]
    for first, count in ((0, 3), (3, 23)):  # the warm-up pass, then the measured one
        got = sorted(i for s in shares for i in s.closed_indices(first, count))
        assert got == list(range(first, first + count))


def test_open_loop_schedule_is_computed_once_and_dealt():
    shares = deal(_cfg(request_rate=50.0, num_prompts=20, warmup=4, seed=3, max_concurrency=5), 3)
    want = OpenLoop(50.0, seed=3).times(24)
    merged = sorted((i, t) for s in shares for i, t in zip(s.indices, s.offsets))
    assert [i for i, _ in merged] == list(range(24))
    assert np.array_equal([t for _, t in merged], want)  # the very same schedule, no re-draws
    assert [s.max_concurrency for s in shares] == [2, 2, 1]
    timed = deal(_cfg(request_rate=20.0, num_prompts=None, duration_s=2.0, warmup_s=0.5, cooldown_s=0.5), 2)
    offsets = sorted(t for s in timed for t in s.offsets)
    assert offsets and offsets[-1] < 3.0 and offsets == sorted(OpenLoop(20.0).times(len(offsets)))


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers: must be an integer >= 1 or 'auto'"),
    (["--workers", "3", "--concurrency", "2"], "--concurrency 2 is fewer than --workers 3"),
    (["--workers", "2", "--request-rate", "5", "--max-concurrency", "1"], "--max-concurrency 1 is fewer than --workers 2"),
])
def test_bad_worker_options_are_one_line(args, message, capsys, tmp_path):
    from loadtest.cli.main import main

    base = ["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--num-prompts", "4",
            "--output", str(tmp_path / "x")]
    if "--concurrency" not in args and "--request-rate" not in args:
        base += ["--concurrency", "2"]
    try:
        code = main([*base, *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
