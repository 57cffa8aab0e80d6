"""The slowest tests of tests/integration/test_bad_input.py (bad input to a CLI subprocess, 8 cases; an
interrupted duration run resumed), moved whole so that make test-fast stays under 2 minutes."""

from __future__ import annotations

import json
import signal
import time

import pytest

from test_bad_input import _cli, _one_error_line
from test_faults import _start, check_files

# -- bad input: one line, a non-zero exit, no usage screen, no traceback -----------------------

BAD_INPUT = [
    ("output-is-a-file", lambda d: ["--output", str(d / "f")], "is a file, not a directory"),
    ("output-under-a-file", lambda d: ["--output", str(d / "f" / "sub")], "is not a writable directory"),
    ("output-unwritable", lambda d: ["--output", "/proc/loadtest-results"], "is not a writable directory"),
    ("duration-inf", lambda d: ["--duration", "inf"], "must be a finite number"),
    ("temperature-nan", lambda d: ["--temperature", "nan"], "must be a finite number"),
    ("top-p-inf", lambda d: ["--top-p=-inf"], "must be a finite number"),
    ("extra-body-nan", lambda d: ["--extra-body", '{"temperature": NaN}'], "NaN is not a number JSON allows"),
    ("missing-required-option", lambda d: ["--concurrency"], "expected one argument"),
]


@pytest.mark.parametrize("name,extra,expect", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_one_line(name, extra, expect, tmp_path):
    (tmp_path / "f").write_text("x")
    args = ["throughput", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m"]
    if name != "missing-required-option":
        args += ["--concurrency", "2"]
    if "output" not in name:
        args += ["--output", str(tmp_path / "out")]
    proc = _cli([*args, *extra(tmp_path)])
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert expect in line, line
    if name == "missing-required-option":
        assert "see loadtest throughput --help" in line
    assert not (tmp_path / "out").exists()


def test_interrupted_duration_run_resumes_for_what_is_left(sim, tmp_path):
    s = sim(ttft_ms=5, tpot_ms=5, output_tokens=4)
    out = tmp_path / "out"
    args = ["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "2", "--duration", "3",
            "--max-tokens", "4"]
    proc = _start(args, out)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    first = json.loads((out / "summary.json").read_text())["run"]["pieces"][0]
    assert first["ended"] == "interrupted" and 0 < first["window_s"] < 3
    resumed = _cli([*args, "--resume", str(out), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    summary, rows = check_files(out)
    pieces = summary["run"]["pieces"]
    assert [p["ended"] for p in pieces] == ["interrupted", "deadline"]
    assert pieces[1]["window_s"] == pytest.approx(3 - first["window_s"])
    assert summary["metrics"]["window_s"] == pytest.approx(3.0)
    # The first piece's cancelled rows were dropped on resume; only the deadline's in-flight ones remain.
    assert summary["counts"]["cancelled"] <= 2 and summary["counts"]["completed"] == sum(r["ok"] for r in rows)
    assert "resumed run: 2 pieces" in resumed.stdout
