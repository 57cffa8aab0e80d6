"""Open-loop load shapes: the schedule's statistics (pure, seeded) and its execution against the
test server over loopback (starts on time, --max-concurrency waits in queue_s, phases)."""

from __future__ import annotations

import pytest


def _rate_run(cli, s, tmp_path, *extra, n=200):
    return cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "8", *extra,
                *(["--num-prompts", str(n)] if "--duration" not in extra else [])], tmp_path)


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
