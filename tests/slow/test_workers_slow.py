"""The slowest scale-out tests of tests/integration/test_workers.py (a killed worker, Ctrl-C to every
worker, the dealt open-loop schedule, a timed open loop; 2-8 s each), moved whole so that make
test-fast stays under 2 minutes. Against the sim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from loadtest.scheduler.shapes import OpenLoop
from test_workers import _run


def test_merged_open_loop_runs_the_one_seeded_schedule(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=8)
    code, summary, rows = _run(cli, s, tmp_path, "open", "--request-rate", "60", "--num-prompts", "30",
                               "--warmup", "6", "--seed", "7", "--workers", "2")
    assert code == 0 and summary["counts"]["completed"] == 30
    rows.sort(key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(36))
    want = OpenLoop(60.0, seed=7).times(36)
    shift = np.array([r["scheduled_s"] for r in rows]) - want
    # Each worker's starts are the schedule's own, shifted only by its start at the barrier.
    assert np.ptp(shift) < 0.005
    for w in (0, 1):
        assert np.ptp(shift[w::2]) < 2e-6
    assert [w["scheduled"] for w in summary["run"]["workers"]] == [18, 18]
    assert summary["metrics"]["send_lag_s"]["count"] == 30


def _cli_process(s, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "loadtest", "throughput", "--endpoint", s.base_url, "--model", "sim-model",
           "--max-tokens", "16", "--concurrency", "4", "--duration", "4", "--workers", "2", "--quiet",
           "--output", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_one_worker(proc: subprocess.Popen, out: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until records flow
        if (out / "requests.jsonl").exists() and (out / "requests.jsonl").stat().st_size > 0:
            break
        time.sleep(0.05)
    workers = [c for c in psutil.Process(proc.pid).children()
               if "spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]
    assert len(workers) == 2
    victim = workers[0].pid
    os.kill(victim, signal.SIGKILL)
    return victim


@pytest.mark.parametrize("policy", ["stop", "continue"])
def test_a_killed_worker_is_named_and_its_records_kept(sim, tmp_path, policy):
    s = sim(ttft_ms=5, tpot_ms=2, output_tokens=16)
    out = tmp_path / policy
    proc = _cli_process(s, out, "--on-worker-failure", policy)
    victim = _kill_one_worker(proc, out)
    stdout, stderr = proc.communicate(timeout=60)
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    dead = [w for w in summary["run"]["workers"] if w["pid"] == victim][0]
    alive = [w for w in summary["run"]["workers"] if w["pid"] != victim][0]
    failure = summary["run"]["scale_out"]["worker_failures"][0]
    assert f"worker {dead['name']} (pid {victim}) died (exit code -9)" in failure
    assert dead["ended"] == "died" and dead["sent"] > 0  # its records before it died are kept
    assert len(rows) == sum(w["sent"] for w in summary["run"]["workers"])
    assert len({r["id"] for r in rows}) == len(rows)  # still one record per request
    assert "Traceback" not in stderr
    if policy == "stop":
        assert proc.returncode == 2 and summary["run"]["ended"] == "worker_failed"
        assert f"worker {dead['name']}" in stderr and "died" in stderr
        assert alive["ended"] == "interrupted"  # stopped cleanly, its in-flight requests recorded as cancelled
        assert stderr.count(f"worker {dead['name']}") == 1  # the failing line only, not said twice
    else:
        assert proc.returncode == 0, stderr
        assert alive["ended"] == "deadline" and summary["metrics"]["window_s"] == 4.0
        # said on the console when it happened: which worker, when, why, what was recorded and lost
        said = [line for line in stderr.splitlines() if f"worker {dead['name']} (pid {victim}) died" in line]
        assert len(said) == 1 and "killed by SIGKILL" in said[0] and "the run goes on with 1 of 2 workers" in said[0]
        assert f"{dead['sent']} of its requests recorded, {dead['lost_in_flight']} lost in flight" in said[0]
        lost = summary["verdict"]
        assert not lost["valid"] and lost["worker_lost"] and "worker-lost" in lost["labels"]
        assert "WORKER-LOST" in stdout and f"worker {dead['name']} of 2 died" in stdout
    [record] = summary["run"]["scale_out"]["failed"]
    assert record["name"] == dead["name"] and record["pid"] == victim and record["exit_code"] == -9
    assert record["signal"] == "SIGKILL" and record["recorded"] == dead["sent"]
    assert 0 < record["died_at_s"] < 4.0
    # a closed loop keeps its share's concurrency in flight (plus any finished whose record was still
    # to be written): those died with it, started and never recorded
    assert record["lost_in_flight"] == dead["lost_in_flight"] >= dead["concurrency"] == 2
    assert record["started"] == record["recorded"] + record["lost_in_flight"]
    assert alive["lost_in_flight"] == 0


def test_ctrl_c_stops_every_worker_and_writes_the_summary(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=2, output_tokens=16)
    out = tmp_path / "int"
    proc = _cli_process(s, out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ((out / "requests.jsonl").exists()
                                               and (out / "requests.jsonl").stat().st_size > 0):
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive  # no worker left behind
    assert proc.returncode == 130, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["ended"] == "interrupted"
    assert all(w["ended"] == "interrupted" for w in summary["run"]["workers"])
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == sum(w["sent"] for w in summary["run"]["workers"]) == summary["counts"]["requests"] + sum(
        r["warmup"] for r in rows)


def test_timed_open_loop_lasts_to_the_deadline(cli, sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=8)
    code, summary, rows = _run(cli, s, tmp_path, "timed", "--request-rate", "40", "--duration", "1.5",
                               "--warmup", "0.5s", "--cooldown", "0.5", "--workers", "2")
    assert code == 0 and summary["run"]["ended"] == "deadline" and summary["metrics"]["window_s"] == 1.5
    assert all(w["ended"] == "deadline" for w in summary["run"]["workers"])
    assert {r["phase"] for r in rows} <= {"warmup", "measured", "cooldown"} and len({r["id"] for r in rows}) == len(rows)
    assert max(r["id"] for r in rows) < sum(w["scheduled"] for w in summary["run"]["workers"])
