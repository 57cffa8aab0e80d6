"""The 60-second variant of benchmarks/soak.py (the hour-long one runs outside CI): memory stays
flat, no file descriptor or socket leaks, exit is prompt after the deadline, records intact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.soak
@pytest.mark.timeout(180)
def test_soak_60s(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--duration", "60",
                           "--interval", "2", "--keep", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    print(json.dumps(r, indent=2))
    assert r["exit_code"] == 0, r["stderr_tail"]
    assert r["records_intact"] and r["rows_in_file"] == r["requests"]
    assert r["completed"] > 10_000  # ~200+ requests/s even on a loaded 2-core machine
    # Flat memory: the old client kept ~1 KB per request (60k requests: +60 MB).
    assert r["end"]["rss_mb"] - r["start"]["rss_mb"] < 20, r
    # No leaks: a kept-alive pool of `concurrency` sockets, not one per request.
    assert r["end"]["sockets"] <= r["concurrency"] + 8 and r["end"]["fds"] <= r["start"]["fds"] + 8, r
    assert r["exit_after_deadline_s"] < 3, r
