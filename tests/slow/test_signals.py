"""One signal policy for every command (run/execute.py): the first SIGINT/SIGTERM stops the run in
progress gracefully (its summary written, marked interrupted), no further run of a series starts,
what completed is written, and the command exits 130/143; a second signal quits at once. Each
command runs as a user would start it, against the test server with slow replies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LOADTEST = [sys.executable, "-m", "loadtest"]
ROOT = Path(__file__).resolve().parents[2]


def commands(url: str) -> dict[str, list[str]]:
    common = ["--endpoint", url, "--model", "sim-model", "--max-tokens", "40"]
    return {
        "sweep": ["sweep", *common, "--concurrency", "1,2,4", "--num-prompts", "40"],
        "capacity": ["capacity", *common, "--slo", "ttft:p99=5", "--by", "concurrency", "--num-prompts", "40"],
        "tokens": ["tokens", "--endpoint", url, "--model", "sim-model", "--prompt-tokens", "16",
                   "--gen-tokens", "200,400", "--repeat", "20", "--warmup", "0"],
    }


def start(args: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*LOADTEST, *args, "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def wait_for_first_run(out: Path, timeout_s: float = 30.0) -> Path:
    """The first run directory once it holds records: the command is measuring."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for rows in out.glob("*/requests.jsonl"):
            if rows.stat().st_size:
                return rows.parent
        time.sleep(0.05)
    raise AssertionError(f"no run started in {out}")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("command", ["sweep", "capacity", "tokens"])
def test_first_signal_stops_the_series_and_writes_what_completed(sim, tmp_path, command, sig, code):
    s = sim(ttft_ms=5, tpot_ms=10, max_concurrency=2)
    out = tmp_path / "out"
    proc = start(commands(s.base_url)[command], out)
    first = wait_for_first_run(out)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert time.monotonic() - t0 < 10
    assert "Traceback" not in err and ("Ctrl-C again" in err) == (sig == signal.SIGINT), err
    summaries = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/summary.json")}
    assert first.name in summaries
    # every run that started has its summary: the one the signal stopped, and none after it
    assert set(summaries) == {p.name for p in out.iterdir() if p.is_dir()}
    ended = [summary["run"]["ended"] for summary in summaries.values()]
    # the run the signal stopped: interrupted, or (the signal landed before it sent a request, as
    # between two runs) no directory at all, never an empty run
    assert ended.count("interrupted") <= 1 and set(ended) <= {"done", "interrupted"}, ended
    doc = json.loads((out / f"{command}.json").read_text())
    assert doc["interrupted"] is True
    if command == "sweep":  # an interrupted level is never a measurement: not a row
        assert len(doc["rows"]) == ended.count("done") and doc["stopped"].startswith("interrupted at concurrency")
    elif command == "capacity":
        assert doc["answer"] is None and doc["answer_line"].startswith("interrupted")
        assert len(doc["rows"]) == ended.count("done") and "sustains" not in stdout  # no capacity announced
    else:
        statuses = [r["status"] for r in doc["scenarios"]]
        k = statuses.index("interrupted")
        assert set(statuses[:k]) <= {"ok"} and set(statuses[k + 1:]) == {"skipped"}, statuses


def test_the_policy_itself_first_stops_second_quits() -> None:
    """Signals without processes: in a run, the first signal stops it (graceful) and the second
    quits from the handler (QuitNow), or cancels the run when both came before the loop acted; between runs, the first is noted and the second quits at once (Interrupted, 130);
    before anything was measured, or in an abortable wait, the first quits at once."""
    import asyncio

    from loadtest.run.execute import Interrupted, QuitNow, Signals

    class Loop:  # runs what the handler hands it at once, as the real loop's next turn would
        def call_soon_threadsafe(self, fn, *args):
            fn(*args)

    class Task:
        cancelled = False

        def cancel(self):
            self.cancelled = True

    class Run:
        stop, interrupted, directory = asyncio.Event(), False, Path("run")

    signals, run, task = Signals(), Run(), Task()
    signals._active = (Loop(), run, task)  # type: ignore[assignment]
    signals._handle(int(signal.SIGTERM), None)
    assert signals.received == signal.SIGTERM and run.stop.is_set() and run.interrupted and not task.cancelled
    with pytest.raises(QuitNow) as again:  # the second, while the stop is under way: from the handler itself
        signals._handle(int(signal.SIGINT), None)
    assert again.value.exit_code == 143 and "run/requests.jsonl" in str(again.value)  # the first names the code
    queued = Signals()  # two signals before the loop acted on the first: the second cancels the run
    queued._active = (Loop(), type("R", (), {"stop": asyncio.Event(), "interrupted": False})(), task)  # type: ignore
    queued._in_loop(signal.SIGINT)
    queued._in_loop(signal.SIGINT)
    assert task.cancelled
    between = Signals(measured=True)  # a run completed: its results are being written
    between._handle(int(signal.SIGINT), None)
    assert between.exit_code == 130
    with pytest.raises(Interrupted) as quit_now:
        between._handle(int(signal.SIGINT), None)
    assert quit_now.value.exit_code == 130
    before = Signals()  # nothing measured yet (discovery, prompts, an engine starting): quit at once
    with pytest.raises(Interrupted) as at_once:
        before._handle(int(signal.SIGTERM), None)
    assert at_once.value.exit_code == 143 and "before anything was measured" in str(at_once.value)
    waiting = Signals(measured=True)  # an abortable wait after runs completed (the next engine starting)
    with pytest.raises(Interrupted), waiting.abortable():
        waiting._handle(int(signal.SIGINT), None)
    with pytest.raises(Interrupted), waiting.abortable():  # signalled already: the next wait never begins
        pass
