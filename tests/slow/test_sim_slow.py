"""The slowest SimProcess test of tests/integration/test_sim.py (a killed parent's sim must exit, ~2 s),
moved whole so that make test-fast stays under 2 minutes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from test_sim import _gone

pytestmark = pytest.mark.timeout(60)


def test_sim_dies_with_a_killed_parent(tmp_path) -> None:
    script = ("import sys, time\nfrom loadtest.sim import start_sim\n"
              "s = start_sim()\nprint(s.pid, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _gone(child), "sim outlived its parent"
    finally:
        parent.kill()
        parent.wait()
