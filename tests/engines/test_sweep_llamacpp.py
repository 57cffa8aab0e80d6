"""A 3-level concurrency sweep and a short open-loop run against llama.cpp on the embedded
SmolLM2: every level completes, the launched engine is the server the verdict credits (its CPU is
not counted as a neighbour's), and sweep.json holds one row per level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine_checks import require_engine
from loadtest.cli.main import main

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("llamacpp")


def test_llamacpp_concurrency_sweep(tmp_path: Path) -> None:
    code = main(["sweep", "--launch", "llamacpp", "--slots", "4", "--ctx-size", "1024", "--concurrency", "1,2,4",
                 "--num-prompts", "8", "--max-tokens", "16", "--ignore-eos", "--no-early-stop",
                 "--allow-client-bound", "--output", str(tmp_path), "--quiet"])
    assert code == 0
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["level"] for r in sweep["rows"]] == [1, 2, 4]
    for r in sweep["rows"]:
        assert r["errors"] == 0 and r["requests_per_s"] > 0 and r["ttft_p50_s"] > 0
        summary = json.loads((tmp_path / r["directory"] / "summary.json").read_text())
        assert summary["counts"]["completed"] == 8
        assert summary["server"]["engine"] == "llamacpp"
        host = summary["run"]["monitors"]["host_cpu"]
        assert host["server_pid"] is not None and host["server_cores_mean"] is not None


def test_llamacpp_open_loop_with_slo(tmp_path: Path) -> None:
    # --max-concurrency 4 at 2 req/s: 4 in flight + a backlog of max(4, 2 x 1 s) = 8 starts, so none of
    # the 8 can be dropped (with 2 and 2, a Poisson burst against a slow CI machine dropped one, as the
    # open loop's bounded backlog is meant to, and the run was rightly called SCHEDULE-MISSED).
    code = main(["throughput", "--launch", "llamacpp", "--slots", "2", "--ctx-size", "1024", "--request-rate", "2",
                 "--max-concurrency", "4", "--num-prompts", "8", "--max-tokens", "16", "--ignore-eos",
                 "--slo", "ttft=30,ttft:p99=60", "--output", str(tmp_path), "--quiet"])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"]["completed"] == 8 and summary["metrics"]["send_lag_s"]["count"] == 8
    assert summary["slo"]["good_requests"] == 8 and summary["slo"]["met"]
    rows = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert all(r["scheduled_s"] is not None and r["queue_s"] is not None for r in rows)
