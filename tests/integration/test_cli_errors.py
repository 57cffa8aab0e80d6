"""Bad input and broken servers: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

LOADTEST = [sys.executable, "-m", "loadtest"]


def run(args: list[str], tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOADTEST, *args, "--output", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, timeout=timeout)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("loadtest: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint(tmp_path):
    port = free_port()
    proc = run(["single", "--endpoint", f"http://127.0.0.1:{port}/v1", "--model", "m"], tmp_path)
    assert proc.returncode == 2
    assert "cannot connect to" in error_line(proc) and "refused" in proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["ended"] == "aborted" and summary["counts"]["failed"] == 3


def test_dns_failure(tmp_path):
    proc = run(["single", "--endpoint", "http://no-such-host.invalid:8080", "--model", "m"], tmp_path)
    assert proc.returncode == 2 and "cannot connect" in error_line(proc)


def test_unreachable_without_model_fails_before_any_request(tmp_path):
    proc = run(["throughput", "--endpoint", f"127.0.0.1:{free_port()}", "--concurrency", "4"], tmp_path)
    assert proc.returncode == 2 and "cannot reach" in error_line(proc)


def test_bad_api_key(sim, tmp_path):
    s = sim(api_key="secret")
    proc = run(["single", "--endpoint", s.base_url, "--model", "sim-model", "--api-key", "wrong"], tmp_path)
    assert proc.returncode == 2
    line = error_line(proc)
    assert "HTTP 401" in line and "--api-key" in line
    ok = run(["single", "--endpoint", s.base_url, "--model", "sim-model", "--api-key", "secret",
              "--num-prompts", "2", "--max-tokens", "4"], tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr


def test_unknown_model_lists_what_the_server_offers(sim, tmp_path):
    s = sim(model="real-model")
    proc = run(["single", "--endpoint", s.base_url, "--model", "nope"], tmp_path)
    assert proc.returncode == 2
    assert "model 'nope' not found; the server offers: real-model" in error_line(proc)


def test_model_defaults_to_the_first_listed(sim, tmp_path):
    s = sim(model="listed-model")
    proc = run(["single", "--endpoint", s.base_url, "--num-prompts", "2", "--max-tokens", "4"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["run"]["model"] == "listed-model"


def test_every_request_failing_with_5xx(sim, tmp_path):
    s = sim(fail_status=503)
    proc = run(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "4"], tmp_path)
    assert proc.returncode == 2 and "failed with server_error" in error_line(proc) and "HTTP 503" in proc.stderr


def test_argparse_errors_exit_2_without_traceback(tmp_path):
    proc = run(["throughput", "--endpoint", "http://x", "--concurrency", "0"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "must be >= 1" in proc.stderr


def _start_run(args: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*LOADTEST, *args, "--output", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(path: Path, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} records in {path}")


def _long_run_with_20_records(base_url: str, out: Path) -> subprocess.Popen[str]:
    """A throughput run far longer than the test, once it has written 20 records."""
    p = _start_run(["throughput", "--endpoint", base_url, "--model", "sim-model", "--concurrency", "4",
                    "--num-prompts", "100000"], out)
    _wait_for_rows(out / "requests.jsonl", 20)
    return p


def test_ctrl_c_stops_gracefully_and_keeps_what_completed(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=5, output_tokens=10)
    out = tmp_path / "out"
    p = _long_run_with_20_records(s.base_url, out)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=20)
    assert p.returncode == 130 and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    assert summary["run"]["ended"] == "interrupted"
    assert summary["counts"]["completed"] == sum(r["ok"] for r in rows) >= 20
    # The in-flight ones: 4, fewer when some finished in the same event-loop turn as the Ctrl-C.
    cancelled = summary["counts"]["cancelled"]
    assert cancelled == sum(r["error_kind"] == "cancelled" for r in rows) and 1 <= cancelled <= 4
    assert "requests completed" in stdout  # the table of what completed


def test_server_dying_mid_run(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=5, output_tokens=10)
    out = tmp_path / "out"
    p = _long_run_with_20_records(s.base_url, out)
    s.stop()
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 2
    line = error_line(subprocess.CompletedProcess([], 2, stdout, stderr))
    assert "stopped accepting connections after" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["completed"] >= 20 and summary["run"]["ended"] == "aborted"
    assert {"disconnect", "connect"} & set(summary["errors"])
