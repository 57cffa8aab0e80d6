"""sweep, capacity, SLOs and verdicts against the test server with a fixed capacity: its
--max-concurrency slots make queueing real, so the knee is known in advance.

The machine these tests run on is shared: --allow-client-bound keeps a late client from stopping
a sweep whose subject is the server's saturation (the verdict itself is tested on its own)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from loadtest.cli.main import main
from loadtest.judge import slo

# 2 slots, each reply 20 + 15 x 5 = 95 ms: the server completes at most 2 / 0.095 = 21.05 req/s.
KNEE_RPS = 2 / 0.095
SIM = dict(ttft_ms=20, tpot_ms=5, output_tokens=16, max_concurrency=2)


def _common(s, out):
    return ["--endpoint", s.base_url, "--model", "sim-model", "--max-tokens", "16", "--output", str(out),
            "--quiet", "--allow-client-bound"]


def test_concurrency_sweep_grows_then_stops_at_saturation(sim, tmp_path, capsys):
    s = sim(**SIM)
    code = main(["sweep", "--concurrency", "1,2,4,8", "--num-prompts", "24", *_common(s, tmp_path)])
    assert code == 0
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    rows = sweep["rows"]
    # 1 -> 2 doubles throughput; 4 only queues at the server: throughput flat, latency x2, stop there.
    assert [r["level"] for r in rows] == [1, 2, 4]
    assert rows[1]["requests_per_s"] == pytest.approx(2 * rows[0]["requests_per_s"], rel=0.15)
    assert rows[2]["requests_per_s"] == pytest.approx(rows[1]["requests_per_s"], rel=0.1)
    assert rows[2]["e2e_p50_s"] > 1.6 * rows[1]["e2e_p50_s"]
    assert sweep["stopped"].startswith("saturated")
    for r in rows:
        assert (tmp_path / r["directory"] / "summary.json").is_file()
    out = capsys.readouterr().out
    assert "stopped early: saturated" in out and "req/min" in out


def test_rate_sweep_is_monotone_until_the_server_falls_behind(sim, tmp_path):
    s = sim(**SIM)
    code = main(["sweep", "--request-rate", "4,8,16,32,64", "--arrival", "constant", "--duration", "1.5",
                 *_common(s, tmp_path)])
    assert code == 0
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    rows = sweep["rows"]
    assert [r["level"] for r in rows] == [4, 8, 16, 32]  # 32 > 21 req/s: saturated, no 64
    done = [r["requests_per_s"] for r in rows]
    assert done[:3] == sorted(done[:3]) and all(d == pytest.approx(lvl, rel=0.1) for d, lvl in zip(done, [4, 8, 16]))
    assert done[3] < 0.9 * 32 and "saturated" in sweep["stopped"]
    assert rows[3]["verdict"] == ["server-saturated"] or "server-saturated" in rows[3]["verdict"]


def test_capacity_finds_the_knee_within_the_precision(sim, tmp_path, capsys):
    s = sim(**SIM)
    code = main(["capacity", "--slo", "ttft:p99=60ms", "--arrival", "constant", "--duration", "1.5", "--start", "4",
                 "--precision", "0.05", *_common(s, tmp_path)])
    assert code == 0
    cap = json.loads((tmp_path / "capacity.json").read_text())
    # Constant arrivals under the knee never queue; above it the backlog grows for the whole window.
    assert 0.85 * KNEE_RPS <= cap["answer"] <= KNEE_RPS * 1.02
    assert cap["lowest_failing"] > cap["answer"]
    assert (cap["lowest_failing"] - cap["answer"]) <= 0.05 * cap["answer"] + 1e-9
    out = capsys.readouterr().out
    assert f"sustains {cap['answer']:g} req/s" in out and "p99 ttft <= 60 ms" in out


def test_capacity_needs_an_slo(tmp_path, capsys):
    code = main(["capacity", "--endpoint", "http://127.0.0.1:9/v1", "--output", str(tmp_path)])
    assert code == 2 and "at least one --slo" in capsys.readouterr().err


def test_slo_parsing_and_goodput(cli, sim, tmp_path):
    objs = slo.parse(["ttft=0.5, tpot=50ms", "ttft:p99=0.5", "e2e_p50=2s"])
    assert [(o.metric, o.limit_s, o.stat) for o in objs] == [
        ("ttft_s", 0.5, None), ("tpot_s", 0.05, None), ("ttft_s", 0.5, "p99"), ("e2e_s", 2.0, "p50")]
    for bad in ("ttft", "ttft=-1", "foo=1", "itl=0.1", "ttft:p42x=1"):
        with pytest.raises(Exception):
            slo.parse([bad])
    s = sim(ttft_ms=20, tpot_ms=2, output_tokens=8, max_concurrency=1)
    # One slot, 4 in flight: the 1st of each 4 waits nothing, the others 1-3 replies (34 ms each).
    code, summary, rows = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "4",
                               "--num-prompts", "40", "--max-tokens", "8", "--slo", "ttft=45ms,ttft:p50=200ms"],
                              tmp_path)
    assert code == 0
    block = summary["slo"]
    good = sum(1 for r in rows if r["ok"] and r["ttft_s"] <= 0.045)
    assert block["good_requests"] == good and 0 < good < 40
    assert block["goodput_requests_per_min"] == pytest.approx(good / summary["metrics"]["window_s"] * 60)
    assert block["met"] is (good / 40 >= 0.9 and summary["metrics"]["ttft_s"]["p50"] <= 0.2)


def test_verdict_disturbed_by_a_busy_neighbour(cli, sim, tmp_path):
    s = sim(ttft_ms=20, tpot_ms=5)
    spin = "import time\nt=time.time()\nwhile time.time()-t<20: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        time.sleep(0.3)
        code, summary, _ = cli(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "2",
                                "--duration", "2", "--max-tokens", "16"], tmp_path)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert code == 0
    v = summary["verdict"]
    assert v["disturbed"] and "disturbed" in v["labels"] and v["others_cores"] > 0.5
    host = summary["run"]["monitors"]["host_cpu"]
    assert host["server_pid"] == s.pid  # the sim is the server under test, not a neighbour


def test_verdict_client_bound_when_the_client_is_starved(cli, sim, tmp_path):
    """A client pinned to one core shared with busy processes cannot send 2,000 req/s on time."""
    s = sim(ttft_ms=5, tpot_ms=1)
    args = [sys.executable, "-m", "loadtest", "throughput", "--endpoint", s.base_url, "--model", "sim-model",
            "--request-rate", "2000", "--num-prompts", "4000", "--max-tokens", "4", "--output", str(tmp_path),
            "--quiet"]
    spin = "import time\nt=time.time()\nwhile time.time()-t<30: pass\n"
    # Six busy processes on the client's core leave it a seventh of it. At 400 req/s that seventh was
    # sometimes enough (the client sleeps between starts, and the scheduler favours a sleeper that
    # wakes): the test failed 1 run in 3. 2,000 req/s needs several times that share.
    hogs = [subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", spin]) for _ in range(6)]
    try:
        done = subprocess.run(["taskset", "-c", "0", *args], capture_output=True, text=True, timeout=120)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert done.returncode == 0, done.stderr
    v = json.loads((tmp_path / "summary.json").read_text())["verdict"]
    assert v["client_bound"] and "client-bound" in v["labels"]
    assert "verdict: " in done.stdout and "CLIENT-BOUND" in done.stdout


def test_auto_rate_sweep_probes_then_spaces_ten_rates(sim, tmp_path):
    s = sim(**SIM)
    code = main(["sweep", "--request-rate", "auto", "--num-prompts", "20", *_common(s, tmp_path)])
    assert code == 0
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    probes, levels = sweep["probes"], sweep["levels"]
    # One at a time: 1 / 0.095 s = 10.5 req/s; everything at once: the 2 slots, 21 req/s.
    assert probes["synchronous_requests_per_s"] == pytest.approx(1 / 0.095, rel=0.15)
    assert probes["throughput_requests_per_s"] == pytest.approx(KNEE_RPS, rel=0.15)
    assert len(levels) == 10 and levels == sorted(levels)
    assert levels[0] == pytest.approx(probes["synchronous_requests_per_s"], rel=0.01)
    assert levels[-1] == pytest.approx(probes["throughput_requests_per_s"], rel=0.01)
    assert (tmp_path / "probe-synchronous" / "summary.json").is_file() and sweep["rows"]


def test_capacity_by_concurrency_finds_the_slot_count(sim, tmp_path, capsys):
    s = sim(ttft_ms=20, tpot_ms=5, output_tokens=16, max_concurrency=3)
    code = main(["capacity", "--by", "concurrency", "--slo", "ttft:p99=60ms", "--num-prompts", "24",
                 *_common(s, tmp_path)])
    assert code == 0
    cap = json.loads((tmp_path / "capacity.json").read_text())
    # A fourth request in flight waits a whole reply (95 ms) at the server: TTFT p99 > 60 ms.
    assert cap["answer"] == 3 and cap["lowest_failing"] == 4
    assert "repeated" in cap["confidence"]
    assert "sustains 3 concurrent requests" in capsys.readouterr().out
