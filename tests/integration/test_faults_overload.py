"""Bounded under overload, and honest verdicts (docs/faults.md): each run as a user starts it, the
CLI in a process of its own against the test server on loopback, so its memory, its exit and
its open-file limit are its own."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

LOADTEST = [sys.executable, "-m", "loadtest"]
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def start(args: list[str], out: Path, *, nofile: tuple[int, int] | None = None,
          prefix: list[str] | None = None) -> subprocess.Popen[str]:
    def limits() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
    return subprocess.Popen([*(prefix or []), *LOADTEST, *args, "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=limits)


def common(s) -> list[str]:
    return ["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "16"]


def measuring(out: Path, proc: subprocess.Popen[str], timeout_s: float = 30.0) -> float:
    """When the run began measuring (its first record), by this clock."""
    deadline = time.monotonic() + timeout_s
    rows = out / "requests.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if rows.exists() and rows.stat().st_size:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"no record in {out}: {proc.communicate()[1]}")


def test_far_over_the_cap_memory_stays_bounded_the_deadline_holds_and_the_drops_are_said(sim, tmp_path):
    """100,000 req/s with 8 slots for 3 s: before, 600 MB in 5 s and a run minutes past its deadline."""
    s = sim(ttft_ms=20, tpot_ms=5, output_tokens=16)
    out = tmp_path / "run"
    proc = start([*common(s), "--request-rate", "100000", "--max-concurrency", "8", "--duration", "3"], out)
    me = psutil.Process(proc.pid)
    t0 = measuring(out, proc)
    rss0 = me.memory_info().rss
    peak = rss0
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    stdout, err = proc.communicate(timeout=30)
    ended_s = time.monotonic() - t0
    assert proc.returncode == 0, err
    assert ended_s < 3 + 2.5  # the deadline, then the summary
    assert peak - rss0 < 40 * 2**20, f"RSS grew {(peak - rss0) / 2**20:.0f} MB"
    summary = json.loads((out / "summary.json").read_text())
    sched = summary["schedule"]
    assert sched["overflow"] == "drop" and sched["backlog_bound"] == 10_000 and sched["waiting_max"] <= 10_000
    assert sched["dropped"] > 100_000 and sched["due"] == sched["sent"] + sched["dropped"] + sched["unsent_at_end"]
    assert sched["sent"] == summary["counts"]["requests"] + summary["run"]["warmup_requests"]
    assert summary["verdict"]["schedule_missed"] and "schedule-missed" in summary["verdict"]["labels"]
    assert "starts dropped" in stdout and "client could not issue the schedule" in stdout
    assert "Traceback" not in err
    assert s.stats()["max_active_requests"] <= 8


@pytest.mark.parametrize("rate", ["100000", "inf"])
def test_ctrl_c_ends_an_overloaded_run_at_once(sim, tmp_path, rate):
    s = sim(ttft_ms=20, tpot_ms=5, output_tokens=16)
    out = tmp_path / "run"
    proc = start([*common(s), "--request-rate", rate, "--max-concurrency", "8", "--duration", "60"], out)
    measuring(out, proc)
    me = psutil.Process(proc.pid)
    rss0, peak = me.memory_info().rss, 0
    for _ in range(20):  # 1 s of the run
        peak = max(peak, me.memory_info().rss)
        time.sleep(0.05)
    assert peak - rss0 < 40 * 2**20, f"RSS grew {(peak - rss0) / 2**20:.0f} MB"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 2.5 and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["ended"] == "interrupted"
    assert (summary["schedule"]["dropped"] > 0) == (rate != "inf")  # inf: all at once up to the cap, none dropped


def test_inf_rate_with_a_cap_is_all_at_once_up_to_it_and_ends_at_the_deadline(cli, sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=2, output_tokens=8)
    t0 = time.monotonic()
    code, summary, rows = cli([*common(s), "--request-rate", "inf", "--max-concurrency", "4", "--duration", "2"],
                              tmp_path)
    assert time.monotonic() - t0 < 2 + 3
    assert code == 0 and s.stats()["max_active_requests"] == 4
    sched = summary["schedule"]
    assert sched["overflow"] == "wait" and sched["dropped"] == 0 and sched["backlog_bound"] is None
    assert not summary["verdict"]["schedule_missed"]
    ok = [r for r in rows if r["ok"]]
    assert len(ok) > 40 and max(r["queue_s"] for r in ok) > 1.0  # all scheduled at 0: the wait grows


def test_inf_rate_with_num_prompts_and_a_cap_sends_them_all(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=1, output_tokens=4)
    code, summary, rows = cli([*common(s), "--request-rate", "inf", "--max-concurrency", "3", "--num-prompts", "30"],
                              tmp_path)
    assert code == 0 and summary["counts"]["completed"] == 30 and summary["schedule"]["dropped"] == 0
    assert s.stats()["max_active_requests"] == 3


def test_inf_rate_with_duration_and_no_cap_is_refused(refused, tmp_path):
    refused(["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--request-rate", "inf",
             "--duration", "5", "--output", str(tmp_path / "out")], tmp_path / "out", "add --max-concurrency N")


def test_a_rate_the_cap_keeps_up_with_drops_nothing(cli, sim, tmp_path):
    s = sim(ttft_ms=10, tpot_ms=1, output_tokens=4)
    code, summary, _ = cli([*common(s), "--request-rate", "50", "--max-concurrency", "4", "--num-prompts", "40"],
                           tmp_path)
    assert code == 0 and summary["counts"]["completed"] == 40
    assert summary["schedule"]["dropped"] == 0 and not summary["verdict"]["schedule_missed"]


# -- the file-descriptor limit -------------------------------------------------------------------

def test_concurrency_over_the_hard_open_file_limit_is_refused_with_the_ulimit_hint(sim, tmp_path):
    s = sim()
    out = tmp_path / "run"
    proc = start([*common(s), "--concurrency", "300", "--num-prompts", "300"], out, nofile=(128, 128))
    _, err = proc.communicate(timeout=30)
    lines = [x for x in err.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1, err
    assert lines[0].startswith("loadtest: error: --concurrency 300 needs about 364 open files")
    assert "ulimit -n 364" in lines[0] and "at most 128 (hard limit)" in lines[0]
    assert not out.exists()


def test_a_sweep_whose_top_level_is_over_the_hard_limit_is_refused_before_any_level(sim, tmp_path):
    s = sim()
    out = tmp_path / "run"
    proc = start(["sweep", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "1,2,300"], out,
                 nofile=(128, 128))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and err.startswith("loadtest: error: --concurrency 300 needs about 364"), err
    assert not out.exists() and s.stats()["requests_received"] == 0


def test_a_soft_open_file_limit_under_the_need_is_raised_and_said(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=4)
    out = tmp_path / "run"
    proc = start([*common(s), "--concurrency", "300", "--num-prompts", "600"], out, nofile=(128, 4096))
    stdout, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert "loadtest: raised the open-file limit (ulimit -n) from 128 to 364 for --concurrency 300" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["completed"] == 600 and not summary["errors"]
    assert "Traceback" not in err


def test_running_out_of_open_files_mid_run_is_data_with_the_limit_named(sim, tmp_path):
    """An open loop without --max-concurrency cannot be checked ahead: 500 req/s of 0.8 s replies
    need ~400 connections; with 128 allowed the extra ones fail as client_limit, no thread prints a
    traceback (the host sampler reads /proc), and the line names the limit."""
    s = sim(ttft_ms=800, tpot_ms=5, output_tokens=4)
    out = tmp_path / "run"
    proc = start([*common(s), "--request-rate", "500", "--duration", "2"], out, nofile=(128, 128))
    stdout, err = proc.communicate(timeout=45)
    assert "Traceback" not in err and "Exception in thread" not in err
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    limited = [r for r in rows if r.get("error_kind") == "client_limit"]
    assert limited and all("too many open files: this process's limit (128) reached" in r["error"] for r in limited)
    assert "ulimit -n" in stdout + err and proc.returncode in (0, 2)


def test_more_workers_than_usable_cores_warns_in_one_line(sim, tmp_path):
    if shutil.which("taskset") is None:
        pytest.skip("taskset not installed")
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=4)
    out = tmp_path / "run"
    proc = start([*common(s), "--concurrency", "2", "--num-prompts", "4", "--workers", "2"], out,
                 prefix=["taskset", "-c", "0"])
    _, err = proc.communicate(timeout=50)
    assert proc.returncode == 0, err
    warned = [x for x in err.splitlines() if x.startswith("loadtest: warning: --workers 2 on 1 usable cores")]
    assert len(warned) == 1 and "--workers auto (1 here)" in warned[0]


# -- verdicts that cannot judge -------------------------------------------------------------------

def test_a_very_short_run_cannot_judge_its_client_cpu(cli, sim, tmp_path, capsys):
    s = sim(ttft_ms=5, tpot_ms=1, output_tokens=4)
    code, summary, _ = cli([*common(s), "--concurrency", "2", "--num-prompts", "4"], tmp_path)
    v = summary["verdict"]
    assert code == 0 and not v["client_bound"] and v["client_cores"] is None and v["valid"] is None
    assert any(n.startswith("cannot judge client CPU: window") for n in v["notes"])
    assert "verdict: cannot judge client CPU" in capsys.readouterr().out


def test_an_aborted_run_cannot_judge_its_client_cpu(cli, sim, tmp_path):
    s = sim(fail_status=500, fail_every=1)
    code, summary, _ = cli([*common(s), "--concurrency", "2", "--num-prompts", "10"], tmp_path)
    v = summary["verdict"]
    assert code == 2 and summary["run"]["ended"] == "aborted"
    assert not v["client_bound"] and v["client_cores"] is None and v["valid"] is None


def test_an_interrupted_run_divides_its_cpu_by_the_time_it_was_counted(sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=5, output_tokens=16)
    out = tmp_path / "run"
    proc = start([*common(s), "--concurrency", "2", "--duration", "30"], out)
    measuring(out, proc)
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    summary = json.loads((out / "summary.json").read_text())
    run, v = summary["run"], summary["verdict"]
    assert run["ended"] == "interrupted" and run["client_cpu_span_s"] >= 2.0
    assert v["client_cores"] == pytest.approx(run["client_cpu_s"] / run["client_cpu_span_s"])
    assert v["client_cores"] < 0.9 and not v["client_bound"] and "CLIENT-BOUND" not in stdout
