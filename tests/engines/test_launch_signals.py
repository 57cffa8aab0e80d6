"""`--launch llamacpp` stopped by SIGINT or SIGTERM, as a user would start it (a subprocess, the
embedded SmolLM2): while the engine starts (before it is ready) and while the run measures. The
stop is prompt (no wait on a timeout), the engine's whole process group is gone, the exit code is
130/143, and the summary of what completed is written (or, before anything was measured, one line
and no run). Needs `make engine-llamacpp`; skipped otherwise."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_checks import require_engine
from loadtest.launch.process import _proc_table

pytestmark = [pytest.mark.engine, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
CODES = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("llamacpp")


def _engine_of(pid: int) -> int | None:
    """The engine: a child of loadtest leading its own process group (start_new_session)."""
    return next((p for p, (ppid, pgid, state, _) in _proc_table().items()
                 if ppid == pid and pgid == p and state not in ("Z", "X")), None)


def _group_left(pgid: int) -> list[int]:
    return [p for p, (_, g, state, _) in _proc_table().items() if g == pgid and state not in ("Z", "X")]


def _stop(args: list[str], out: Path, sig: signal.Signals, during: str) -> tuple[int, str, str, float, int]:
    """Start loadtest, wait for the phase, send ``sig``: (exit code, stdout, stderr, seconds from the
    signal to the exit, the engine's process group)."""
    proc = subprocess.Popen([sys.executable, "-m", "loadtest", *args, "--output", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        engine = None
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"never reached {during}"
            engine = engine or _engine_of(proc.pid)
            records = out / "requests.jsonl"
            if during == "start-up" and engine is not None:
                break
            if during == "run" and records.is_file() and records.stat().st_size:
                break
            time.sleep(0.02)
        assert engine is not None
        if during == "start-up":  # still starting: its server does not answer yet
            assert not (out / "config.json").exists()
        t0 = time.monotonic()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
        return proc.returncode, stdout, stderr, time.monotonic() - t0, engine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("sig,code", CODES)
@pytest.mark.parametrize("during", ["start-up", "run"])
def test_a_signal_stops_the_launched_engine_promptly(tmp_path: Path, during: str, sig: signal.Signals,
                                                     code: int) -> None:
    out = tmp_path / "out"
    got, stdout, err, took, engine = _stop(["throughput", "--launch", "llamacpp", "--concurrency", "2",
                                            "--num-prompts", "60", "--max-tokens", "64"], out, sig, during)
    assert got == code and "Traceback" not in err, (got, err)
    assert took < 5, f"the stop took {took:.1f} s"
    assert _group_left(engine) == [], "engine processes left behind"
    if during == "start-up":  # nothing was measured: one line, no run written
        assert f"loadtest: interrupted ({sig.name}) before anything was measured" in err, err
        assert not (out / "summary.json").exists() and not (out / "requests.jsonl").exists()
    else:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["run"]["ended"] == "interrupted" and summary["server"]["engine"] == "llamacpp"
        assert summary["counts"]["requests"] >= 1 and "run ended early: interrupted" in stdout
        for line in (out / "requests.jsonl").read_text().splitlines():
            json.loads(line)  # whole records only
